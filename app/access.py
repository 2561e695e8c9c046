"""Who is acting and what they may do: the `Principal` the service checks before it reads or
writes, and the rule that decides.

A principal is a person (role + grants per knowledge base), the single local user of a zhiku
without accounts, or either of them narrowed by an API key (a key only ever takes rights away).

The rule, in one place (`Principal.may`):
- `admin` (and the local user): everything, people, grants and the audit log included;
- `editor`: reads the knowledge bases granted to them (read or write), writes those granted
  write, creates new knowledge bases (and gets write on them);
- `reader`: reads the knowledge bases granted to them; never writes, whatever a grant says.
A grant on `*` is a grant on every knowledge base.

Conversations (with the feedback on their answers) and evaluation cases are their author's
(`Principal.owns`): only the author lists and changes them. Records of nobody (made without
accounts, or whose author's account was deleted) are the administrators'. An admin may also open
another's conversation (`Principal.reads_others`); the service writes each such open to the audit
log. Reading any of them still needs read on its knowledge base.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from typing import Literal

Role = Literal["admin", "editor", "reader"]
Access = Literal["read", "write"]
# what a service method needs: read or write one knowledge base, create one, or administer
Need = Literal["read", "write", "create", "admin"]
ALL_KBS = "*"
LOCAL = "local"
# The web app's pages and who sees them (`Principal.may_open`); main.py builds its navigation
# from this, and tests/app/test_access.py fails for a page without a rule.
PAGES: dict[str, str] = {
    "chat": "everyone logged in; only the knowledge bases they may read",
    "kb": "admins and editors; its controls need write (or create) on the knowledge base",
    "inspect": "admins and editors; only the knowledge bases they may read",
    "people": "admins only: people, roles, grants and the audit log",
}


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    grants: dict[str, Access] = field(default_factory=dict)
    person_id: int | None = None  # None: the local user (no accounts) or a key made before them
    origin: str = ""  # where the request came from: an address, "cli", "web"
    key_kbs: frozenset[str] | None = None  # an API key's knowledge bases (None: no narrowing)
    key_read_only: bool = False
    key_name: str = ""

    @classmethod
    def local(cls, origin: str = "") -> Principal:
        """The one user of a zhiku without accounts: may do everything."""
        return cls(LOCAL, "admin", origin=origin)

    def narrowed(self, key_name: str, kbs: list[str] | None, read_only: bool) -> Principal:
        """This principal through an API key: the key's knowledge bases and read-only flag
        can only take rights away."""
        return replace(
            self,
            key_name=key_name,
            key_kbs=frozenset(kbs) if kbs is not None else None,
            key_read_only=read_only,
        )

    @property
    def label(self) -> str:
        if self.key_name and self.person_id is None:
            return f"API key {self.key_name}"  # a key made before accounts: nobody's
        return f"{self.name} (key {self.key_name})" if self.key_name else self.name

    @property
    def is_admin(self) -> bool:
        return self.role == "admin" and not self.key_read_only and self.key_kbs is None

    def _granted(self, kb: str) -> Access | None:
        if self.role == "admin":
            return "write"
        return self.grants.get(kb) or self.grants.get(ALL_KBS)

    def can_read(self, kb: str) -> bool:
        if self.key_kbs is not None and kb not in self.key_kbs:
            return False
        return self._granted(kb) is not None

    def can_write(self, kb: str) -> bool:
        if self.key_read_only or self.role == "reader" or not self.can_read(kb):
            return False
        return self._granted(kb) == "write"

    def can_create(self, kb: str) -> bool:
        if self.key_read_only or self.role == "reader":
            return False
        return self.key_kbs is None or kb in self.key_kbs

    def owns(self, author: int | None) -> bool:
        """Whether a conversation or evaluation case made by `author` (a person's id; None:
        nobody's) is this principal's own. The local user of a zhiku without accounts has no
        id and makes records of nobody: all of them are theirs, as before accounts existed."""
        if author is None:
            return self.role == "admin"
        return author == self.person_id

    @property
    def reads_others(self) -> bool:
        """Whether this principal may open another's conversation (never change it)."""
        return self.role == "admin"

    def may_open(self, page: str) -> bool:
        """Whether the web app shows `page` (`PAGES`) to this principal at all."""
        if page not in PAGES:
            return False  # a page without a rule is nobody's
        if page == "chat":
            return True  # it offers only the knowledge bases this principal may read
        if page == "people":
            return self.is_admin
        return self.role in ("admin", "editor") and not self.key_read_only

    def may(self, need: Need, kb: str | None = None) -> bool:
        if need == "admin":
            return self.is_admin
        if kb is None:
            raise ValueError(f"{need!r} needs a knowledge base")
        if need == "read":
            return self.can_read(kb)
        if need == "write":
            return self.can_write(kb)
        return self.can_create(kb)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listening_refusal(address: str | None, accounts_exist: bool) -> tuple[str, str] | None:
    """Why the web app must not listen on `address` (English, Chinese), or None when it may.
    Without accounts nobody logs in, so anyone who reaches the port reads every document: only
    this machine may (loopback). No address at all means every interface."""
    if accounts_exist or (address and (address.startswith("unix://") or is_loopback(address))):
        return None
    shown = address or "every network interface"
    shown_zh = address or "所有网络接口"
    return (
        f"refusing to listen on {shown}: nobody has an account yet, so anyone who can reach "
        "this port would read every document and conversation without a login. Listen on "
        "127.0.0.1 (the default: `make run`, or `--server.address 127.0.0.1`), or first create "
        "an admin with `zhiku users create NAME --role admin` (see the README, 'For a team').",
        f"拒绝在 {shown_zh} 上监听：还没有任何用户账号，"
        "能访问此端口的人无需登录即可读取所有文档和对话。"
        "请只在 127.0.0.1 上监听（默认：`make run`，或 `--server.address 127.0.0.1`），"
        "或先用 `zhiku users create 用户名 --role admin` 创建管理员（见 README「For a team」）。",
    )


__all__ = [
    "ALL_KBS",
    "LOCAL",
    "PAGES",
    "Access",
    "Need",
    "Principal",
    "Role",
    "is_loopback",
    "listening_refusal",
]
