"""`load_file`: every supported format becomes normalised text with a title, or a rejection with
a reason; nothing a user drops into the knowledge base may crash ingestion."""

from __future__ import annotations

import hashlib
import json
import random
import unicodedata
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import docx
import pytest
from pypdf import PageObject, PdfWriter
from reportlab.lib.pdfencrypt import StandardEncryption
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from ingest._load import SUPPORTED_SUFFIXES, Loaded, LoadedDoc, Page, load_file, path_doc_id
from ingest._reasons import Rejection

MIB = 1024 * 1024
LIMIT = 5 * MIB
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
FIXTURES = SHARED / "fixtures" / "pdfs"
EVAL = SHARED / "eval"


def load(path: Path, max_bytes: int = LIMIT, **kwargs: Any) -> Loaded:
    return load_file(path, max_bytes, **kwargs)


def load_one(path: Path, **kwargs: Any) -> LoadedDoc:
    loaded = load(path, **kwargs)
    assert len(loaded.docs) == 1
    assert loaded.skipped == []
    return loaded.docs[0]


def rejected(path: Path, max_bytes: int = LIMIT, **kwargs: Any) -> Rejection:
    with pytest.raises(Rejection) as info:
        load(path, max_bytes, **kwargs)
    return info.value


def text_of(doc: LoadedDoc) -> str:
    return "\n".join(page.text for page in doc.pages)


def cjk_count(text: str) -> int:
    return sum(1 for ch in text if "\u4e00" <= ch <= "\u9fff")


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


# --- PDFs made here ------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _cid_font() -> None:
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))


def make_pdf(
    path: Path,
    pages: list[list[str]],
    *,
    font: str = "Helvetica",
    title: str | None = None,
    encrypt: StandardEncryption | None = None,
) -> Path:
    pdf = canvas.Canvas(str(path), encrypt=encrypt)
    if title is not None:
        pdf.setTitle(title)
    for lines in pages:
        pdf.setFont(font, 14)
        for i, line in enumerate(lines):
            pdf.drawString(72, 780 - 24 * i, line)
        pdf.showPage()
    pdf.save()
    return path


def test_pdf_pages_keep_their_numbers_and_empty_pages_are_skipped(tmp_path: Path) -> None:
    pdf = make_pdf(
        tmp_path / "report.pdf",
        [["Revenue grew by ten percent."], [], ["Costs were flat.", "Outlook is stable."]],
    )
    doc = load_one(pdf)
    assert doc.pages == (
        Page(1, "Revenue grew by ten percent."),
        Page(3, "Costs were flat.\nOutlook is stable."),
    )
    assert doc.doc_type == "pdf"
    assert doc.structure == "plain"
    assert doc.doc_id == path_doc_id(pdf)
    assert doc.source == str(pdf.resolve())
    assert doc.size == pdf.stat().st_size
    assert doc.sha256 == hashlib.sha256(pdf.read_bytes()).hexdigest()
    assert doc.title == "Revenue grew by ten percent."  # no metadata title: first line


def test_pdf_chinese_cid_font_text_comes_back(tmp_path: Path) -> None:
    sentence = "知识库支持中文文档检索与大模型问答。"
    doc = load_one(make_pdf(tmp_path / "中文.pdf", [[sentence]], font="STSong-Light"))
    assert doc.pages == (Page(1, sentence),)


@pytest.mark.parametrize(
    ("meta_title", "expected"),
    [
        ("Quarterly Results 2024", "Quarterly Results 2024"),
        ("Microsoft Word - annual plan.docx", "annual plan"),
        ("untitled", "First line of the body"),
        ("main.pdf", "First line of the body"),
        ("thesis.dvi", "First line of the body"),
        ("", "First line of the body"),
    ],
)
def test_pdf_title_from_meaningful_metadata_only(
    tmp_path: Path, meta_title: str, expected: str
) -> None:
    pdf = make_pdf(tmp_path / "t.pdf", [["First line of the body", "more"]], title=meta_title)
    assert load_one(pdf).title == expected


