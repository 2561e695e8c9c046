"""API keys: created and revoked with `zhiku keys`, stored hashed under the data home.

A key is `zk_<id>_<secret>`, 32 random bytes of secret: only its SHA-256 is stored (a key that
random needs no slow hash; there is nothing to guess), in `<ZHIKU_HOME>/api-keys.json`, mode
0600, written atomically under a file lock. The server re-reads the file when it changes, so a
key revoked from the command line stops working at the next request, without a restart.

A key is scoped to some knowledge bases (or all) and to reading only or reading and writing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock

from ingest._store import validate_kb_name
from ingest.settings import Settings

KEYS_FILE = "api-keys.json"
_PREFIX = "zk_"


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    sha256: str
    kbs: list[str] | None = None  # None: every knowledge base
    read_only: bool = False
    created_at: str = ""
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows_kb(self, kb: str) -> bool:
        return self.kbs is None or kb in self.kbs

    @property
    def scope(self) -> str:
        kbs = "all knowledge bases" if self.kbs is None else ", ".join(self.kbs)
        return f"{'read' if self.read_only else 'read/write'} · {kbs}"


@dataclass
class _Cache:
    stamp: tuple[int, int] | None = None
    keys: list[ApiKey] = field(default_factory=list)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class KeyStore:
    def __init__(self, settings: Settings) -> None:
        self.path = settings.zhiku_home / KEYS_FILE
        self.lock_timeout_s = settings.lock_timeout_s
        self._cache = _Cache()
        self._cache_lock = threading.Lock()

    # ----- reading -----------------------------------------------------------------------

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size)

    def keys(self) -> list[ApiKey]:
        """Every key, revoked ones too; re-read only when the file changed."""
        with self._cache_lock:
            stamp = self._stamp()
            if stamp != self._cache.stamp:
                self._cache = _Cache(stamp, self._read())
            return list(self._cache.keys)

    def _read(self) -> list[ApiKey]:
        try:
            rows = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            # A damaged key file must not open the server: no key at all would mean "open"
            # on loopback, so this is an error the operator has to fix.
            raise RuntimeError(
                f"{self.path} cannot be read ({exc}); fix or delete it and create keys again"
            ) from exc
        return [ApiKey(**row) for row in rows.get("keys", [])]

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

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = json.dumps({"keys": [asdict(k) for k in keys]}, ensure_ascii=False, indent=1)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed before the rename
            "w", dir=self.path.parent, prefix=".api-keys-", delete=False, encoding="utf-8"
        )
        try:
            with handle:
                os.chmod(handle.name, 0o600)
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(handle.name, self.path)
        except BaseException:
            Path(handle.name).unlink(missing_ok=True)
            raise

    def _locked(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return FileLock(str(self.path) + ".lock", timeout=self.lock_timeout_s)

    def create(
        self, name: str, kbs: list[str] | None = None, read_only: bool = False
    ) -> tuple[ApiKey, str]:
        """A new key and its token; the token is shown once and never stored."""
        if not name.strip():
            raise ValueError("a key needs a name (--name)")
        scoped = [validate_kb_name(k) for k in kbs] if kbs else None
        key_id = secrets.token_hex(4)
        token = f"{_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        key = ApiKey(
            id=key_id,
            name=name.strip(),
            sha256=_digest(token),
            kbs=scoped,
            read_only=read_only,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        with self._locked():
            self._write([*self._read(), key])
        return key, token

    def revoke(self, selector: str) -> list[ApiKey]:
        """Revoke the active keys whose id or name is `selector`; returns them."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._locked():
            keys = self._read()
            chosen = [k for k in keys if k.active and selector in (k.id, k.name)]
            if chosen:
                self._write(
                    [ApiKey(**{**asdict(k), "revoked_at": now}) if k in chosen else k for k in keys]
                )
        return chosen


__all__ = ["KEYS_FILE", "ApiKey", "KeyStore"]
