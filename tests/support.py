"""Helpers shared by the tests (importable as `support`; fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ingest._embed import Embedder
from ingest.settings import Settings

if TYPE_CHECKING:
    from app.answer import AnswerResult

REPO = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO / ".zhiku" / "models"
SHARED = REPO.parent / "shared"


def make_settings(home: Path, **overrides: object) -> Settings:
    """Settings that ignore the developer's .env and environment-specific defaults."""
    values: dict[str, object] = {
        "zhiku_home": home,
        "zhiku_models_dir": MODELS_DIR,
        "llm_backend": "none",
        "lock_timeout_s": 10.0,
        # not "auto": what `zhiku prepare` measured on this machine must not change the tests
        "query_runtime": "onnx",
        "passage_runtime": "onnx-int8",
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def build_kb(
    settings: Settings, embedder: Embedder, files: dict[str, str], name: str = "t"
) -> Path:
    """Write `files` into a folder and ingest them for real; returns the folder."""
    from ingest._insert import ingest_paths

    folder = settings.zhiku_home.parent / f"docs-{name}"
    folder.mkdir(parents=True, exist_ok=True)
    for file_name, text in files.items():
        (folder / file_name).write_text(text, encoding="utf-8")
    report = ingest_paths(settings, [folder], name, embedder=embedder)
    assert report.exit_code == 0, [o.reason_en for o in report.outcomes]
    return folder


QUANT_DOC = """# 大模型显存估算

量化把模型参数从高精度浮点数压缩为低比特整数，显存占用随之下降。

| 大小(billion) | 模型位数 | 显存占用(GB) |
|---|---|---|
| 1.5B | 4 | 0.9 |
| 1.5B | 8 | 1.8 |
| 7B | 4 | 4.2 |
| 7B | 8 | 8.4 |

估算公式：显存 = 参数量 × 4 字节 × 1.2 / (32 / 位数)。
"""

CITY_DOC = """杭州概况
杭州是浙江省省会，位于中国东南沿海，京杭大运河的南端。西湖文化景观于 2011 年列入世界遗产名录。
杭州地铁 1 号线于 2012 年开通，全长 53.6 公里；2 号线于 2014 年开通，全长 43.3 公里。
杭州的市树是香樟，市花是桂花。每年秋季满城桂花飘香。
"""

GPT_DOC = """GPT 系列由 OpenAI 推出，采用 Decoder-only 架构，基于自回归生成模式。
从 GPT-1 到 GPT-4，模型参数量从 1.17 亿增长到千亿级，训练数据规模也不断扩大。
BERT 由谷歌提出，采用双向编码，通过 Masked Language Modeling 学习上下文语义，
并使用 NSP 任务判断两个句子是否连续。
"""

SMALL_CORPUS = {"quant.md": QUANT_DOC, "city.txt": CITY_DOC, "gpt.txt": GPT_DOC}


def make_cjk_pdf(path: Path, pages: list[list[str]]) -> Path:
    """A PDF of Chinese lines (reportlab's built-in STSong-Light CID font), one list per page."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    pdf = canvas.Canvas(str(path))
    for lines in pages:
        pdf.setFont("STSong-Light", 14)
        for i, line in enumerate(lines):
            pdf.drawString(72, 780 - 24 * i, line)
        pdf.showPage()
    pdf.save()
    return path


def give_app_data(settings: Settings, name: str, watched: Path) -> None:
    """What a knowledge base gathers in the app besides its documents, made the way the app
    makes it: a stored conversation, an evaluation question saved from feedback and a watched
    folder binding. `name` must exist (the evaluation set copies its documents)."""
    from app._conversations import ConversationStore, Turn
    from app._evalset import make_case, save_case
    from app._watched import bind_folder
    from ingest.store import KnowledgeBase

    ConversationStore(settings, name).append("c1", Turn("杭州的市花是什么？"))
    with KnowledgeBase.open(settings, name) as kb:
        save_case(settings, kb, make_case("杭州的市花是什么？", "桂花", []))
    watched.mkdir(parents=True, exist_ok=True)
    bind_folder(settings, name, str(watched))  # a watched folder source
    from app.sources import Schedule, SourceStore, new_source

    synced = watched.with_name(f"{watched.name}-daily")  # and one synced on a clock
    synced.mkdir(exist_ok=True)
    SourceStore(settings).add(new_source(name, str(synced), schedule=Schedule(at="03:00")))


def leftovers(settings: Settings, name: str) -> list[Path]:
    """Everything under the data home that is named after knowledge base `name` (a folder, a
    file `name.*`, the store's trash of it), models aside: after a deletion this is empty."""
    home = settings.zhiku_home
    found = []
    for path in home.rglob("*") if home.is_dir() else ():
        parts = path.relative_to(home).parts
        if parts[0] == "models":
            continue
        trash = path.name.startswith(f".deleted-{name}-")
        if name in parts or path.name.split(".", 1)[0] == name or trash:
            found.append(path)
    return found


def app_data_is_empty(settings: Settings, name: str) -> None:
    """Knowledge base `name` (just created again) shows nothing the app kept of an older one
    of that name: no conversation, evaluation question or watched folder."""
    from app._conversations import ConversationStore
    from app._evalset import load_cases
    from app._watched import load_bindings

    assert ConversationStore(settings, name).list() == []
    assert load_cases(settings, name) == []
    assert load_bindings(settings, name) == []


def answer_result(question: str = "员工每年有几天年假?") -> AnswerResult:
    """A stored answer as the app makes it: a passage with its window, a citation, a backend."""
    from app._llm import BackendInfo
    from app.answer import AnswerResult, Citation
    from app.answer.passages import Passage

    passage = Passage(
        number=1,
        chunk_ids=(7, 8),
        doc_id="doc-1",
        title="员工手册",
        source="/data/员工手册.pdf",
        doc_type="pdf",
        page=2,
        page_seq=1,
        headings=("员工手册", "第二章 休假"),
        start=10,
        end=60,
        text="第二章 休假\n员工每年享有十五天带薪年假。",
        score=1.0,
        dense=0.93,
        window=(0, 20),
    )
    return AnswerResult(
        question=question,
        standalone_question=question,
        answer="员工每年享有十五天带薪年假[1]。",
        citations=[Citation(1, passage, 17, 31, "员工每年享有十五天带薪年假")],
        passages=[passage],
        refused=False,
        refusal_reason=None,
        backend=BackendInfo("ollama", "qwen2.5:3b"),
        timings={"retrieval_s": 0.1, "total_s": 1.2},
    )


def write_legacy_conversations(path: Path) -> None:
    """A conversations file as zhiku wrote it before the state database (schema copied from
    that version), with one answered turn carrying feedback, and an older file's missing column."""
    import json
    import sqlite3

    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL,
                created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
            CREATE TABLE turns (conversation_id TEXT NOT NULL REFERENCES conversations(id)
                ON DELETE CASCADE, seq INTEGER NOT NULL, question TEXT NOT NULL, result TEXT,
                notices TEXT NOT NULL, error TEXT NOT NULL, feedback TEXT,
                created_at TEXT NOT NULL, PRIMARY KEY (conversation_id, seq));
            """
        )
        conn.execute("INSERT INTO conversations VALUES ('old1', '年假', 't0', 't1')")
        conn.execute("INSERT INTO conversations VALUES ('old2', '报销', 't2', 't3')")
        result = json.dumps(answer_result().to_dict(), ensure_ascii=False)
        verdict = json.dumps({"score": 0, "note": "不对", "correction": "十五天"})
        conn.execute(
            "INSERT INTO turns VALUES ('old1', 0, '员工每年有几天年假?', ?, '[]', '', ?, 't1')",
            (result, verdict),
        )
        conn.execute(
            "INSERT INTO turns VALUES ('old2', 0, '报销期限?', NULL, '[]', '出错了', NULL, 't3')"
        )