def test_pdf_with_user_password_is_rejected_as_encrypted(tmp_path: Path) -> None:
    pdf = make_pdf(
        tmp_path / "secret.pdf",
        [["top secret"]],
        encrypt=StandardEncryption("pw", ownerPassword="owner"),
    )
    assert rejected(pdf).code == "encrypted"


def test_pdf_encrypted_with_empty_user_password_loads(tmp_path: Path) -> None:
    pdf = make_pdf(
        tmp_path / "open.pdf",
        [["readable without a password"]],
        encrypt=StandardEncryption("", ownerPassword="owner"),
    )
    assert text_of(load_one(pdf)) == "readable without a password"


@pytest.mark.parametrize(("user_password", "opens"), [("", True), ("pw", False)])
def test_pdf_aes256_encryption(tmp_path: Path, user_password: str, opens: bool) -> None:
    plain = make_pdf(tmp_path / "plain.pdf", [["AES protected text"]])
    writer = PdfWriter(clone_from=plain)
    writer.encrypt(user_password, "owner", algorithm="AES-256")
    aes = tmp_path / "aes.pdf"
    writer.write(aes)
    if opens:
        assert text_of(load_one(aes)) == "AES protected text"
    else:
        assert rejected(aes).code == "encrypted"


def test_pdf_over_page_limit_is_rejected(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "long.pdf", [["one"], ["two"], ["three"]])
    rejection = rejected(pdf, max_pdf_pages=2)
    assert rejection.code == "too_many_pages"
    assert rejection.params == {"pages": 3, "limit": 2}
    assert len(load(pdf, max_pdf_pages=3).docs[0].pages) == 3


@pytest.mark.parametrize(
    "content", [b"%PDF-1.4\n" + bytes(range(256)) * 4, b"this is not a pdf at all"]
)
def test_unparseable_pdf_is_broken_pdf(tmp_path: Path, content: bytes) -> None:
    assert rejected(write(tmp_path, "bad.pdf", content)).code == "broken_pdf"


def test_pdf_without_text_layer_is_no_text(tmp_path: Path) -> None:
    pdf = canvas.Canvas(str(tmp_path / "scan.pdf"))
    pdf.rect(100, 100, 300, 300, fill=1)  # an image-only page: shapes, no text
    pdf.showPage()
    pdf.save()
    assert rejected(tmp_path / "scan.pdf").code == "no_text"


# Extraction output of fonts without a usable ToUnicode map, as seen in real files
GARBAGE = {
    "cid": "(cid:1234)(cid:567)(cid:89) (cid:4431)(cid:12)(cid:908)(cid:77) " * 8,
    "replacement": "\ufffd\ufffd\ufffd \ufffd\ufffd\ufffd\ufffd 2024 \ufffd\ufffd\ufffd " * 8,
    "private_use": "\ue001\ue0a2\ue013 \ue044\ue105\ue006 \U000f0001\U00100002 " * 8,
    "mixed_scripts": "ؔߟܚϽѺޥҞ֥भѺࡨ ڹҹϡሁϴϥцڹҹ୳ૢبֵф ԟҪϦؔߟܚث䩭Ѻڹ " * 8,
    "controls": "\x01\x02\x03 \x04\x05\x06\x07 \x0e\x0f\x10\x11 " * 8,
}
JUNK_MARK = "GARBAGE"
CRASH_MARK = "CRASH"


