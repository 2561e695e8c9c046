"""People, passwords, grants, API keys and the audit log in the state database, as an operator
meets them through `zhiku users | keys | audit`: passwords hashed (never stored), a lock after
repeated failures that a restart does not lift, keys of an older zhiku moved in and still
working, the audit log append-only with failures included."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from support import REPO, make_settings

from app.state import engine as state_engine
from app.state.accounts import AccountError, Accounts
from app.state.keys import KeyStore
from app.state.sessions import Sessions

PASSWORD = "correct horse battery"
ZHIKU = str(Path(sys.executable).with_name("zhiku"))


@pytest.fixture(autouse=True)
def _fresh_engines() -> None:
    state_engine.forget_engines()


def test_a_password_is_kept_as_an_argon2_hash_only(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    accounts = Accounts(settings)
    assert not accounts.exist()
    accounts.create("ada", PASSWORD, "admin")
    assert accounts.exist()
    stored = (tmp_path / "home" / "state.sqlite").read_bytes()
    stored += b"".join(p.read_bytes() for p in (tmp_path / "home").glob("state.sqlite-wal"))
    assert PASSWORD.encode() not in stored
    with accounts.engine.connect() as connection:
        hashed = connection.execute(sa.text("SELECT password_hash FROM people")).scalar_one()
    assert hashed.startswith("$argon2id$")
    assert accounts.login("ada", PASSWORD).person is not None
    assert accounts.login("ada", "wrong password").reason == "wrong_password"
    assert accounts.login("nobody", PASSWORD).reason == "unknown"


def test_bad_input_is_refused_with_a_reason(tmp_path: Path) -> None:
    accounts = Accounts(make_settings(tmp_path / "home"))
    with pytest.raises(AccountError, match="at least 8"):
        accounts.create("ada", "short", "admin")
    with pytest.raises(AccountError, match="unknown role"):
        accounts.create("ada", PASSWORD, "owner")
    with pytest.raises(AccountError, match="usable name"):
        accounts.create("a b", PASSWORD, "reader")
    accounts.create("ada", PASSWORD, "admin")
    with pytest.raises(AccountError) as again:
        accounts.create("ada", PASSWORD, "reader")
    assert again.value.kind == "conflict" and "已存在" in again.value.zh
    with pytest.raises(AccountError, match="invalid knowledge base name"):
        accounts.grant("ada", "../etc", "read")


def test_repeated_failures_lock_the_account_even_across_a_restart(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home", login_max_failures=3, login_lock_minutes=10)
    accounts = Accounts(settings)
    accounts.create("ada", PASSWORD, "admin")
    for _ in range(2):
        assert accounts.login("ada", "guess").reason == "wrong_password"
    locked = accounts.login("ada", "guess")
    assert locked.reason == "locked" and locked.retry_after_s > 500
    state_engine.forget_engines()  # a restart
    again = Accounts(settings).login("ada", PASSWORD)  # even the right password
    assert again.person is None and again.reason == "locked"
    Accounts(settings).set_password("ada", PASSWORD)  # an admin's reset lifts it
    assert Accounts(settings).login("ada", PASSWORD).person is not None


def test_a_disabled_person_cannot_log_in_and_a_session_ends_at_logout(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    accounts = Accounts(settings)
    person = accounts.create("ada", PASSWORD, "editor")
    sessions = Sessions(settings)
    session = sessions.start(person.id)
    assert sessions.person_of(session) == person.id
    sessions.end(session)
    assert sessions.person_of(session) is None
    accounts.set_disabled("ada")
    assert accounts.login("ada", PASSWORD).reason == "disabled"
    assert accounts.current(person.id) is None


def test_an_expired_session_is_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path / "home", session_hours=1.0)
    person = Accounts(settings).create("ada", PASSWORD, "reader")
    session = Sessions(settings).start(person.id)
    assert Sessions(settings).person_of(session) == person.id
    # an hour and a second later, by the sessions' clock (a real wait would make it flaky)
    later = time.time() + 3601
    monkeypatch.setattr("app.state.sessions.time", SimpleNamespace(time=lambda: later))
    assert Sessions(settings).person_of(session) is None


def test_keys_of_an_older_zhiku_move_into_the_state_database_and_keep_working(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    token = "zk_0a1b2c3d_" + "s" * 43
    import hashlib

    legacy = {
        "keys": [
            {
                "id": "0a1b2c3d",
                "name": "laptop",
                "sha256": hashlib.sha256(token.encode()).hexdigest(),
                "kbs": ["hr"],
                "read_only": True,
                "created_at": "2026-01-01T00:00:00+00:00",
                "revoked_at": None,
            }
        ]
    }
    (home / "api-keys.json").write_text(json.dumps(legacy), encoding="utf-8")
    store = KeyStore(make_settings(home))
    key = store.verify(token)
    assert key is not None and key.owner_id is None
    assert (key.kbs, key.read_only, key.name) == (["hr"], True, "laptop")
    assert not (home / "api-keys.json").exists()
    assert (home / "api-keys.json.imported").exists()
    assert KeyStore(make_settings(home)).verify(token) == key  # once, not twice
    assert len(store.keys()) == 1


def _zhiku(home: Path, *args: str, password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home.parent),
        "ZHIKU_HOME": str(home),
        "ZHIKU_MODELS_DIR": str(REPO / ".zhiku" / "models"),
        "ZHIKU_PASSWORD": password,
        "LLM_BACKEND": "none",
    }
    return subprocess.run(
        [ZHIKU, *args], env=env, cwd=home.parent, capture_output=True, text=True, timeout=120
    )


def test_the_users_keys_and_audit_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _zhiku(home, "users", "create", "ada", "--role", "admin").returncode == 0
    assert _zhiku(home, "users", "create", "rita").returncode == 0  # a reader by default
    granted = _zhiku(home, "users", "grant", "rita", "--kb", "default", "--read")
    assert granted.returncode == 0, granted.stderr
    listing = json.loads(_zhiku(home, "users", "list", "--json").stdout)
    assert [(p["name"], p["role"], p["grants"]) for p in listing] == [
        ("ada", "admin", {}),
        ("rita", "reader", {"default": "read"}),
    ]
    ownerless = _zhiku(home, "keys", "create", "--name", "x")
    assert ownerless.returncode == 1 and "needs an owner" in ownerless.stderr
    made = _zhiku(home, "keys", "create", "--name", "rita-laptop", "--owner", "rita")
    assert made.returncode == 0 and made.stdout.startswith("zk_")
    assert "rita" in _zhiku(home, "keys", "list").stdout
    assert _zhiku(home, "users", "disable", "rita").returncode == 0
    assert _zhiku(home, "users", "delete", "rita", "--yes").returncode == 0
    missing = _zhiku(home, "users", "passwd", "rita")
    assert missing.returncode == 1 and "no person named 'rita'" in missing.stderr
    audit = json.loads(_zhiku(home, "audit", "--json").stdout)
    acts = [(e["actor"], e["action"], e["target"], e["outcome"]) for e in audit]
    assert ("local", "create_person", "ada", "ok") in acts
    assert ("local", "grant", "rita", "ok") in acts
    assert ("local", "create_key", "rita-laptop", "ok") in acts
    assert ("local", "delete_person", "rita", "ok") in acts
    assert all(e["origin"] == "cli" for e in audit)
    assert audit == sorted(audit, key=lambda e: e["id"], reverse=True)  # newest first
