"""`zhiku users`, `zhiku keys` and `zhiku audit`: people, their grants, API keys and the audit
log, through the service (which checks and logs every act). The CLI acts as the local
administrator: whoever can run it can read the data home's files anyway."""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from app.access import Principal
from app.service import Service, ServiceError
from ingest.cli import cli, console, err_console, fail
from ingest.settings import get_settings
from ingest.store import StoreError

CLI_USER = Principal.local("cli")

users_cli = typer.Typer(
    help="People who may log in to the web app (and own API keys), their roles and grants. "
    "Once one exists, the web app asks for a login.",
    no_args_is_help=True,
)
cli.add_typer(users_cli, name="users")
keys_cli = typer.Typer(
    help="Create, list and revoke API keys for `zhiku serve`.", no_args_is_help=True
)
cli.add_typer(keys_cli, name="keys")


def _service() -> Service:
    return Service(get_settings())


_T = TypeVar("_T")


def _run(act: Callable[[], _T]) -> _T:
    """Run a service call; its refusal is a one-line error, not a traceback."""
    try:
        return act()
    except (ServiceError, StoreError, RuntimeError, ValueError) as exc:
        raise fail(str(exc)) from exc


def _password() -> str:
    """The password from `ZHIKU_PASSWORD` (scripts, tests) or asked twice without echo."""
    given = os.environ.get("ZHIKU_PASSWORD")
    if given:
        return given
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise fail("the two passwords differ")
    return first


@users_cli.command("create")
def users_create(
    name: Annotated[str, typer.Argument(help="the login name")],
    role: Annotated[
        str,
        typer.Option(
            "--role",
            help="admin, editor (reads and writes granted knowledge "
            "bases, creates new ones) or reader (reads granted ones)",
        ),
    ] = "reader",
) -> None:
    """Create a person (the password is asked, or read from ZHIKU_PASSWORD). The first person
    should be an admin: from then on the web app asks everyone to log in."""
    service = _service()
    first = not service.accounts.exist()
    person = _run(lambda: service.create_person(CLI_USER, name, _password(), role))
    console.print(f"created {escape(person.name)} ({person.role})")
    if first and person.role != "admin":
        err_console.print(
            "[yellow]note: nobody is an admin yet; `zhiku users create NAME --role admin` "
            "makes one who can manage people in the web app.[/yellow]"
        )


@users_cli.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """People, their roles, grants and whether they are disabled or locked."""
    people = _run(lambda: _service().people(CLI_USER))
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "role": p.role,
                        "disabled": p.disabled,
                        "grants": p.grants,
                        "created_at": p.created_at,
                    }
                    for p in people
                ],
                ensure_ascii=False,
                indent=1,
            )
        )
        return
    table = Table(title=f"{len(people)} people")
    for column in ("name", "role", "grants", "disabled", "created"):
        table.add_column(column)
    for p in people:
        grants = ", ".join(f"{kb}:{access}" for kb, access in sorted(p.grants.items()))
        table.add_row(
            escape(p.name),
            p.role,
            escape(grants or ("all" if p.role == "admin" else "none")),
            "yes" if p.disabled else "",
            p.created_at,
        )
    console.print(table)


@users_cli.command("passwd")
def users_passwd(name: Annotated[str, typer.Argument(help="the login name")]) -> None:
    """Set a new password (asked, or from ZHIKU_PASSWORD); also clears a lock."""
    _run(lambda: _service().set_password(CLI_USER, name, _password()))
    console.print(f"password of {escape(name)} changed")


@users_cli.command("role")
def users_role(
    name: Annotated[str, typer.Argument(help="the login name")],
    role: Annotated[str, typer.Argument(help="admin, editor or reader")],
) -> None:
    """Change a person's role."""
    person = _run(lambda: _service().set_role(CLI_USER, name, role))
    console.print(f"{escape(person.name)} is now {person.role}")


@users_cli.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="the login name")]) -> None:
    """Disable a person: their sessions and API keys stop working at the next request."""
    _run(lambda: _service().set_disabled(CLI_USER, name, True))
    console.print(f"disabled {escape(name)}")


@users_cli.command("enable")
def users_enable(name: Annotated[str, typer.Argument(help="the login name")]) -> None:
    """Enable a disabled person again."""
    _run(lambda: _service().set_disabled(CLI_USER, name, False))
    console.print(f"enabled {escape(name)}")


