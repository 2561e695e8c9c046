"""API keys in the state database: created and revoked with `zhiku keys`.

A key is `zk_<id>_<secret>`, 32 random bytes of secret: only its SHA-256 is stored (a key that
random needs no slow hash; there is nothing to guess). A key belongs to a person and only
narrows that person's rights (some knowledge bases, reading only); a key made before accounts
existed has no owner and keeps the rights it was made with. Every request reads the table, so a
key revoked from the command line stops working at the next request, without a restart.

Keys kept by an older zhiku in `<ZHIKU_HOME>/api-keys.json` are moved here the first time the
store opens (the file is then renamed `api-keys.json.imported`), so they keep working.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from app.state.accounts import people
from app.state.engine import metadata, open_state
from ingest.settings import Settings
from ingest.store import validate_kb_name

LEGACY_KEYS_FILE = "api-keys.json"
_PREFIX = "zk_"

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("owner_id", sa.Integer, sa.ForeignKey("people.id", ondelete="CASCADE")),
    sa.Column("kbs", sa.Text, nullable=True),  # a JSON list; NULL: every knowledge base
    sa.Column("read_only", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("revoked_at", sa.String(32), nullable=True),
)


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    sha256: str
    kbs: list[str] | None = None  # None: every knowledge base (the owner's, when it has one)
    read_only: bool = False
    created_at: str = ""
    revoked_at: str | None = None
    owner_id: int | None = None
    owner: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows_kb(self, kb: str) -> bool:
        return self.kbs is None or kb in self.kbs

    @property
    def scope(self) -> str:
        kbs = "all knowledge bases" if self.kbs is None else ", ".join(self.kbs)
        return f"{'read' if self.read_only else 'read/write'} · {kbs}"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class KeyStore:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = open_state(settings)
        self.legacy_path = Path(settings.zhiku_home) / LEGACY_KEYS_FILE
        self._import_legacy()

    def _import_legacy(self) -> None:
        """Move the keys of `api-keys.json` (an older zhiku's) into the table, once."""
        if not self.legacy_path.is_file():
            return
        try:
            rows = json.loads(self.legacy_path.read_text(encoding="utf-8")).get("keys", [])
        except (OSError, ValueError) as exc:
            # A damaged key file must not open the server: no key at all would mean "open"
            # on loopback, so this is an error the operator has to fix.
            raise RuntimeError(
                f"{self.legacy_path} cannot be read ({exc}); fix or delete it and create keys again"
            ) from exc
        with self.engine.begin() as connection:
            known = set(connection.execute(sa.select(api_keys.c.id)).scalars())
            for row in rows:
                if row["id"] in known:
                    continue
                connection.execute(
                    sa.insert(api_keys).values(
                        id=row["id"],
                        name=row["name"],
                        sha256=row["sha256"],
                        owner_id=None,
                        kbs=json.dumps(row.get("kbs")) if row.get("kbs") is not None else None,
                        read_only=bool(row.get("read_only")),
                        created_at=row.get("created_at") or _now(),
                        revoked_at=row.get("revoked_at"),
                    )
                )
        self.legacy_path.replace(self.legacy_path.with_name(LEGACY_KEYS_FILE + ".imported"))

    # ----- reading -----------------------------------------------------------------------

    def keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""
        query = (
            sa.select(api_keys, people.c.name.label("owner"))
            .select_from(api_keys.outerjoin(people, api_keys.c.owner_id == people.c.id))
            .order_by(api_keys.c.created_at, api_keys.c.id)
        )
        with self.engine.connect() as connection:
            return [
                ApiKey(
                    id=row.id,
                    name=row.name,
                    sha256=row.sha256,
                    kbs=json.loads(row.kbs) if row.kbs is not None else None,
                    read_only=bool(row.read_only),
                    created_at=row.created_at,
                    revoked_at=row.revoked_at,
                    owner_id=row.owner_id,
                    owner=row.owner,
                )
                for row in connection.execute(query)
            ]

    def active(self) -> list[ApiKey]:
        return [k for k in self.keys() if k.active]

    def verify(self, token: str) -> ApiKey | None:
        """The active key `token` is, or None (unknown, malformed or revoked)."""
        if not token.startswith(_PREFIX):
            return None
        digest = _digest(token)
        found = None
        for key in self.keys():
            if hmac.compare_digest(key.sha256, digest):
                found = key
        return found if found is not None and found.active else None

    # ----- writing -----------------------------------------------------------------------

    def create(
        self,
        name: str,
        kbs: list[str] | None = None,
        read_only: bool = False,
        owner_id: int | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token; the token is shown once and never stored."""
        if not name.strip():
            raise ValueError("a key needs a name (--name)")
        scoped = [validate_kb_name(k) for k in kbs] if kbs else None
        key_id = secrets.token_hex(4)
        token = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as connection:
            connection.execute(
                sa.insert(api_keys).values(
                    id=key_id,
                    name=name.strip(),
                    sha256=_digest(token),
                    owner_id=owner_id,
                    kbs=json.dumps(scoped) if scoped is not None else None,
                    read_only=read_only,
                    created_at=_now(),
                )
            )
        key = next(k for k in self.keys() if k.id == key_id)
        return key, token

    def revoke(self, selector: str) -> list[ApiKey]:
        """Revoke the active keys whose id or name is `selector`; returns them."""
        chosen = [k for k in self.active() if selector in (k.id, k.name)]
        if chosen:
            with self.engine.begin() as connection:
                connection.execute(
                    sa.update(api_keys)
                    .where(api_keys.c.id.in_([k.id for k in chosen]))
                    .values(revoked_at=_now())
                )
        return chosen


__all__ = ["LEGACY_KEYS_FILE", "ApiKey", "KeyStore"]
