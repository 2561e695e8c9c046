"""What a knowledge base owns (`app/_owned.py`): the order a deletion follows, and every step
safe to run again when its part is already gone (how a stopped deletion is finished). The
deletion itself, through the service, the CLI, the API and the page, is tested beside each."""

from __future__ import annotations

from app._owned import owned
from ingest.settings import Settings


def test_watchers_go_first_and_the_store_before_the_app_data(settings: Settings) -> None:
    names = [part.en for part in owned(settings, "项目")]
    # a sync after the store is gone would create it again; the app data after the store, so
    # a deletion that stops never leaves documents whose uploads or kept copies are gone
    assert names[:3] == [
        "watched-folder bindings",
        "sources (web pages, sites, folders) and their history",
        "documents and index",
    ]
    assert set(names[3:]) == {
        "uploaded files",
        "kept copies of ingested files",
        "conversations",
        "evaluation set",
    }


def test_every_step_is_a_no_op_when_its_part_is_gone(settings: Settings) -> None:
    for part in owned(settings, "项目"):
        assert not part.present()
        part.delete()  # nothing there: no error
        part.delete()
        assert not part.present()