@pytest.fixture
def fake_extraction(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Pages drawn with JUNK_MARK extract as `junk`, pages with CRASH_MARK raise."""

    def install(junk: str) -> None:
        real = PageObject.extract_text

        def extract_text(self: PageObject, *args: object, **kwargs: object) -> str:
            text = real(self, *args, **kwargs)
            if CRASH_MARK in text:
                raise RecursionError("pathological content stream")
            return junk if JUNK_MARK in text else text

        monkeypatch.setattr(PageObject, "extract_text", extract_text)

    return install


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_pdf_with_only_garbage_text_is_no_text(
    tmp_path: Path, fake_extraction: Callable[[str], None], kind: str
) -> None:
    fake_extraction(GARBAGE[kind])
    pdf = make_pdf(tmp_path / "g.pdf", [[JUNK_MARK], [JUNK_MARK]])
    assert rejected(pdf, ocr="off").code == "ocr_off"


def test_pdf_keeps_good_pages_and_drops_a_few_garbage_ones(
    tmp_path: Path, fake_extraction: Callable[[str], None]
) -> None:
    fake_extraction(GARBAGE["mixed_scripts"])
    body = ["This page has ordinary readable text about the annual budget."]
    pdf = make_pdf(tmp_path / "m.pdf", [body, [JUNK_MARK], body, body, body])
    assert [page.number for page in load_one(pdf, ocr="off").pages] == [1, 3, 4, 5]


def test_pdf_mostly_garbage_is_no_text_even_with_a_good_page(
    tmp_path: Path, fake_extraction: Callable[[str], None]
) -> None:
    fake_extraction(GARBAGE["cid"])
    pdf = make_pdf(tmp_path / "m.pdf", [["A readable cover page."], *[[JUNK_MARK]] * 5])
    assert rejected(pdf, ocr="off").code == "ocr_off"


def test_pdf_page_that_crashes_the_extractor_is_skipped(
    tmp_path: Path, fake_extraction: Callable[[str], None]
) -> None:
    fake_extraction("")
    pdf = make_pdf(tmp_path / "c.pdf", [["first page"], [CRASH_MARK], ["third page"]])
    assert load_one(pdf, ocr="off").pages == (Page(1, "first page"), Page(3, "third page"))


def test_pdf_where_every_page_crashes_is_broken_pdf(
    tmp_path: Path, fake_extraction: Callable[[str], None]
) -> None:
    fake_extraction("")
    pdf = make_pdf(tmp_path / "c.pdf", [[CRASH_MARK], [CRASH_MARK]])
    assert rejected(pdf, ocr="off").code == "broken_pdf"


@pytest.mark.parametrize(
    "text",
    [
        "Это обычный русский текст о бюджете компании на следующий год.",
        "The α-helix and β-sheet form; μm scale, 5 % error, σ = 0.3 and Δt = 2 s.",
        "第 1 章 绪论 .................................................. 1\n"
        "第 2 章 方法 .................................................. 7",
        "日本語のテキストと한국어 텍스트, Windows版の説明。",
    ],
)
def test_pdf_quality_score_accepts_real_text_in_other_scripts(
    tmp_path: Path, fake_extraction: Callable[[str], None], text: str
) -> None:
    fake_extraction(text)
    pdf = make_pdf(tmp_path / "ok.pdf", [[JUNK_MARK]])
    assert text_of(load_one(pdf)) == unicodedata.normalize("NFKC", text)


# --- size, suffix and reading --------------------------------------------------------------------


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    assert rejected(write(tmp_path, "empty.txt", b"")).code == "empty"


def test_oversize_file_is_rejected_without_being_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(50 * MIB)  # sparse: takes no disk space

    def must_not_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("an oversize file was opened")

    monkeypatch.setattr(Path, "open", must_not_read)
    monkeypatch.setattr(Path, "read_bytes", must_not_read)
    monkeypatch.setattr("builtins.open", must_not_read)
    rejection = rejected(big, max_bytes=MIB)
    assert rejection.code == "too_large"
    assert rejection.params["size_mb"] == pytest.approx(50)
    assert rejection.params["limit_mb"] == pytest.approx(1)


def test_file_at_the_size_limit_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "exact.txt", "a" * 100)
    assert text_of(load(path, max_bytes=100).docs[0]) == "a" * 100
    assert rejected(path, max_bytes=99).code == "too_large"


@pytest.mark.parametrize("name", ["sheet.xls", "archive.zip", "README"])
def test_unsupported_suffix_is_rejected(tmp_path: Path, name: str) -> None:
    rejection = rejected(write(tmp_path, name, b"whatever"))
    assert rejection.code == "unsupported"
    assert rejection.params["suffix"] == Path(name).suffix
    assert rejection.params["supported"] == ", ".join(sorted(SUPPORTED_SUFFIXES))


def test_suffix_is_case_insensitive(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path, "NOTES.TXT", "upper case suffix"))
    assert doc.doc_type == "txt"


def test_unreadable_path_is_rejected(tmp_path: Path) -> None:
    (tmp_path / "folder.txt").mkdir()
    assert rejected(tmp_path / "folder.txt").code == "unreadable"


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    assert rejected(tmp_path / "gone.txt").code == "unreadable"


# --- plain text ----------------------------------------------------------------------------------

SHORT_ZH = "今天天气很好我们一起去公园散步吧"
LONG_ZH = (
    "人工智能发展经历了从早期符号系统到当前大模型的演进过程。早期系统依赖人工规则,"
    "统计机器学习实现了数据驱动学习,而深度学习通过神经网络自动提取特征。\n"
    "当前大模型以通用性强、多模态处理等为特点,参数规模达千亿级,"
    "通过预训练和微调展现出零样本学习等能力。"
)


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Plain ASCII and 中文混排 in UTF-8.\nSecond line.", "utf-8"),
        ("带 BOM 的 UTF-8 文本\n第二行", "utf-8-sig"),
        (SHORT_ZH, "gbk"),
        ("短句:知识库", "gbk"),
        (LONG_ZH, "gbk"),
        ("GB18030 能编码 𠮷 和 € 以及䶮字。这是一段测试文字", "gb18030"),
        ("繁體中文的文件也應該能夠正確讀取,這是一段用來測試編碼偵測的文字。", "big5"),
        ("UTF-16 小端 with BOM\nline two", "utf-16-le"),
        ("UTF-16 大端 with BOM\nline two", "utf-16-be"),
        ("UTF-32 text 文字", "utf-32-le"),
    ],
)
def test_txt_encodings_round_trip(tmp_path: Path, text: str, encoding: str) -> None:
    boms = {"utf-16-le": "\ufeff", "utf-16-be": "\ufeff", "utf-32-le": "\ufeff"}
    path = write(tmp_path, "doc.txt", boms.get(encoding, "") + text, encoding)
    doc = load_one(path)
    assert doc.pages == (Page(None, unicodedata.normalize("NFKC", text)),)
    assert doc.structure == "plain"
    assert doc.title == unicodedata.normalize("NFKC", text).split("\n")[0][:80]


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize(
    "text",
    ["Exported by an old Windows tool", "导出文件 2024\n一丁七万丈三上下不与丐丑专且丕世丗丘丙业"],
)
def test_utf16_without_bom_is_text_not_binary(tmp_path: Path, text: str, encoding: str) -> None:
    path = write(tmp_path, "w.txt", text, encoding)
    assert text_of(load_one(path)) == text


@pytest.mark.parametrize(
    "content",
    [
        bytes(range(256)) * 16,
        b"\x89PNG\r\n\x1a\n" + random.Random(7).randbytes(4096),
        b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" * 50,
    ],
)
def test_binary_named_txt_is_rejected(tmp_path: Path, content: bytes) -> None:
    assert rejected(write(tmp_path, "photo.txt", content)).code == "binary"


def test_whitespace_only_text_is_empty(tmp_path: Path) -> None:
    assert rejected(write(tmp_path, "blank.txt", " \n\t\r\n  \n")).code == "blank"


def test_text_is_normalised(tmp_path: Path) -> None:
    raw = (
        "\n\n⼤模型   \r\n\r\n\r\n\r\n\r\n"
        "ｆｕｌｌ ｗｉｄｔｈ\x07\x1b Ｎｏ.１\r\tindented\t \r\n\n\n"
    )
    doc = load_one(write(tmp_path, "n.txt", raw))
    assert text_of(doc) == "大模型\n\nfull width No.1\n\tindented"
    assert doc.title == "大模型"


def test_text_title_skips_lines_without_letters(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path, "n.txt", "---\n12\n" + "标题很长" * 30 + "\nbody"))
    assert doc.title == ("标题很长" * 30)[:80]


# --- Markdown ------------------------------------------------------------------------------------


def test_markdown_keeps_its_text_and_takes_the_heading_as_title(tmp_path: Path) -> None:
    source = "intro line\n\n# 知库 使用说明\n\n| 命令 | 作用 |\n|---|---|\n| ingest | 导入 |\n"
    doc = load_one(write(tmp_path, "guide.md", source))
    assert doc.title == "知库 使用说明"
    assert doc.structure == "markdown"
    assert doc.doc_type == "md"
    assert doc.pages == (Page(None, source.rstrip("\n")),)


def test_markdown_without_heading_uses_first_line(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path, "notes.markdown", "\n\nJust some notes\nmore"))
    assert doc.title == "Just some notes"


# --- DOCX ----------------------------------------------------------------------------------------


def make_docx(path: Path, core_title: str = "") -> Path:
    document = docx.Document()
    document.core_properties.title = core_title
    document.add_heading("年度报告", level=1)
    document.add_paragraph("第一段正文。")
    document.add_paragraph("要点一", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    for cell, text in zip(table._cells, ["名称", "数量", "苹果\n红富士", "3|4"], strict=True):
        cell.text = text
    document.add_heading("小结", level=2)
    document.add_paragraph("结尾。")
    document.save(str(path))
    return path


def test_docx_renders_headings_paragraphs_and_tables_in_order(tmp_path: Path) -> None:
    doc = load_one(make_docx(tmp_path / "report.docx"))
    assert text_of(doc) == (
        "# 年度报告\n\n第一段正文。\n\n要点一\n\n"
        "| 名称 | 数量 |\n|---|---|\n| 苹果 红富士 | 3\\|4 |\n\n"
        "## 小结\n\n结尾。"
    )
    assert doc.title == "年度报告"
    assert doc.structure == "markdown"
    assert doc.doc_type == "docx"


def test_docx_core_title_wins(tmp_path: Path) -> None:
    assert load_one(make_docx(tmp_path / "r.docx", core_title="Annual Report")).title == (
        "Annual Report"
    )


def test_docx_title_style_is_a_level_one_heading(tmp_path: Path) -> None:
    document = docx.Document()
    document.add_paragraph("封面说明")
    document.add_heading("项目计划书", level=0)  # the "Title" style
    document.save(str(tmp_path / "plan.docx"))
    doc = load_one(tmp_path / "plan.docx")
    assert text_of(doc) == "封面说明\n\n# 项目计划书"
    assert doc.title == "项目计划书"


def test_not_a_docx_is_bad_docx(tmp_path: Path) -> None:
    noise = write(tmp_path, "noise.docx", random.Random(1).randbytes(2048))
    assert rejected(noise).code == "bad_docx"
    other_zip = tmp_path / "other.docx"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    assert rejected(other_zip).code == "bad_docx"


# --- HTML ----------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html><head><title>产品手册</title><style>.x { color: red }</style>
<script>var leaked = "SCRIPT";</script></head>
<body>
<h1>安装指南</h1>
<p>第一步:下载<b>安装包</b>。<br>第二步:运行。</p>
<div hidden>HIDDEN-A</div>
<p style="display: none">HIDDEN-B</p>
<span aria-hidden="true">HIDDEN-C</span>
<p style="color:grey; visibility:hidden">HIDDEN-D</p>
<noscript>NOSCRIPT</noscript><template><p>TEMPLATE</p></template>
<!-- COMMENT -->
<svg><text>SVG</text></svg><iframe src="x">IFRAME</iframe>
<table><thead><tr><th>参数</th><th>值</th></tr></thead>
<tbody><tr><td>内存</td><td>8 GB <span hidden>HIDDEN-E</span></td></tr>
<tr><td>接口</td><td>A|B</td></tr></tbody></table>
<h2>常见问题</h2>
<ul><li>问题一</li><li>问题二</li></ul>
<pre>code  line1
    indented</pre>
</body></html>"""


def test_html_visible_text_rendered_as_markdown(tmp_path: Path) -> None:
    doc = load_one(write(tmp_path, "manual.html", PAGE))
    assert text_of(doc) == (
        "# 安装指南\n\n第一步:下载安装包。\n第二步:运行。\n\n"
        "| 参数 | 值 |\n|---|---|\n| 内存 | 8 GB |\n| 接口 | A\\|B |\n\n"
        "## 常见问题\n\n问题一\n\n问题二\n\ncode  line1\n    indented"
    )
    assert doc.title == "产品手册"
    assert doc.structure == "markdown"
    assert doc.doc_type == "html"


def test_html_title_falls_back_to_first_h1(tmp_path: Path) -> None:
    page = "<html><body><p>intro</p><h1>Real Title</h1></body></html>"
    assert load_one(write(tmp_path, "x.htm", page)).title == "Real Title"


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="gbk">',
        '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">',
    ],
)
def test_html_declared_charset_is_used(tmp_path: Path, meta: str) -> None:
    page = f"<html><head>{meta}<title>通知</title></head><body><p>{LONG_ZH}</p></body></html>"
    doc = load_one(write(tmp_path, "gbk.html", page, "gbk"))
    assert doc.title == "通知"
    assert text_of(doc) == unicodedata.normalize("NFKC", LONG_ZH)


