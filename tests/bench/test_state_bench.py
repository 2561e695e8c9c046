"""The state benchmark's load (`bench/state_bench.py`) as a test: 8 clients writing turns and
feedback to their own and to one shared conversation at once, for a bounded time, on SQLite and
on PostgreSQL: nothing lost, no duplicate or missing position, no error (no deadlock: every
client finishes)."""

from __future__ import annotations

from bench.state_bench import run
from ingest.settings import Settings


def test_eight_clients_lose_nothing(state_settings: Settings) -> None:
    found = run(state_settings, seconds=3.0, clients=8)
    assert found["errors"] == []
    assert found["lost"] == 0 and found["duplicates"] == 0
    assert found["write"]["n"] > 0
