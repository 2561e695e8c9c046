"""What a knowledge base owns, in the order a deletion removes it: the one list that
`Service.delete_kb` goes through, so that `zhiku kb delete`, the HTTP API and the web app
delete the same things in the same order.

Its watched-folder bindings and watchers go first (a sync finishing after the store is gone
would create it again), then the store's data (after which the knowledge base is gone for
every reader), then what the app keeps beside it under the data home. Each `delete` does
nothing when its part is already gone, so a deletion that stopped half-way is finished by
running it again. Anything new kept per knowledge base belongs in `owned`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app._conversations import delete_kb_conversations, kb_has_conversations
from app._evalset import delete_kb_evalset, kb_has_evalset
from app._watched import Watchers, delete_kb_watched, load_bindings
from app.sources.model import SourceStore
from ingest import delete_kb_originals, delete_kb_uploads, kb_has_originals, uploads_dir
from ingest.settings import Settings
from ingest.store import delete_kb, kb_exists, validate_kb_name

DELETING_DIR = "deleting"  # <ZHIKU_HOME>/deleting/<kb>: a deletion begun and not finished
WATCHER_STOP_S = 60.0  # how long a deletion waits for a watcher's sync to stop


@dataclass(frozen=True)
class Owned:
    """One thing a knowledge base owns, in the store or under the data home, and how it goes."""

    en: str
    zh: str
    present: Callable[[], bool]
    delete: Callable[[], None]


def deletion_mark(settings: Settings, name: str) -> Path:
    return settings.zhiku_home / DELETING_DIR / validate_kb_name(name)


def owned(
    settings: Settings,
    name: str,
    watchers: Watchers | None = None,
    forget: Callable[[], None] = lambda: None,
) -> list[Owned]:
    """Everything knowledge base `name` owns, in deletion order. `watchers` are this
    process's (others stop when their binding goes); `forget` drops a cached instance."""
    name = validate_kb_name(name)

    def stop_watching() -> None:
        delete_kb_watched(settings, name)  # a watcher in another process sees it within seconds
        if watchers is not None:
            watchers.stop(name, timeout=WATCHER_STOP_S)

    def delete_store() -> None:
        forget()
        if kb_exists(settings, name):
            delete_kb(settings, name)

    return [
        Owned(
            "watched-folder bindings",
            "监视文件夹的绑定",
            lambda: bool(load_bindings(settings, name)),
            stop_watching,
        ),
        # before the documents: a scheduled sync must not bring the knowledge base back
        Owned(
            "sources (web pages, sites, folders) and their history",
            "数据来源(网页、网站、文件夹)及同步记录",
            lambda: bool(SourceStore(settings).list(name)),
            lambda: SourceStore(settings).delete_kb(name),
        ),
        Owned("documents and index", "文档和索引", lambda: kb_exists(settings, name), delete_store),
        Owned(
            "uploaded files",
            "上传的文件",
            uploads_dir(settings, name).exists,
            lambda: delete_kb_uploads(settings, name),
        ),
        Owned(  # with ORIGINALS_STORE=database, the uploads' and copies' rows in the database
            "kept copies of ingested files",
            "导入文件的副本",
            lambda: kb_has_originals(settings, name),
            lambda: delete_kb_originals(settings, name),
        ),
        Owned(
            "conversations",
            "对话记录",
            lambda: kb_has_conversations(settings, name),
            lambda: delete_kb_conversations(settings, name),
        ),
        Owned(
            "evaluation set",
            "评测题",
            lambda: kb_has_evalset(settings, name),
            lambda: delete_kb_evalset(settings, name),
        ),
    ]


__all__ = ["DELETING_DIR", "Owned", "deletion_mark", "owned"]
