"""People, their roles and their grants per knowledge base, in the state database.

A person has a name, an Argon2id password hash (argon2-cffi: a kept library, parameters it
chooses and upgrades), a role and a disabled flag. Roles: `admin` (everything, people and the
audit log too), `editor` (reads and writes the knowledge bases granted to them, creates new ones),
`reader` (reads the knowledge bases granted to them, never writes, whatever the grant says).
A grant gives one person `read` or `write` on one knowledge base, or on every one (`*`).

While nobody has an account, zhiku is a single-user program on this machine: `principal_for`
then is the local user, who may do everything. Repeated failed logins lock the account for a
while (`LOGIN_MAX_FAILURES`, `LOGIN_LOCK_MINUTES`); the count is kept here, so a restart or a
second app server does not reset it.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import get_args

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.access import ALL_KBS, Access, Principal, Role
from app.state.engine import metadata, open_state
from ingest.settings import Settings
from ingest.store import StoreError, validate_kb_name

ROLES: tuple[Role, ...] = get_args(Role)
ACCESSES: tuple[Access, ...] = get_args(Access)
MIN_PASSWORD = 8

people = sa.Table(
    "people",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(200), nullable=False),
    sa.Column("role", sa.String(10), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.String(32), nullable=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", sa.Float, nullable=True),  # epoch seconds
)

grants = sa.Table(
    "grants",
    metadata,
    sa.Column(
        "person_id", sa.Integer, sa.ForeignKey("people.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("kb", sa.String(200), primary_key=True),
    sa.Column("access", sa.String(5), nullable=False),
)

# secrets the app servers share (the session cookie's signing key), made on first use
app_secrets = sa.Table(
    "app_secrets",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("value", sa.String(200), nullable=False),
)

_hasher = PasswordHasher()


class AccountError(ValueError):
    """A request about accounts that cannot be done, with the reason in English and Chinese."""

    def __init__(self, en: str, zh: str, kind: str = "bad_request") -> None:
        super().__init__(en)
        self.en = en
        self.zh = zh
        self.kind = kind  # bad_request / not_found / conflict


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    role: Role
    disabled: bool
    created_at: str
    grants: dict[str, Access]
    failed_logins: int = 0
    locked_until: float | None = None


@dataclass(frozen=True)
class LoginResult:
    person: Person | None  # None: refused
    reason: str = ""  # unknown / wrong_password / disabled / locked
    retry_after_s: float = 0.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(
            f"a password needs at least {MIN_PASSWORD} characters",
            f"密码至少需要 {MIN_PASSWORD} 个字符",
        )


def _check_role(role: str) -> Role:
    if role not in ROLES:
        raise AccountError(
            f"unknown role {role!r}: one of {', '.join(ROLES)}",
            f"未知角色 {role!r}：可选 {', '.join(ROLES)}",
        )
    return role  # type: ignore[return-value]


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 100 or any(c.isspace() or not c.isprintable() for c in name):
        raise AccountError(
            f"{name!r} is not a usable name: 1-100 printable characters without spaces",
            f"{name!r} 不能用作用户名：需为 1–100 个可打印字符，不含空格",
        )
    return name


def _kb_or_all(kb: str) -> str:
    if kb == ALL_KBS:
        return kb
    try:
        return validate_kb_name(kb)
    except StoreError as exc:
        raise AccountError(str(exc), exc.zh or str(exc)) from exc


class Accounts:
    """People and grants of one state database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = open_state(settings)

    # ----- reading -----------------------------------------------------------------------

    def exist(self) -> bool:
        """Whether anybody has an account (then zhiku is no longer a single-user program)."""
        with self.engine.connect() as connection:
            return connection.execute(sa.select(people.c.id).limit(1)).first() is not None

    def _grants(self, connection: sa.Connection, person_id: int) -> dict[str, Access]:
        rows = connection.execute(
            sa.select(grants.c.kb, grants.c.access).where(grants.c.person_id == person_id)
        )
        return {kb: access for kb, access in rows}

    def _person(self, connection: sa.Connection, row: sa.Row) -> Person:
        return Person(
            id=row.id,
            name=row.name,
            role=row.role,
            disabled=bool(row.disabled),
            created_at=row.created_at,
            grants=self._grants(connection, row.id),
            failed_logins=row.failed_logins or 0,
            locked_until=row.locked_until,
        )

    def get(self, name: str) -> Person | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(people).where(people.c.name == name)).first()
            return self._person(connection, row) if row else None

    def by_id(self, person_id: int) -> Person | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(people).where(people.c.id == person_id)).first()
            return self._person(connection, row) if row else None

    def list(self) -> list[Person]:
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(people).order_by(people.c.name)).all()
            return [self._person(connection, row) for row in rows]

    def require(self, name: str) -> Person:
        person = self.get(name)
        if person is None:
            raise AccountError(
                f"no person named {name!r}", f"没有名为 {name!r} 的用户", "not_found"
            )
        return person

    # ----- who is acting -----------------------------------------------------------------

    def principal_for(self, person: Person, origin: str = "") -> Principal:
        return Principal(
            name=person.name,
            role=person.role,
            grants=dict(person.grants),
            person_id=person.id,
            origin=origin,
        )

    def current(self, person_id: int, origin: str = "") -> Principal | None:
        """The principal of an active person (None: gone or disabled since), grants as now."""
        person = self.by_id(person_id)
        if person is None or person.disabled:
            return None
        return self.principal_for(person, origin)

    # ----- writing -----------------------------------------------------------------------

    def create(self, name: str, password: str, role: str = "reader") -> Person:
        name = _check_name(name)
        role = _check_role(role)
        _check_password(password)
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    sa.insert(people).values(
                        name=name,
                        password_hash=_hasher.hash(password),
                        role=role,
                        disabled=False,
                        created_at=_now(),
                        failed_logins=0,
                    )
                )
        except sa.exc.IntegrityError as exc:
            raise AccountError(
                f"{name!r} already exists", f"用户 {name!r} 已存在", "conflict"
            ) from exc
        return self.require(name)

    def _update(self, name: str, **values: object) -> Person:
        person = self.require(name)
        with self.engine.begin() as connection:
            connection.execute(sa.update(people).where(people.c.id == person.id).values(**values))
        return self.require(name)

    def set_password(self, name: str, password: str) -> Person:
        _check_password(password)
        return self._update(
            name, password_hash=_hasher.hash(password), failed_logins=0, locked_until=None
        )

    def set_role(self, name: str, role: str) -> Person:
        return self._update(name, role=_check_role(role))

    def set_disabled(self, name: str, disabled: bool = True) -> Person:
        return self._update(name, disabled=disabled)

    def delete(self, name: str) -> Person:
        person = self.require(name)
        with self.engine.begin() as connection:
            connection.execute(sa.delete(grants).where(grants.c.person_id == person.id))
            connection.execute(sa.delete(people).where(people.c.id == person.id))
        return person

    def grant(self, name: str, kb: str, access: str) -> Person:
        if access not in ACCESSES:
            raise AccountError(f"unknown access {access!r}", f"未知权限 {access!r}")
        person = self.require(name)
        kb = _kb_or_all(kb)
        with self.engine.begin() as connection:
            connection.execute(
                sa.delete(grants).where(grants.c.person_id == person.id, grants.c.kb == kb)
            )
            connection.execute(sa.insert(grants).values(person_id=person.id, kb=kb, access=access))
        return self.require(name)

    def revoke(self, name: str, kb: str) -> Person:
        person = self.require(name)
        kb = _kb_or_all(kb)
        with self.engine.begin() as connection:
            gone = connection.execute(
                sa.delete(grants).where(grants.c.person_id == person.id, grants.c.kb == kb)
            ).rowcount
        if not gone:
            raise AccountError(
                f"{name!r} has no grant on {kb!r}", f"用户 {name!r} 在 {kb!r} 上没有授权"
            )
        return self.require(name)

    def forget_kb(self, kb: str) -> None:
        """Drop the grants on a deleted knowledge base (a new one under its name starts bare)."""
        with self.engine.begin() as connection:
            connection.execute(sa.delete(grants).where(grants.c.kb == kb))

    # ----- logging in --------------------------------------------------------------------

    def login(self, name: str, password: str) -> LoginResult:
        """Check a password. Each failure counts; at `login_max_failures` in a row the account
        is locked for `login_lock_minutes` (a right password does not open it meanwhile)."""
        row_person = self.get(name.strip())
        if row_person is None:
            _hasher.hash(password)  # the same time spent as for a real person: names stay secret
            return LoginResult(None, "unknown")
        now = time.time()
        if row_person.locked_until and row_person.locked_until > now:
            return LoginResult(None, "locked", row_person.locked_until - now)
        try:
            ok = _hasher.verify(self._hash_of(row_person.id), password)
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok:
            failures = row_person.failed_logins + 1
            locked = None
            if failures >= self.settings.login_max_failures:
                locked = now + self.settings.login_lock_minutes * 60
                failures = 0
            with self.engine.begin() as connection:
                connection.execute(
                    sa.update(people)
                    .where(people.c.id == row_person.id)
                    .values(failed_logins=failures, locked_until=locked)
                )
            if locked is not None:
                return LoginResult(None, "locked", locked - now)
            return LoginResult(None, "wrong_password")
        if row_person.disabled:
            return LoginResult(None, "disabled")
        values: dict[str, object] = {"failed_logins": 0, "locked_until": None}
        if _hasher.check_needs_rehash(self._hash_of(row_person.id)):
            values["password_hash"] = _hasher.hash(password)
        with self.engine.begin() as connection:
            connection.execute(
                sa.update(people).where(people.c.id == row_person.id).values(**values)
            )
        return LoginResult(self.require(row_person.name))

    def _hash_of(self, person_id: int) -> str:
        with self.engine.connect() as connection:
            return connection.execute(
                sa.select(people.c.password_hash).where(people.c.id == person_id)
            ).scalar_one()

    def shared_secret(self, name: str) -> str:
        """A random secret shared by every app server of this state database, made once."""
        query = sa.select(app_secrets.c.value).where(app_secrets.c.name == name)
        with self.engine.connect() as connection:
            found = connection.execute(query).scalar()
        if found:
            return found
        try:
            with self.engine.begin() as connection:
                value = secrets.token_urlsafe(48)
                connection.execute(sa.insert(app_secrets).values(name=name, value=value))
        except sa.exc.IntegrityError:
            pass  # another server made it first: theirs is the one
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one()


def accounts_exist(settings: Settings) -> bool:
    return Accounts(settings).exist()


__all__ = [
    "ACCESSES",
    "ROLES",
    "AccountError",
    "Accounts",
    "LoginResult",
    "Person",
    "accounts_exist",
]
