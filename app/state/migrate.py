"""Copy the app's records from one state database to another (SQLite → PostgreSQL and back):
every table zhiku declares, in dependency order, in batches, into a database that holds none of
them yet; then the row counts of both are compared, table by table."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.state.engine import StateError, metadata

BATCH = 500


def _tables() -> list[sa.Table]:
    return [t for t in metadata.sorted_tables if t.name != "zhiku_schema"]


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(
                sa.select(sa.func.count()).select_from(table)
            ).scalar_one()
            for table in _tables()
        }


def copy_state(
    source: Engine, target: Engine, say: Callable[[str], None] = lambda _: None
) -> dict[str, int]:
    """Copy every record of `source` into `target` (both opened with `open_state`, so their
    tables exist); returns the counts, equal on both sides. Refuses a target that holds records."""
    if source.url == target.url:
        raise StateError(
            "the target is the database in use: name another one",
            "目标就是当前使用的数据库：请指定另一个",
        )
    held = {name: n for name, n in counts(target).items() if n}
    if held:
        listed = ", ".join(f"{name} {n}" for name, n in held.items())
        raise StateError(
            f"the target already holds records ({listed}): migrate into an empty database",
            f"目标数据库已有记录（{listed}）：请迁移到空数据库",
        )
    with source.connect() as reading, target.begin() as writing:
        for table in _tables():
            copied = 0
            result = reading.execution_options(yield_per=BATCH).execute(sa.select(table))
            for batch in result.mappings().partitions():
                writing.execute(sa.insert(table), [dict(row) for row in batch])
                copied += len(batch)
            say(f"{table.name}: {copied}")
    found, copied = counts(source), counts(target)
    if found != copied:
        differ = ", ".join(
            f"{name} {found[name]} → {copied.get(name)}"
            for name in found
            if found[name] != copied.get(name)
        )
        raise StateError(
            f"the copy does not match the source ({differ}): the source is unchanged",
            f"副本与源数据库不一致（{differ}）：源数据库未改动",
        )
    return copied