def test_html_without_charset_is_detected(tmp_path: Path) -> None:
    page = f"<html><body><p>{SHORT_ZH}</p></body></html>"
    assert text_of(load_one(write(tmp_path, "plain.html", page, "gbk"))) == SHORT_ZH


def test_library_crash_becomes_a_rejection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("ingest.load.html.BeautifulSoup", explode)
    rejection = rejected(write(tmp_path, "deep.html", "<div>" * 10 + "x"))
    assert rejection.code == "unreadable"
    assert "recursion" in str(rejection.params["detail"])


# --- JSONL ---------------------------------------------------------------------------------------


def test_jsonl_records_become_documents(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": "a1", "title": "第一篇", "text": "正文一\r\n第二行"}, ensure_ascii=False),
        json.dumps({"id": 42, "text": "没有标题的记录\u0000\n下一行"}, ensure_ascii=False),
    ]
    path = write(tmp_path, "corpus.jsonl", "\n".join(lines) + "\n")
    loaded = load(path)
    assert loaded.skipped == []
    first, second = loaded.docs
    assert (first.doc_id, first.title, first.pages) == (
        "a1",
        "第一篇",
        (Page(None, "正文一\n第二行"),),
    )
    assert (second.doc_id, second.title) == ("42", "没有标题的记录")
    assert text_of(second) == "没有标题的记录\n下一行"  # the NUL is gone
    assert first.source == f"{path.resolve()}#a1"
    assert first.size == len(lines[0].encode("utf-8"))
    assert first.sha256 == hashlib.sha256("第一篇\n正文一\n第二行".encode()).hexdigest()
    assert {d.doc_type for d in loaded.docs} == {"jsonl"}
    assert {d.structure for d in loaded.docs} == {"plain"}


