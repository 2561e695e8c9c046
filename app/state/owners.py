"""Whose a record is: the `author_id` column of conversations and evaluation cases, and the
filter (`Owner`) that keeps a query to the records of one principal.

A record's author is the person who made it. A record of nobody (`author_id` NULL) was made
without accounts (the single local user of a zhiku on this machine), or its author's account was
deleted since (the column is set to NULL then, so a new person who gets the freed id inherits
nothing): such records are the administrators', as they were the local user's. Which principal
owns what is decided in `app.access` (`Principal.owns`); this module only turns it into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

AUTHOR = "author_id"


def author_column() -> sa.Column[int]:
    return sa.Column(
        AUTHOR, sa.Integer, sa.ForeignKey("people.id", ondelete="SET NULL"), nullable=True
    )


@dataclass(frozen=True)
class Owner:
    """The records of `person` (None: the local user, who has no id) and, with `ownerless`,
    the records of nobody."""

    person: int | None
    ownerless: bool = False

    def holds(self, author: int | None) -> bool:
        if author is None:
            return self.ownerless
        return author == self.person

    def where(self, column: sa.ColumnElement[int | None]) -> sa.ColumnElement[bool]:
        mine = [column == self.person] if self.person is not None else []
        if self.ownerless:
            mine.append(column.is_(None))
        return sa.or_(*mine) if mine else sa.false()


def add_author_column(connection: Connection, table: sa.Table) -> None:
    """The step of schema version 3 for one table: its `author_id` column and index, each only
    when missing, so a step interrupted half-way (or run by two servers, one after the other)
    finishes cleanly."""
    inspector = sa.inspect(connection)
    if not inspector.has_table(table.name):
        return  # made whole, column and index, by create_all after the steps
    people = table.metadata.tables["people"]
    people.create(connection, checkfirst=True)  # a version-1 database may predate people
    columns = {c["name"] for c in inspector.get_columns(table.name)}
    if AUTHOR not in columns:
        connection.execute(
            sa.text(
                f"ALTER TABLE {table.name} ADD COLUMN {AUTHOR} INTEGER "
                "REFERENCES people (id) ON DELETE SET NULL"
            )
        )
    for index in table.indexes:
        if AUTHOR in index.columns:
            index.create(connection, checkfirst=True)


__all__ = ["AUTHOR", "Owner", "add_author_column", "author_column"]
