"""What the web app does with no page open: the source scheduler, the watched-folder watchers
and the warm-up, one set per data home per process, started when the process starts.

Streamlit runs no app code until a browser connects, so `zhiku web` starts these (`start`) before
it hands over to Streamlit in the same interpreter; the pages reach the same objects through
`background(settings)` (the script runs in this interpreter, so this module and its registry are
shared through `sys.modules`). A page of an app started some other way (`streamlit run
app/main.py`, Streamlit's AppTest) creates them on its first run instead. Nothing here imports
Streamlit: it runs before Streamlit's runtime exists.

The knowledge bases the pages read are held here too (`OpenKbs`), and the pages act through
services that share them (`service`): the warm-up's first retrieval loads the index into the
very instance the first question then uses.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app._llm import BackendInfo, LlmError, ResolvedBackend, resolve_backend
from app._service_library import OpenKbs
from app._warmup import WARMUP_QUERY, Skipped, Warmup, WarmupStep, warmup_steps
from app._watched import Watchers
from app.answer import search
from app.service import Service
from app.sources.scheduler import Scheduler
from ingest import Embedder, Progress, load_embedder
from ingest.settings import Settings
from ingest.store import KnowledgeBase, kb_exists

log = logging.getLogger("zhiku.background")

# What else a resolved backend depends on (top-k and the like do not make a new one).
BACKEND_FIELDS = {
    "zhiku_home",
    "zhiku_models_dir",
    "ollama_host",
    "ollama_model",
    "ollama_timeout_s",
    "llamacpp_model_path",
    "llamacpp_threads",
    "llamacpp_n_ctx",
    "llm_max_tokens",
}
_WARMUP_FIELDS = BACKEND_FIELDS | {"llm_backend", "embedding_model", "query_runtime"}
_MAX_WARMUPS = 16  # per data home: one per (answer settings, knowledge base) asked for


class Background:
    """The background work of one data home in this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scheduler = Scheduler(settings, self.embedder)
        self.watchers = Watchers()
        self._lock = threading.Lock()
        self.kbs = OpenKbs()
        self._warmups: dict[tuple[str, str], Warmup] = {}
        self._stop = threading.Event()
        self._follow: threading.Thread | None = None

    def embedder(self) -> Embedder:
        return load_embedder(self.settings)  # one per model per process (`ingest._embed`)

    # ----- starting and stopping -----------------------------------------------------------

    def start(self, watch_progress: Callable[[], Progress] = Progress) -> Background:
        """Start everything (once): the warm-up of the default knowledge base with the
        configured backend, the scheduler, and a thread that gives every bound folder its
        watcher (now, then at every scheduler look: bindings made by another process too).
        Returns at once; the models load in background threads."""
        self.warmup(self.settings, self.settings.default_kb)
        self.scheduler.start()
        with self._lock:
            if self._follow is None or not self._follow.is_alive():
                self._stop.clear()
                self._follow = threading.Thread(
                    target=self._follow_bindings,
                    args=(watch_progress,),
                    name="zhiku-watched",
                    daemon=True,
                )
                self._follow.start()
        return self

    def _follow_bindings(self, watch_progress: Callable[[], Progress]) -> None:
        while not self._stop.is_set():
            try:
                self.watchers.ensure(self.settings, self.embedder, watch_progress)
            except Exception:  # the embedder cannot load, a bindings file unreadable: next look
                log.exception("cannot start the folder watchers")
            self._stop.wait(self.settings.source_poll_s)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the scheduler and the watchers; a sync under way stops at its next step."""
        self._stop.set()
        self.scheduler.stop(timeout)
        self.watchers.stop_all(timeout)

    # ----- what the pages share ------------------------------------------------------------

    def service(self, settings: Settings) -> Service:
        """The service a page acts through, with the page's settings (read on every run) and
        this data home's knowledge-base instances and folder watchers (cheap to make: it loads
        nothing until asked; the embedder is one per model per process)."""
        return Service(settings, watchers=self.watchers, kbs=self.kbs)

    def kb(self, name: str) -> KnowledgeBase | None:
        """The shared instance of knowledge base `name`, or None when it does not exist (yet)."""
        if not kb_exists(self.settings, name):
            return None
        return self.kbs.get(self.settings, name)

    def forget_kb(self, name: str) -> None:
        """Drop the instance of a deleted knowledge base."""
        self.kbs.forget(name)

    def warmup(self, settings: Settings, kb_name: str) -> Warmup:
        """The warm-up for these answer settings and knowledge base, started by whoever asks
        first (the process start, or a page): one per such pair, so the page that asks for what
        the start warmed finds it done."""
        key = (settings.model_dump_json(include=_WARMUP_FIELDS), kb_name)
        with self._lock:
            warmup = self._warmups.get(key)
            if warmup is None:
                if len(self._warmups) >= _MAX_WARMUPS:
                    self._warmups.pop(next(iter(self._warmups)))
                warmup = self._warmups[key] = Warmup(_warmup_lanes(self, settings, kb_name))
        return warmup.start()

    def forget_warmups(self) -> None:
        with self._lock:
            self._warmups.clear()


def _warmup_lanes(
    background: Background, settings: Settings, kb_name: str
) -> list[list[WarmupStep]]:
    def retrieve() -> None:
        kb = background.kb(kb_name)
        if kb is None or not kb.counts().get("documents", 0):
            raise Skipped(f"knowledge base {kb_name!r} has no documents yet")
        search(kb, load_embedder(settings), WARMUP_QUERY, settings)

    def backend() -> ResolvedBackend:
        # the worker it starts is process-wide: the page's own resolution then finds it running
        try:
            return resolve_backend(settings, settings.llm_backend)
        except LlmError as exc:
            return ResolvedBackend(None, BackendInfo("none", ""), exc)

    return warmup_steps(
        lambda: load_embedder(settings),
        None if settings.llm_backend == "none" else backend,
        retrieve,
    )


_lock = threading.Lock()
_homes: dict[str, Background] = {}


def background(settings: Settings) -> Background:
    """The background of this data home in this process (made, not started, on first use)."""
    home = str(settings.zhiku_home.resolve())
    with _lock:
        found = _homes.get(home)
        if found is None:
            found = _homes[home] = Background(settings)
        return found


def start(settings: Settings, watch_progress: Callable[[], Progress] = Progress) -> Background:
    """Start the background of this data home (`Background.start`)."""
    return background(settings).start(watch_progress)


def forget(settings: Settings) -> None:
    """Stop and drop the background of a data home: what a new process starts from (tests)."""
    with _lock:
        found = _homes.pop(str(settings.zhiku_home.resolve()), None)
    if found is not None:
        found.stop(timeout=0)