def test_jsonl_bad_lines_are_skipped_with_their_line_numbers(tmp_path: Path) -> None:
    lines = [
        '{"id": "ok1", "text": "good"}',
        "{not json",
        '{"title": "no id", "text": "x"}',
        '{"id": "e", "text": "   "}',
        "",
        '{"id": "ok1", "text": "same id again"}',
        '["a", "list"]',
        '{"id": "ok2", "text": "also good"}',
    ]
    loaded = load(write(tmp_path, "c.jsonl", "\n".join(lines)))
    assert [d.doc_id for d in loaded.docs] == ["ok1", "ok2"]
    assert text_of(loaded.docs[0]) == "good"
    assert [(r.code, r.params["line"]) for r in loaded.skipped] == [
        ("bad_jsonl", 2),
        ("bad_jsonl", 3),
        ("bad_jsonl", 4),
        ("bad_jsonl", 6),
        ("bad_jsonl", 7),
    ]
    assert "duplicate" in str(loaded.skipped[3].params["detail"])


def test_jsonl_with_no_valid_line_is_rejected(tmp_path: Path) -> None:
    rejection = rejected(write(tmp_path, "bad.jsonl", '\n{"id": "x"}\n{oops\n'))
    assert rejection.code == "bad_jsonl"
    assert rejection.params["line"] == 2


