"""`zhiku sources add|list|sync|history|remove`: folders, web pages and sites kept in step with a
knowledge base, by hand or on a schedule (the web app's background scheduler fires schedules
while it runs; `zhiku sources sync --due` from cron does the same without it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from app.cli_people import CLI_USER
from app.service import Service, ServiceError
from app.sources.model import Schedule, Source, SourceError, SourceStore, SyncRecord
from app.sources.sync import due_sources, new_source
from ingest import EmbeddingError
from ingest.cli import KbOption, console, err_console, fail
from ingest.settings import Settings, get_settings
from ingest.store import StoreError, kb_exists

sources_cli = typer.Typer(
    help="Folders, web pages and sites kept in step with a knowledge base, on a schedule.",
    no_args_is_help=True,
)


def _local(iso: str | datetime | None) -> str:
    if iso is None or iso == "":
        return "-"
    when = datetime.fromisoformat(iso) if isinstance(iso, str) else iso
    return when.astimezone().strftime("%Y-%m-%d %H:%M")


def _summary(record: SyncRecord) -> str:
    text = (
        f"added {record.added}, updated {record.updated}, removed {record.removed}, "
        f"failed {record.failed}, unchanged {record.skipped}; {record.seconds:.1f} s"
    )
    return f"{text} — stopped: {record.error_en}" if record.error_en else text


@sources_cli.command("add")
def sources_add(
    location: Annotated[str, typer.Argument(help="a web address (http/https) or a folder")],
    kb: KbOption = None,
    crawl: Annotated[
        bool, typer.Option(help="a site: follow links from the URL (or read it as a sitemap)")
    ] = False,
    every: Annotated[str | None, typer.Option(help="sync every so often: 30m, 2h, 1d")] = None,
    at: Annotated[str | None, typer.Option(help="sync daily at this local time: 03:00")] = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="a folder: follow every change while the web app or `zhiku serve` runs"
        ),
    ] = False,
    depth: Annotated[int | None, typer.Option(help="a site's crawl depth")] = None,
    max_pages: Annotated[int | None, typer.Option(help="a site's page limit")] = None,
    sync: Annotated[bool, typer.Option(help="sync it once now")] = True,
) -> None:
    """Add a source to a knowledge base (and sync it once, unless --no-sync)."""
    settings = get_settings()
    name = kb or settings.default_kb
    store = SourceStore(settings)
    try:
        schedule = Schedule.parse(every, at, watch)
        draft = new_source(
            name, location, crawl=crawl, schedule=schedule, max_depth=depth, max_pages=max_pages
        )
        source = store.add(draft)
        _ensure_kb(settings, name)
    except (SourceError, StoreError, ServiceError) as exc:
        raise fail(exc.en) from exc
    console.print(
        f"added {source.kind} source [bold]{source.id}[/bold] {escape(source.location)} → "
        f"{name!r}, {source.schedule.describe()}"
    )
    if sync:
        _sync_one(source, "cli")


def _ensure_kb(settings: Settings, name: str) -> None:
    """The source's knowledge base, created when it is not there yet through the service, as
    the API and the web app create one: audited, and what a deletion of the name left behind
    is finished first, so that it starts bare."""
    if kb_exists(settings, name):
        return
    service = Service(settings)
    try:
        service.create_kb(CLI_USER, name)
    except ServiceError as exc:
        if exc.kind != "conflict":  # a conflict: created meanwhile, which is what we want
            raise
    finally:
        service.close()


def _sync_one(source: Source, trigger: str) -> SyncRecord | None:
    """Sync through the service, as the local user: a sync that changes something is audited."""
    err_console.print(f"[dim]syncing {escape(source.location)} …[/dim]")
    service = Service(get_settings())
    try:
        record = service.sync_source(CLI_USER, source, trigger=trigger)
    except SourceError as exc:
        err_console.print(f"[yellow]{escape(exc.en)}[/yellow]")
        return None
    except (StoreError, EmbeddingError, ServiceError) as exc:
        raise fail(str(exc)) from exc
    finally:
        service.close()
    console.print(
        f"{source.id} {escape(source.location)}: {escape(_summary(record))}", soft_wrap=True
    )
    for item in record.items[:30]:
        style = {"failed": "red", "removed": "yellow", "updated": "cyan"}.get(item.status, "green")
        console.print(
            f"  [{style}]{item.status}[/{style}] {escape(item.url)}"
            + (f" — {escape(item.reason_en)}" if item.reason_en else ""),
            soft_wrap=True,
        )
    if len(record.items) > 30:
        console.print(f"  … {len(record.items) - 30} more (`zhiku sources history {source.id}`)")
    return record


@sources_cli.command("list")
def sources_list(kb: KbOption = None) -> None:
    """Sources with their schedule, last sync and next one."""
    store = SourceStore(get_settings())
    sources = store.list(kb)
    if not sources:
        console.print("no sources yet: `zhiku sources add URL_OR_FOLDER --kb NAME --every 2h`")
        return
    now = datetime.now(UTC)
    for s in sources:
        last = s.last_sync
        pages = f" · {len(s.pages)} pages known" if s.kind != "folder" else ""
        when = _local(s.next_run(now)) if not s.schedule.manual else "-"
        console.print(
            f"[bold]{s.id}[/bold] {s.kind} {escape(s.location)} → {escape(s.kb)!r}", soft_wrap=True
        )
        console.print(f"  {s.schedule.describe()}{pages} · next sync: {when}", soft_wrap=True)
        if last is not None:
            console.print(
                f"  last sync {_local(last.started_at)} ({last.trigger}): {escape(_summary(last))}",
                soft_wrap=True,
            )
        else:
            console.print("  never synced")


@sources_cli.command("sync")
def sources_sync(
    ids: Annotated[list[str] | None, typer.Argument(help="source ids (or locations)")] = None,
    kb: KbOption = None,
    due: Annotated[bool, typer.Option(help="only the sources whose schedule is due")] = False,
) -> None:
    """Sync sources now: the ones named, those of --kb, or all; --due: those whose time has
    come (for cron)."""
    store = SourceStore(get_settings())
    try:
        if ids:
            chosen = [store.get(i, kb) for i in ids]
        elif due:
            chosen = [s for s in due_sources(store) if kb in (None, s.kb)]
        else:
            chosen = store.list(kb)
    except SourceError as exc:
        raise fail(exc.en) from exc
    if not chosen:
        console.print("nothing to sync")
    failed = False
    for source in chosen:
        record = _sync_one(source, "cli")
        failed |= record is None or bool(record.error_en)
    raise typer.Exit(2 if failed else 0)


@sources_cli.command("history")
def sources_history(
    ident: Annotated[str, typer.Argument(help="source id (or location)")],
    kb: KbOption = None,
    items: Annotated[bool, typer.Option(help="list what each sync changed or failed")] = False,
) -> None:
    """The syncs of a source: when, what triggered it, what changed."""
    store = SourceStore(get_settings())
    try:
        source = store.get(ident, kb)
    except SourceError as exc:
        raise fail(exc.en) from exc
    table = Table(header_style="bold", title=escape(source.location))
    for column in ("started", "trigger", "added", "updated", "removed", "failed", "unchanged",
                   "s", "stopped"):  # fmt: skip
        table.add_column(column, overflow="fold")
    for r in source.history:
        table.add_row(
            _local(r.started_at), r.trigger, str(r.added), str(r.updated), str(r.removed),
            str(r.failed), str(r.skipped), f"{r.seconds:.1f}", escape(r.error_en),
        )  # fmt: skip
    console.print(table)
    if items:
        for r in source.history:
            for item in r.items:
                console.print(
                    f"{_local(r.started_at)} {item.status} {escape(item.url)} "
                    f"{escape(item.reason_en)}",
                    soft_wrap=True,
                )


@sources_cli.command("remove")
def sources_remove(
    ident: Annotated[str, typer.Argument(help="source id (or location)")],
    kb: KbOption = None,
    purge: Annotated[
        bool, typer.Option(help="also remove the documents it brought (web sources)")
    ] = False,
) -> None:
    """Stop syncing a source. Its documents stay unless --purge."""
    settings = get_settings()
    store = SourceStore(settings)
    try:
        source = store.get(ident, kb)
    except SourceError as exc:
        raise fail(exc.en) from exc
    store.remove(source)
    removed = 0
    if purge and source.kind != "folder" and source.pages:
        service = Service(settings)  # audited, and kept copies nothing else uses go too
        try:
            removed = len(service.remove_origins(CLI_USER, source.kb, list(source.pages)))
        except (StoreError, ServiceError) as exc:
            raise fail(str(exc)) from exc
        finally:
            service.close()
    console.print(
        f"removed source {source.id} {escape(source.location)}"
        + (f" and its {removed} documents" if purge else "; its documents stay")
    )