@users_cli.command("delete")
def users_delete(
    name: Annotated[str, typer.Argument(help="the login name")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete a person with their grants and API keys (the audit log keeps their acts)."""
    if not yes and not typer.confirm(f"Delete {name!r} with their grants and API keys?"):
        raise typer.Exit(1)
    _run(lambda: _service().delete_person(CLI_USER, name))
    console.print(f"deleted {escape(name)}")


@users_cli.command("grant")
def users_grant(
    name: Annotated[str, typer.Argument(help="the login name")],
    kb: Annotated[str, typer.Option("--kb", help="a knowledge base, or * for every one")],
    read: Annotated[bool, typer.Option("--read", help="may read (search, ask, documents)")] = False,
    write: Annotated[
        bool, typer.Option("--write", help="may also write (upload, re-ingest, remove, delete)")
    ] = False,
) -> None:
    """Grant a person reading or writing one knowledge base (a reader never writes)."""
    if read == write:
        raise fail("say --read or --write")
    person = _run(lambda: _service().grant(CLI_USER, name, kb, "write" if write else "read"))
    console.print(f"{escape(person.name)}: {escape(kb)} {'write' if write else 'read'}")


@users_cli.command("revoke")
def users_revoke(
    name: Annotated[str, typer.Argument(help="the login name")],
    kb: Annotated[str, typer.Option("--kb", help="the knowledge base (or *)")],
) -> None:
    """Take a person's grant on a knowledge base away."""
    _run(lambda: _service().revoke(CLI_USER, name, kb))
    console.print(f"{escape(name)}: no longer granted {escape(kb)}")


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="who or what the key is for")],
    owner: Annotated[
        str | None,
        typer.Option("--owner", help="the person the key acts for (needed once accounts exist)"),
    ] = None,
    kb: Annotated[
        list[str] | None, typer.Option("--kb", help="limit to this knowledge base (repeatable)")
    ] = None,
    read_only: Annotated[
        bool, typer.Option("--read-only", help="search and ask only: no uploads or deletions")
    ] = False,
) -> None:
    """Create a key; it is shown once (only its hash is stored). A key acts for its owner and
    can only narrow the owner's rights."""
    key, token = _run(lambda: _service().create_key(CLI_USER, name, kb or None, read_only, owner))
    whose = f", for {escape(key.owner)}" if key.owner else ""
    err_console.print(f"key {key.id} ({escape(key.name)}{whose}): {escape(key.scope)}. Shown once:")
    print(token)


@keys_cli.command("list")
def keys_list() -> None:
    """The keys: id, name, owner, scope, created, revoked."""
    keys = _run(lambda: _service().api_keys(CLI_USER))
    table = Table(title=f"{len(keys)} API keys")
    for column in ("id", "name", "owner", "scope", "created", "revoked"):
        table.add_column(column)
    for k in keys:
        table.add_row(
            k.id,
            escape(k.name),
            escape(k.owner or "-"),
            escape(k.scope),
            k.created_at,
            k.revoked_at or "",
        )
    console.print(table)


@keys_cli.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="the key's id or name")],
) -> None:
    """Revoke a key: a running server refuses it from the next request on."""
    revoked = _run(lambda: _service().revoke_key(CLI_USER, key))
    if not revoked:
        raise fail(f"no active key with id or name {key!r} (`zhiku keys list` shows them)")
    for k in revoked:
        console.print(f"revoked {k.id} ({escape(k.name)})")


@cli.command()
def audit(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (one export)")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="newest N entries")] = 100,
    actor: Annotated[str | None, typer.Option("--actor", help="only this person")] = None,
    kb: Annotated[str | None, typer.Option("--kb", help="only this knowledge base")] = None,
) -> None:
    """The audit log, newest first: writes, administrative acts, refusals, failed logins."""
    entries = _run(lambda: _service().audit_entries(CLI_USER, limit, actor, kb))
    if as_json:
        print(json.dumps([e.as_dict() for e in entries], ensure_ascii=False, indent=1))
        return
    table = Table(title=f"audit log ({len(entries)} newest)")
    for column in ("when (UTC)", "who", "what", "kb", "target", "outcome", "from"):
        table.add_column(column, overflow="fold")
    for e in entries:
        table.add_row(
            e.at,
            escape(e.actor),
            e.action,
            escape(e.kb or ""),
            escape(e.target or ""),
            e.outcome,
            escape(e.origin or ""),
        )
    console.print(table)


__all__ = ["CLI_USER"]
