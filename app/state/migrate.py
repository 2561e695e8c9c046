"""Copy the app's records from one state database to another (SQLite → PostgreSQL and back):
every table zhiku declares, in dependency order, in batches, into a database that holds none of
them yet; then the row counts of both are compared, table by table. The originals the viewer
opens follow to where the target keeps them (`ORIGINALS_STORE` as it resolves for the target):
into its database, or back into files under the data home."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from app.state.engine import StateError, metadata
from ingest import keep_original, original_file, originals_in_database
from ingest.settings import Settings
from ingest.store import KnowledgeBase, list_kbs

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


def check_target(source: Engine, target: Engine) -> None:
    """Refuse the database in use and one that already holds records."""
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


def copy_state(
    source: Engine, target: Engine, say: Callable[[str], None] = lambda _: None
) -> dict[str, int]:
    """Copy every record of `source` into `target` (both opened with `open_state`, so their
    tables exist) in one transaction; returns the counts, equal on both sides. Refuses a target
    that holds records."""
    check_target(source, target)
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


@dataclass
class CarriedOriginals:
    carried: int = 0  # files now where the target keeps originals
    left: int = 0  # stay where they are: uploads in their folder, files with KEEP_ORIGINALS=false
    missing: list[str] = field(default_factory=list)  # "kb: origin" with no original anywhere


def copy_originals(
    source: Settings, target: Settings, say: Callable[[str], None] = lambda _: None
) -> CarriedOriginals:
    """Carry every knowledge base's originals to where `target` keeps them: each document's
    file as `source` opens it (its kept copy, its upload, the file itself unchanged, or its row
    in the source database, fetched into the data home) is kept the `target`'s way. Nothing to
    do when neither keeps them in a database (the files stay where they are). Idempotent."""
    report = CarriedOriginals()
    if not (originals_in_database(source) or originals_in_database(target)):
        return report
    for name in list_kbs(source):
        with KnowledgeBase.open(source, name) as kb:
            records = kb.source_records()
        before = report.carried
        for origin, sha256, _ in records:
            path = original_file(source, name, origin, sha256)
            if path is None:
                report.missing.append(f"{name}: {origin}")
            elif keep_original(target, name, path, sha256):
                report.carried += 1
            else:
                report.left += 1
        say(f"originals of {name}: {report.carried - before} of {len(records)}")
    return report
