"""Sources: folders, web pages and sites kept in step with a knowledge base, by hand or on a
schedule. `model` (what a source is, and where it is kept), `sync` (the one sync runner),
`scheduler` (the app's background thread firing schedules), `cli` (`zhiku sources`)."""

from app.sources.model import (
    PageState,
    Schedule,
    Source,
    SourceError,
    SourceStore,
    SyncItem,
    SyncRecord,
)
from app.sources.sync import due_sources, new_source, sync_all, sync_source

__all__ = [
    "PageState",
    "Schedule",
    "Source",
    "SourceError",
    "SourceStore",
    "SyncItem",
    "SyncRecord",
    "due_sources",
    "new_source",
    "sync_all",
    "sync_source",
]
