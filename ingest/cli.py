"""`zhiku ingest` and `zhiku kb …`: the ingestion half of the command line.

The `zhiku` entry point lives in `app.cli`, which adds `ask` and `eval` to this Typer app
(app may import ingest, never the reverse), and `kb delete`: a knowledge base owns
conversations, evaluation sets and watched folders of the app's as well as its documents, and
only the app's service knows them all. The commands here that change a knowledge base (`ingest`,
`watch`, `kb remove`, `kb check --repair`) change it through `Writes`: the library itself here,
the app's service under the `zhiku` entry point (`use_writes`), which checks rights and writes
the audit log.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

from ingest._embed import EmbeddingError
from ingest._insert import FileOutcome, IngestReport, Progress, ingest_paths, remove_documents
from ingest._throughput import Throughput
from ingest.settings import Settings, get_settings
from ingest.store import KnowledgeBase, StoreError, list_kbs, repair_kb

if TYPE_CHECKING:  # the web modules load when a web address is ingested, not for every command
    from ingest.web import CrawlLimits, Fetcher, WebReport

cli = typer.Typer(
    name="zhiku",
    help="知库 zhiku: a local knowledge base that answers from your documents, with citations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kb_cli = typer.Typer(help="List, inspect and manage knowledge bases.", no_args_is_help=True)
cli.add_typer(kb_cli, name="kb")

console = Console()
err_console = Console(stderr=True)

KbOption = Annotated[
    str | None, typer.Option("--kb", help="knowledge base name [default: default]")
]

_STATUS_STYLE = {
    "added": "green",
    "updated": "cyan",
    "skipped": "dim",
    "failed": "red",
    "removed": "yellow",
}


class Writes:
    """How the commands that change a knowledge base change it: here by the library itself.
    The `zhiku` entry point puts the app's service in its place (`use_writes`): `ingest` may not
    import the app, and only the service checks rights and keeps the audit log."""

    def ingest_paths(
        self,
        settings: Settings,
        paths: Sequence[Path],
        kb: str | None,
        *,
        prune: bool,
        reindex: bool,
        progress: Progress,
        cancel: threading.Event,
    ) -> IngestReport:
        return ingest_paths(
            settings, paths, kb, prune=prune, reindex=reindex, progress=progress, cancel=cancel
        )

    def ingest_web(
        self,
        settings: Settings,
        urls: Sequence[str],
        kb: str | None,
        *,
        limits: CrawlLimits,
        fetcher: Fetcher,
        progress: Progress,
        cancel: threading.Event,
    ) -> WebReport:
        from ingest.web import ingest_web

        return ingest_web(
            settings, urls, kb, limits=limits, fetcher=fetcher, progress=progress, cancel=cancel
        )

    def remove(
        self, settings: Settings, kb: str | None, selectors: Sequence[str]
    ) -> tuple[list[str], list[str]]:
        return remove_documents(settings, kb, selectors)

    def repair(self, settings: Settings, kb: str) -> list[str]:
        return repair_kb(settings, kb)

    def watch(
        self,
        settings: Settings,
        paths: Sequence[Path],
        kb: str | None,
        *,
        quiet_s: float,
        on_report: Callable[[IngestReport], None],
        stop: threading.Event,
    ) -> None:
        from ingest.watch import watch as watch_folders

        watch_folders(settings, paths, kb, quiet_s=quiet_s, on_report=on_report, stop=stop)


_writes: list[Writes] = [Writes()]


def use_writes(writes: Writes) -> None:
    """Have `ingest`, `watch` and `kb remove` change knowledge bases through `writes`."""
    _writes[0] = writes


def fail(message: str, code: int = 1) -> typer.Exit:
    # soft wrap: a path in the message stays one piece a user can copy
    err_console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)
    return typer.Exit(code)


def _throughput(task: Task) -> Throughput:
    return Throughput.of(task.completed, task.total, task.elapsed or 0.0)


class _Rate(ProgressColumn):
    """Chunks (or pages) per second over the run so far: the figure that tells how long a
    big folder will take."""

    def render(self, task: Task) -> Text:
        rate = _throughput(task).rate
        if rate is None or task.description.strip() == "files":
            return Text("")
        return Text(f"{rate:.1f}/s", style="cyan")


class _Eta(ProgressColumn):
    """Time left for what the row counts, at the run's rate so far (the web app's figure)."""

    def render(self, task: Task) -> Text:
        eta = _throughput(task).eta_s
        if eta is None:
            return Text("-:--:--", style="progress.remaining")
        minutes, seconds = divmod(round(eta), 60)
        hours, minutes = divmod(minutes, 60)
        return Text(f"{hours}:{minutes:02d}:{seconds:02d}", style="progress.remaining")


PROGRESS_COLUMNS = (
    TextColumn("{task.description:>6}"),
    BarColumn(),
    MofNCompleteColumn(),
    _Rate(),
    TimeElapsedColumn(),
    TextColumn("ETA"),
    _Eta(),
)


class _RichProgress(Progress):
    def __init__(self, progress: RichProgress) -> None:
        self.progress = progress
        self.files: TaskID = progress.add_task("files", total=None)
        self.chunks: TaskID = progress.add_task("chunks", total=0)
        self.pages: TaskID | None = None

    def pages_done(self, path: str, done: int, total: int) -> None:
        if self.pages is None:
            self.pages = self.progress.add_task("pages", total=total)
        self.progress.update(
            self.pages, completed=done, total=total, description=f"{Path(path).name[:24]} pages"
        )

    def start(self, files: int) -> None:
        self.progress.update(self.files, total=files)

    def file_done(self, outcome: FileOutcome) -> None:
        if outcome.status != "removed":
            self.progress.advance(self.files)

    def chunks_planned(self, chunks: int) -> None:
        task = self.progress.tasks[self.chunks]
        self.progress.update(self.chunks, total=(task.total or 0) + chunks)

    def chunks_embedded(self, chunks: int) -> None:
        self.progress.advance(self.chunks, chunks)

    def message(self, text: str) -> None:
        self.progress.console.print(f"[dim]{escape(text)}[/dim]")


def _shown(path: str) -> str:
    """Paths under the working folder are shown relative to it: tables stay readable."""
    if path.startswith(("http://", "https://")):
        return path
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def report_table(report: IngestReport) -> Table:
    table = Table(show_lines=False, header_style="bold")
    table.add_column("file", overflow="fold")
    table.add_column("result")
    table.add_column("docs", justify="right")
    table.add_column("chunks", justify="right")
    table.add_column("reason / note", overflow="fold")
    for outcome in report.outcomes:
        style = _STATUS_STYLE[outcome.status]
        table.add_row(
            escape(_shown(outcome.path)),
            f"[{style}]{outcome.status}[/{style}]",
            str(outcome.documents) if outcome.documents else "",
            str(outcome.chunks) if outcome.chunks else "",
            escape(outcome.reason_en),
        )
    return table


@cli.command()
def ingest(
    targets: Annotated[
        list[str],
        typer.Argument(
            help="files and folders (searched recursively), or web addresses (http/https)",
            metavar="PATHS_OR_URLS...",
        ),
    ],
    kb: KbOption = None,
    prune: Annotated[bool, typer.Option(help="remove documents whose files are gone")] = False,
    reindex: Annotated[
        bool, typer.Option(help="re-chunk and re-embed everything with the current settings")
    ] = False,
    crawl: Annotated[
        bool,
        typer.Option(
            help="follow links from each URL (or read it as a sitemap): the pages on its host "
            "under its path"
        ),
    ] = False,
    depth: Annotated[
        int | None, typer.Option(help="links followed from the start page [default: WEB_MAX_DEPTH]")
    ] = None,
    max_pages: Annotated[
        int | None, typer.Option(help="pages fetched at most [default: WEB_MAX_PAGES]")
    ] = None,
    delay: Annotated[
        float | None,
        typer.Option(help="seconds between two requests to the site [default: WEB_DELAY_S]"),
    ] = None,
) -> None:
    """Add files or web pages to a knowledge base; unchanged ones are skipped, changed ones
    replaced. A URL is one page (and the PDF and Office files it links to), or with --crawl a
    site; robots.txt is obeyed."""
    from ingest.web import fetcher_of, is_web_url, limits_of

    settings = get_settings()
    writes = _writes[0]
    urls = [t for t in targets if is_web_url(t)]
    paths = [Path(t) for t in targets if not is_web_url(t)]
    if urls and (prune or reindex):
        raise fail("--prune and --reindex take files and folders, not web addresses")
    try:
        with (
            RichProgress(*PROGRESS_COLUMNS, console=err_console, transient=True) as bar,
            cancel_on_sigint() as cancel,
        ):
            report = IngestReport()
            if paths or not urls:
                report = writes.ingest_paths(
                    settings,
                    paths,
                    kb,
                    prune=prune,
                    reindex=reindex,
                    progress=_RichProgress(bar),
                    cancel=cancel,
                )
            if urls and not report.cancelled:
                web = writes.ingest_web(
                    settings,
                    urls,
                    kb,
                    limits=limits_of(settings, crawl, max_depth=depth, max_pages=max_pages),
                    fetcher=fetcher_of(settings, delay_s=delay),
                    progress=_RichProgress(bar),
                    cancel=cancel,
                )
                report.outcomes += web.outcomes
                report.seconds += web.seconds
                report.embedded_chunks += web.embedded_chunks
                report.cancelled = web.cancelled
    except (StoreError, EmbeddingError) as exc:
        raise fail(str(exc)) from exc
    console.print(report_table(report))
    if report.cancelled:
        err_console.print(
            "[yellow]stopped[/yellow]: the files listed are committed; run the same command "
            "again to ingest the rest (finished files are skipped)"
        )
    totals = report.totals()
    console.print(
        f"added {totals['added']}, updated {totals['updated']}, skipped {totals['skipped']}, "
        f"failed {totals['failed']}, removed {totals['removed']}; {totals['chunks']} chunks "
        f"stored in {report.seconds:.1f} s"
    )
    name = kb or settings.default_kb
    if totals["added"] + totals["updated"]:
        console.print(
            f'Ask with: [bold]zhiku ask "你的问题" --kb {name}[/bold] or [bold]make run[/bold]'
        )
    raise typer.Exit(report.exit_code)


@contextmanager
def cancel_on_sigint() -> Iterator[threading.Event]:
    """The first Ctrl+C asks the run to stop after what it is doing (finished files stay
    committed); a second one stops at once."""
    cancel = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield cancel  # signal handlers can only be set from the main thread
        return

    def handler(signum: int, frame: object) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt
        cancel.set()
        err_console.print("[yellow]stopping after the current step (Ctrl+C again to abort)[/]")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield cancel
    finally:
        signal.signal(signal.SIGINT, previous)


@cli.command()
def watch(
    paths: Annotated[list[Path], typer.Argument(help="folders (and files) to keep ingested")],
    kb: KbOption = None,
    quiet: Annotated[
        float | None,
        typer.Option(
            help="seconds a file must be left alone before it is ingested "
            "[default: WATCH_QUIET_S, 2.0]"
        ),
    ] = None,
) -> None:
    """Keep a knowledge base in step with folders: new and changed files are ingested, deleted
    ones removed, moves followed. Runs until Ctrl+C."""
    settings = get_settings()
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise fail(f"no such file or folder: {', '.join(map(str, missing))}")
    err_console.print(
        f"watching {', '.join(escape(str(p)) for p in paths)} → knowledge base "
        f"{kb or settings.default_kb!r} (Ctrl+C to stop)"
    )

    def show(report: IngestReport) -> None:
        changed = [o for o in report.outcomes if o.status != "skipped"]
        if changed:
            report.outcomes = changed
            console.print(report_table(report))
        totals = report.totals()
        console.print(
            f"[dim]{time.strftime('%H:%M:%S')}[/dim] added {totals['added']}, updated "
            f"{totals['updated']}, removed {totals['removed']}, failed {totals['failed']}"
        )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        _writes[0].watch(
            settings,
            paths,
            kb,
            quiet_s=settings.watch_quiet_s if quiet is None else quiet,
            on_report=show,
            stop=stop,
        )
    except KeyboardInterrupt:
        err_console.print("stopped watching")
    except (StoreError, EmbeddingError, OSError) as exc:
        raise fail(str(exc)) from exc


def _open(settings: Settings, kb: str | None) -> KnowledgeBase:
    try:
        return KnowledgeBase.open(settings, kb)
    except StoreError as exc:
        raise fail(str(exc)) from exc


@kb_cli.command("list")
def kb_list() -> None:
    """Knowledge bases with their document and chunk counts."""
    settings = get_settings()
    table = Table(header_style="bold")
    for column in ("name", "documents", "chunks", "embedding model", "store"):
        table.add_column(column)
    for name in list_kbs(settings):
        with _open(settings, name) as base:
            counts = base.counts()
            spec = base.embedding_spec()
            store = base.store
        table.add_row(
            escape(name),
            str(counts["documents"]),
            str(counts["chunks"]),
            spec.name if spec else "-",
            escape(store),
        )
    where = settings.kbs_dir if settings.vector_store == "faiss" else settings.milvus_uri
    if not table.row_count:
        console.print(f"no knowledge bases yet in {where}")
        return
    console.print(table)
    console.print(f"store: {settings.vector_store} ({where})", soft_wrap=True)


@kb_cli.command("docs")
def kb_docs(kb: KbOption = None) -> None:
    """Documents in a knowledge base."""
    settings = get_settings()
    with _open(settings, kb) as base:
        docs = base.documents()
    table = Table(header_style="bold")
    for column in ("doc id", "title", "type", "pages", "chunks", "size", "ingested", "source"):
        table.add_column(column, overflow="fold")
    for d in docs:
        table.add_row(
            d.doc_id,
            escape(d.title),
            d.doc_type,
            str(d.pages),
            str(d.chunks),
            f"{d.size / 1024:.1f} KB",
            d.ingested_at,
            escape(d.source),
        )
    console.print(table)
    console.print(f"{len(docs)} documents")


@kb_cli.command("remove")
def kb_remove(
    docs: Annotated[list[str], typer.Argument(help="doc ids, paths or file names")],
    kb: KbOption = None,
) -> None:
    """Remove documents from a knowledge base."""
    try:
        removed, unmatched = _writes[0].remove(get_settings(), kb, docs)
    except StoreError as exc:
        raise fail(str(exc)) from exc
    for selector in unmatched:
        err_console.print(f"[yellow]no document matches[/yellow] {escape(selector)}")
    console.print(f"removed {len(removed)} documents")
    raise typer.Exit(2 if unmatched else 0)


@kb_cli.command("check")
def kb_check(
    kb: KbOption = None,
    repair: Annotated[
        bool, typer.Option(help="rebuild what is derived; salvage a damaged database")
    ] = False,
) -> None:
    """Verify that documents, chunks, vectors and the keyword index agree; exit 1 if not."""
    settings = get_settings()
    name = kb or settings.default_kb
    if repair:
        try:
            repaired = _writes[0].repair(settings, name)
        except StoreError as exc:
            raise fail(str(exc)) from exc
        for line in repaired:
            console.print(f"[cyan]repaired:[/cyan] {escape(line)}")
    with _open(settings, name) as base:
        try:
            problems = base.check()
        except StoreError as exc:
            raise fail(str(exc)) from exc
        counts = base.counts()
    for problem in problems:
        err_console.print(f"[red]problem:[/red] {escape(problem)}", soft_wrap=True)
    if problems:
        hint = "" if repair else f" Run `zhiku kb check --repair --kb {name}`."
        raise fail(f"knowledge base {name!r} is inconsistent.{hint}")
    console.print(
        f"[green]ok[/green]: {name!r} is consistent "
        f"({counts['documents']} documents, {counts['chunks']} chunks)"
    )


@kb_cli.command("migrate")
def kb_migrate(
    to: Annotated[str, typer.Option("--to", help="the store to move it to: milvus or faiss")],
    kb: KbOption = None,
) -> None:
    """Copy a knowledge base into the other store without re-embedding, then check the copy
    (counts and a sample of searches). The source stays as it is."""
    from ingest.store.migrate import migrate_kb

    if to not in ("milvus", "faiss"):
        raise fail(f"--to must be milvus or faiss, not {to!r}")
    settings = get_settings()
    name = kb or settings.default_kb
    say = lambda m: err_console.print(f"[dim]{escape(m)}[/dim]")  # noqa: E731
    try:
        report = migrate_kb(settings, name, to, say)  # type: ignore[arg-type]
    except StoreError as exc:
        raise fail(str(exc)) from exc
    console.print(f"copied {name!r}: {report.source} → {report.target}")
    console.print(
        f"{report.documents} documents, {report.chunks} chunks "
        f"({'the same counts' if report.counts_match else 'COUNTS DIFFER'}); "
        f"sample of {report.sampled} chunks: the same best dense hit for {report.dense_agree}, "
        f"found by keyword search in the copy for {report.keyword_found}"
    )
    for problem in report.problems:
        err_console.print(f"[red]problem:[/red] {escape(problem)}", soft_wrap=True)
    if not report.ok:
        raise fail(f"the copy of {name!r} does not match its source; the source is unchanged")
    console.print(
        f"use it with [bold]VECTOR_STORE={to}[/bold]; the {report.source} copy is kept "
        f"(`VECTOR_STORE={'faiss' if to == 'milvus' else 'milvus'} zhiku kb delete {name} "
        "--store-only` removes it alone)"
    )
