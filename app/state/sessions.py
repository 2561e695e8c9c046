"""Web login sessions: one row per login, ended by logout, expiry or the person's disabling.

The browser holds only a signed token naming the session (`app/ui/login.py`); the row here is
what makes it valid, so a logout ends the session on the server too (a copied cookie stops
working), and every app server sharing the state database agrees.
"""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa

from app.state.engine import metadata, open_state
from ingest.settings import Settings

web_sessions = sa.Table(
    "web_sessions",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("person_id", sa.Integer, sa.ForeignKey("people.id", ondelete="CASCADE")),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float, nullable=True),
    sa.Column("origin", sa.String(200), nullable=True),
)


class Sessions:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = open_state(settings)

    def start(self, person_id: int, origin: str = "") -> str:
        session_id = secrets.token_urlsafe(24)
        now = time.time()
        with self.engine.begin() as connection:
            connection.execute(
                sa.insert(web_sessions).values(
                    id=session_id,
                    person_id=person_id,
                    created_at=now,
                    expires_at=now + self.settings.session_hours * 3600,
                    origin=origin or None,
                )
            )
        return session_id

    def person_of(self, session_id: str) -> int | None:
        """The person of a live session (not ended, not expired), or None."""
        query = sa.select(web_sessions.c.person_id).where(
            web_sessions.c.id == session_id,
            web_sessions.c.ended_at.is_(None),
            web_sessions.c.expires_at > time.time(),
        )
        with self.engine.connect() as connection:
            return connection.execute(query).scalar()

    def end(self, session_id: str) -> None:
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(web_sessions)
                .where(web_sessions.c.id == session_id, web_sessions.c.ended_at.is_(None))
                .values(ended_at=time.time())
            )


__all__ = ["Sessions", "web_sessions"]
