"""`zhiku conversations list|show|export|delete`: conversations with a knowledge base, through
the service, whose rules they keep (`app/_authored.py`).

The CLI acts as the local administrator (`CLI_USER`, no account of its own): its own
conversations are those of nobody (every conversation of a zhiku without accounts, and those
whose author's account was deleted); a person's conversation it may show or export by its id, as
an admin reads another's in the web app (read only, written to the audit log), never list,
change or delete."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from app._conversations import INCOMPLETE_ZH, Turn, export_json
from app._export import export_markdown
from app.cli_people import CLI_USER
from app.service import Service, ServiceError
from ingest.cli import KbOption, console, err_console, fail
from ingest.settings import get_settings
from ingest.store import StoreError

conversations_cli = typer.Typer(
    help="Conversations with a knowledge base (those of nobody, the local user's; a person's "
    "by its id, read only): list, show, export as Markdown or JSON, delete.",
    no_args_is_help=True,
)

IdArgument = Annotated[
    str, typer.Argument(help="the conversation's id (`zhiku conversations list`)")
]


def _kb(kb: str | None) -> str:
    return kb or get_settings().default_kb


def _service() -> Service:
    return Service(get_settings())


_T = TypeVar("_T")


def _run(act: Callable[[], _T]) -> _T:
    """Run a service call; its refusal ("找不到这个对话或你无权查看" included) is a one-line
    error, not a traceback."""
    try:
        return act()
    except ServiceError as exc:
        raise fail(f"{exc.en} ({exc.zh})") from exc
    except StoreError as exc:
        raise fail(str(exc)) from exc


@conversations_cli.command("list")
def conversations_list(
    kb: KbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The local user's conversations with the knowledge base, newest first."""
    name = _kb(kb)
    found = _run(lambda: _service().conversations(CLI_USER, name))
    if as_json:
        rows = [
            {
                "id": c.id,
                "title": c.title,
                "created_at": c.created_at,
                "updated_at": c.updated_at,
                "turns": c.turns,
            }
            for c in found
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=1))
        return
    table = Table(title=f"{len(found)} conversations with {escape(name)}")
    for column in ("id", "title", "questions", "updated (UTC)"):
        table.add_column(column, overflow="fold")
    for c in found:
        table.add_row(c.id, escape(c.title), str(c.turns), c.updated_at[:19])
    console.print(table)


def _feedback_line(turn: Turn) -> str:
    f = turn.feedback
    if f is None:
        return ""
    line = f"反馈: {'👍' if f.score else '👎'}"
    if f.note:
        line += f" {f.note}"
    if f.correction:
        line += f"（正确答案：{f.correction}）"
    return line


@conversations_cli.command("show")
def conversations_show(
    conversation_id: IdArgument,
    kb: KbOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print zhiku's JSON export (every answer whole)")
    ] = False,
) -> None:
    """A conversation: each question with its answer, evidence, sources and feedback. A
    person's conversation is shown read only, and the read is in the audit log."""
    name = _kb(kb)
    opened = _run(lambda: _service().open_conversation(CLI_USER, name, conversation_id))
    if as_json:
        print(export_json(opened.conversation, opened.turns))
        return
    c = opened.conversation
    whose = "" if opened.own else f" — {opened.author or 'another person'}'s, read only"
    console.print(f"[bold]{escape(c.title)}[/bold]  ({c.id}, {c.created_at[:19]}{escape(whose)})")
    for turn in opened.turns:
        console.rule(f"{(turn.seq or 0) + 1}")
        if turn.result is not None:
            text = export_markdown(turn.question, turn.result)
        else:
            cut = f"{turn.partial}\n\n{INCOMPLETE_ZH}" if turn.incomplete else ""
            said = turn.error or cut or "(没有回答)"
            text = f"**问:** {turn.question}\n\n{said}\n"
        console.print(escape(text.rstrip()), soft_wrap=True, highlight=False)
        if turn.feedback is not None:
            console.print(escape(_feedback_line(turn)), highlight=False)


@conversations_cli.command("export")
def conversations_export(
    conversation_id: IdArgument,
    kb: KbOption = None,
    fmt: Annotated[
        Literal["markdown", "json"], typer.Option("--format", help="markdown or json")
    ] = "markdown",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write to this file (default: stdout)")
    ] = None,
) -> None:
    """Export a conversation as Markdown (answers, evidence, sources: as the web app exports
    it) or as zhiku's JSON. Every export is in the audit log."""
    name = _kb(kb)
    text = _run(lambda: _service().export_conversation(CLI_USER, name, conversation_id, fmt))
    text = text if text.endswith("\n") else text + "\n"
    if output is None:
        print(text, end="")
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc}") from exc
    err_console.print(f"wrote {escape(str(output))}")


@conversations_cli.command("delete")
def conversations_delete(
    conversation_id: IdArgument,
    kb: KbOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
) -> None:
    """Delete one of the local user's conversations with its feedback (never a person's)."""
    name = _kb(kb)
    if not yes and not typer.confirm(f"Delete conversation {conversation_id!r}?"):
        raise typer.Exit(1)
    _run(lambda: _service().delete_conversation(CLI_USER, name, conversation_id))
    console.print(f"deleted conversation {escape(conversation_id)}")


__all__ = ["conversations_cli"]