def test_jsonl_with_only_blank_lines_is_empty(tmp_path: Path) -> None:
    assert rejected(write(tmp_path, "blank.jsonl", "\n  \n\n")).code == "blank"


@pytest.mark.parametrize(("name", "count"), [("cmrc2018_trial", 231), ("seed_dev", 5)])
def test_eval_corpora_load(name: str, count: int) -> None:
    corpus = EVAL / name / "corpus.jsonl"
    if not corpus.is_file():
        pytest.skip(f"{corpus} is not here (only in the development workspace)")
    loaded = load(corpus, max_bytes=100 * MIB)
    assert len(loaded.docs) == count
    assert loaded.skipped == []
    assert len({doc.doc_id for doc in loaded.docs}) == count
    assert all(doc.title and doc.pages[0].text for doc in loaded.docs)


# --- real PDFs from the shared fixtures ----------------------------------------------------------

# CJK characters per the fixtures README (counted with pypdf)
README_CJK = {
    "zh/cn_quarterly_report_2018Q1_22p.pdf": 7216,
    "zh/cn_audit_letter_ocr_6p.pdf": 3983,
    "zh/cn_academic_paper_firstpage.pdf": 1399,
    "zh/cn_latex_paper_elegantpaper_5p.pdf": 1045,
    "zh/cn_resume_duplicate_chars.pdf": 1082,
    "zh/cn_product_list_table.pdf": 579,
    "zh/cn_bond_prospectus_tables.pdf": 448,
    "zh/cn_land_use_standard_table.pdf": 423,
    "zh/cn_lab_report_table.pdf": 299,
    "zh/cn_broker_report_financial_tables.pdf": 281,
    "zh/cn_company_header_duplicate_chars.pdf": 148,
    "zh/cn_customs_form_bad_fonts.pdf": 69,
    "zh/multilang_hello_world.pdf": 6,
}
EXPECTED_REJECTION = {
    "zh/cn_thesis_template_broken_tounicode_32p.pdf": {"ocr_off"},
    "bad/empty_0_bytes.pdf": {"empty"},
    "bad/evil_xobjects_issue_1113.pdf": {"broken_pdf", "ocr_off"},
}
# damaged but recoverable: a phrase each must keep
RECOVERED = {
    "bad/zen_of_python_corrupted.pdf": "Beautiful is better than ugly",
    "bad/malformed_from_issue_932.pdf": "2021",
}
FIXTURE_NAMES = (
    sorted(str(p.relative_to(FIXTURES)) for p in FIXTURES.rglob("*.pdf"))
    if FIXTURES.is_dir()
    else ["(fixtures missing)"]
)


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_pdf_fixture(name: str) -> None:
    """The text layers of real PDFs, OCR off (tests/ingest/load/test_ocr.py: what OCR adds)."""
    if not FIXTURES.is_dir():
        pytest.skip("the shared PDF fixtures exist only in the development workspace")
    path = FIXTURES / name
    if name in EXPECTED_REJECTION or "__" in path.stem:  # "__" precedes the password
        expected = EXPECTED_REJECTION.get(name, {"encrypted"})
        assert rejected(path, max_bytes=100 * MIB, ocr="off").code in expected
        return
    doc = load_one(path, ocr="off")
    text = text_of(doc)
    numbers = [page.number for page in doc.pages]
    assert numbers == sorted(set(numbers)) and all(n is not None and n >= 1 for n in numbers)
    assert not any("\u2f00" <= ch <= "\u2fdf" for ch in text), "Kangxi radicals survived NFKC"
    assert "\ufffd" not in text and "(cid:" not in text
    assert doc.title
    if name in README_CJK:
        assert cjk_count(text) == pytest.approx(README_CJK[name], rel=0.05)
    elif name in RECOVERED:
        assert RECOVERED[name] in text
    else:
        assert name.startswith(("en/", "encrypted/")), f"no expectation for fixture {name}"
        assert sum(ch.isascii() and ch.isalpha() for ch in text) >= 20
