"""The web app's background work starts with the process (`app/_background.py`): `zhiku web`
syncs scheduled sources and follows watched folders with no page ever opened, and the pages use
the very scheduler, watchers and warm-up the start began.

The first test runs the real `zhiku web` in a subprocess against a real HTTP site on 127.0.0.1
(`tests/web_site.py`) and never connects a browser or a websocket: whatever is synced was synced
by the process on its own. LLM_BACKEND=none: the warm-up's LLM lane is the subject of
`tests/app/test_warmup.py`, not of this test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import MODELS_DIR, build_kb, make_settings
from web_site import WebSite, html

from app._watched import bind_folder
from app.sources import Schedule, SourceStore, new_source
from ingest._embed import Embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase

pytestmark = pytest.mark.timeout(400)
BIN = Path(sys.executable).parent
KB = "default"
DEADLINE_S = 120.0
RETURNS = "商品签收后七天内可以无理由退货,运费由买家承担。"
INVOICES = "电子发票在订单完成后二十四小时内发送到注册邮箱。"
TRAVEL = "出差结束后三十天内提交报销单,逾期不予报销。"


@pytest.fixture
def site() -> Iterator[WebSite]:
    with WebSite() as served:
        served.put("/help/returns.html", html("退货政策", f"<h1>退货政策</h1><p>{RETURNS}</p>"))
        served.put("/help/invoices.html", html("发票说明", f"<h1>发票说明</h1><p>{INVOICES}</p>"))
        yield served


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ZHIKU_", "STREAMLIT_", "LLM_"))
    }
    env.update(
        {
            "ZHIKU_HOME": str(home),
            "ZHIKU_MODELS_DIR": str(MODELS_DIR),
            "LLM_BACKEND": "none",
            "QUERY_RUNTIME": "onnx",  # as `make_settings`: not what `zhiku prepare` measured
            "PASSAGE_RUNTIME": "onnx-int8",
            "WEB_DELAY_S": "0",
            "SOURCE_POLL_S": "1",  # the scheduler's looks: a source added later is seen soon
        }
    )
    return env


def _texts(settings: Settings) -> str:
    """Every page text of the knowledge base, read as another process would."""
    with KnowledgeBase.open(settings, KB) as kb:
        return "\n".join(kb.page_text(d.doc_id, 0) or "" for d in kb.documents())


def _scheduled(settings: Settings, source_id: str) -> bool:
    history = SourceStore(settings).get(source_id).history
    return any(r.trigger == "schedule" and r.added >= 1 for r in history)


def _wait(what: str, done: Callable[[], bool], process: subprocess.Popen[bytes], port: int) -> int:
    """Poll until `done()`, the server answering its health check all along; how many health
    checks were answered meanwhile."""
    deadline = time.monotonic() + DEADLINE_S
    healthy = 0
    while not done():
        assert process.poll() is None, f"zhiku web exited ({process.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {DEADLINE_S:.0f} s"
        try:
            if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=5).text == "ok":
                healthy += 1
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.5)
    return healthy


def test_zhiku_web_syncs_on_schedule_and_follows_folders_with_no_page_open(
    tmp_path: Path, embedder: Embedder, site: WebSite
) -> None:
    home = tmp_path / "home"
    settings = make_settings(home)
    build_kb(settings, embedder, {"前言.txt": "客服中心\n\n这里收集常见的客服问题。"}, name=KB)
    store = SourceStore(settings)
    returns = store.add(
        new_source(KB, site.url("/help/returns.html"), schedule=Schedule(every_s=2))
    )
    folder = tmp_path / "shared-drive"
    folder.mkdir()
    (folder / "报销规定.txt").write_text(f"差旅报销规定\n\n{TRAVEL}", encoding="utf-8")
    bind_folder(settings, KB, str(folder))

    port = _free_port()
    log = (tmp_path / "zhiku-web.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "zhiku"), "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,  # no .env of the developer's applies
        env=_env(home),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        # nobody opens a page: the schedule fires and the folder is followed all the same
        healthy = _wait(
            "scheduled sync of the source and ingestion of the watched folder",
            lambda: (
                _scheduled(settings, returns.id)
                and RETURNS in _texts(settings)
                and TRAVEL in _texts(settings)
            ),
            process,
            port,
        )
        assert healthy >= 1  # the server answered while the models loaded and the syncs ran
        # a source added while it runs is picked up without a restart
        invoices = store.add(
            new_source(KB, site.url("/help/invoices.html"), schedule=Schedule(every_s=2))
        )
        _wait(
            "scheduled sync of the source added later",
            lambda: _scheduled(settings, invoices.id) and INVOICES in _texts(settings),
            process,
            port,
        )
        # and the schedule goes on firing: a second scheduled look at the first page
        _wait(
            "a second scheduled sync",
            lambda: sum(r.trigger == "schedule" for r in store.get(returns.id).history) >= 2,
            process,
            port,
        )
        assert all(r.trigger == "schedule" for r in store.get(returns.id).history)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        print((tmp_path / "zhiku-web.log").read_text(errors="replace")[-3000:])


@pytest.fixture
def app_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """A data home the in-process app (Streamlit's AppTest) is pointed at, read from the
    environment as `zhiku web` and the pages read it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ZHIKU_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ZHIKU_MODELS_DIR", str(MODELS_DIR))
    monkeypatch.setenv("LLM_BACKEND", "none")
    monkeypatch.setenv("QUERY_RUNTIME", "onnx")  # the session's embedder: loaded once
    monkeypatch.setenv("PASSAGE_RUNTIME", "onnx-int8")
    settings = Settings()
    yield settings
    from app._background import forget

    forget(settings)


def test_the_pages_use_what_the_start_began(
    app_home: Settings, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlit.testing.v1 import AppTest
    from support import REPO

    import app._background as background_module
    from app._warmup import warmup_steps
    from app.ui.resources import get_service, get_warmup
    from app.ui.sources import ensure_scheduler
    from app.ui.watched import get_watchers

    build_kb(app_home, embedder, {"前言.txt": "客服中心\n\n这里收集常见的客服问题。"}, name=KB)
    made: list[str] = []

    def counted(*args: Any) -> Any:
        made.append("warm-up")
        return warmup_steps(*args)

    monkeypatch.setattr(background_module, "warmup_steps", counted)
    started = background_module.start(app_home)  # what `zhiku web` does before serving
    assert started.warmup(app_home, KB).wait(120), "the warm-up did not finish"
    scheduler_threads = [t for t in threading.enumerate() if t.name == "zhiku-sources"]

    at = AppTest.from_file(str(REPO / "app" / "main.py"), default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert "回答方式:仅检索" in " ".join(m.value for m in at.markdown)  # no "准备中…"
    assert made == ["warm-up"]  # the page found the start's warm-up done, it began none
    assert ensure_scheduler(app_home) is started.scheduler and started.scheduler.alive
    assert get_watchers(app_home) is started.watchers
    assert get_warmup(app_home, KB) is started.warmup(app_home, KB)
    # the knowledge base the warm-up searched (its index loaded) is the instance pages read
    assert get_service(app_home).kb(KB) is started.kb(KB)
    assert [t for t in threading.enumerate() if t.name == "zhiku-sources"] == scheduler_threads
