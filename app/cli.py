"""The `zhiku` command: `ingest`, `watch` and `kb` from `ingest.cli` (`ingest`, `watch` and
`kb remove` writing through the service: `app.cli_ingest`), plus `ask`, `eval`, `kb delete`
(through the service: it knows everything a knowledge base owns), `watched` (the web app's
watched folders), `web` (the web app), and the service commands `serve` and `mcp`; `users`,
`keys` and `audit` are in `app.cli_people`. The CLI acts as the local administrator (`CLI_USER`):
whoever can run it can read the data home's files anyway."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape
from rich.table import Table

from app.cli_conversations import conversations_cli
from app.cli_ingest import ServiceWrites
from app.cli_people import CLI_USER
from app.sources.cli import sources_cli
from ingest import EmbeddingError, load_embedder
from ingest.cli import KbOption, cli, console, err_console, fail, kb_cli, use_writes
from ingest.settings import get_settings
from ingest.store import StoreError

# what `ingest`, `watch` and `kb remove` change, they change through the service (audited)
use_writes(ServiceWrites())

BackendOption = Annotated[
    Literal["auto", "ollama", "llamacpp", "none"] | None,
    typer.Option("--backend", help="LLM backend [default: LLM_BACKEND or auto]"),
]


def _source_line(number: int, title: str, source: str, page: int | None) -> str:
    where = f", page {page}" if page is not None else ""
    return f"[{number}] {title} — {Path(source.split('#')[0]).name}{where}"


@cli.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question, in Chinese or English")],
    kb: KbOption = None,
    k: Annotated[
        int | None, typer.Option("--k", min=1, max=50, help="passages to retrieve")
    ] = None,
    backend: BackendOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the result object as JSON")
    ] = False,
) -> None:
    """Answer a question from a knowledge base, with numbered sources."""
    from app._export import quote_groups
    from app._llm import LlmError, resolve_backend
    from app.answer import Final, Notice, Retrieved, Token
    from app.service import Service, ServiceError

    settings = get_settings()
    if k is not None:
        settings = settings.model_copy(update={"top_k": k})
    name = kb or settings.default_kb
    say = (lambda m: None) if as_json else (lambda m: err_console.print(f"[dim]{escape(m)}[/dim]"))
    try:
        # loaded here rather than by the service: its progress (a first conversion) is shown
        embedder = load_embedder(settings, say)
    except EmbeddingError as exc:
        raise fail(str(exc)) from exc
    result = None
    streamed = False
    service = Service(settings, embedder)
    try:
        try:
            # the knowledge base is there and readable before the LLM starts (seconds)
            service.kb_info(CLI_USER, name)
            service.use_backend(resolve_backend(settings, backend, progress=say))
        except (StoreError, ServiceError) as exc:
            raise fail(str(exc)) from exc
        except LlmError as exc:
            raise fail(exc.en) from exc
        try:
            for event in service.answer(CLI_USER, name, question):
                if isinstance(event, Notice):
                    err_console.print(f"[yellow]note:[/yellow] {escape(event.en)}")
                elif isinstance(event, Retrieved) and not as_json:
                    err_console.print(
                        f"[dim]{len(event.passages)} passages in {event.seconds:.2f} s; "
                        f"answering with {escape(event.backend.label_en)}[/dim]"
                    )
                elif isinstance(event, Token) and not as_json:
                    # only checked text arrives here: what is printed is the answer
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                    streamed = True
                elif isinstance(event, Final):
                    result = event.result
        except StoreError as exc:
            raise fail(str(exc)) from exc
    finally:
        service.close()
    assert result is not None
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
        raise typer.Exit(1 if result.error_en and not result.answer else 0)
    if result.backend.kind != "none" and not result.refused:
        if streamed:
            console.print()  # the streamed text ended without a newline
        if result.model_answer:
            console.print(
                "[dim]The model's answer is not supported by the sentences it cites; the "
                f"evidence sentence is given instead. The model wrote: "
                f"{escape(result.model_answer)}[/dim]"
            )
    elif result.refused:
        console.print(f"[bold yellow]{escape(result.answer)}[/bold yellow]")
        if result.missing_names:
            names = ", ".join(result.missing_names)
            console.print(f"[dim]no retrieved passage mentions: {escape(names)}[/dim]")
    else:
        console.print(
            "[dim]No LLM in use: the most relevant passages follow. Start Ollama "
            "(`ollama serve`) or run `make install` for generated answers.[/dim]"
        )
    if result.error_en:
        label = "partial answer: " if result.partial else ""
        err_console.print(f"[red]{label}{escape(result.error_en)}[/red]")
    if result.evidence_quotes and not result.refused:
        # the source's own words, apart from the answer: a reader checks one against the other
        console.rule("evidence (原文)")
        for group in quote_groups(result.evidence_quotes):
            text = "".join(f"{' '.join(q.text.split())}[{q.marker}]" for q in group)
            console.print(f"> {escape(text)}", style="italic")
    if result.citations:
        console.rule("sources" if result.answer else "passages")
        for c in result.citations:
            p = c.passage
            console.print(escape(_source_line(c.number, p.title, p.source, p.page)), style="bold")
            quote = c.quote if not result.answer else c.quote[:160]
            console.print(f"[dim]{escape(quote)}[/dim]")
    elif result.refused and result.passages:
        console.rule("possibly related")
        for p in result.passages[:3]:
            console.print(escape(_source_line(p.number, p.title, p.source, p.page)))
    t = result.timings
    console.print(
        f"[dim]{result.backend.label_en} · retrieval {t.get('retrieval_s', 0):.2f} s"
        + (f" · first token {t['first_token_s']:.1f} s" if "first_token_s" in t else "")
        + f" · total {t.get('total_s', 0):.1f} s[/dim]"
    )
    raise typer.Exit(1 if result.error_en and not result.answer else 0)


@cli.command()
def prepare(
    measure: Annotated[
        bool,
        typer.Option(
            "--measure",
            help="measure the embedding runtimes again (done once per CPU without it)",
        ),
    ] = False,
) -> None:
    """Prepare the bundled models once: convert the embedding model, export its query encoder
    to ONNX, measure which embedding runtime is fastest on this CPU, assemble the LLM."""
    from app._gguf import prepare_bundled_gguf
    from app._llm import LlmError
    from app._llm_llamacpp import llamacpp_installed
    from ingest import (
        EmbeddingError,
        effective_runtimes,
        load_embedder,
        measure_runtimes,
        prepare_default_model,
        read_choice,
    )
    from ingest.settings import DEFAULT_EMBEDDING_MODEL

    settings = get_settings()
    say = lambda m: err_console.print(f"[dim]{escape(m)}[/dim]")  # noqa: E731
    try:
        if settings.embedding_model == DEFAULT_EMBEDDING_MODEL:
            path = prepare_default_model(settings, say)
            console.print(f"embedding model: {escape(str(path))} (verified)")
        # Loading exports and checks the ONNX query encoder now rather than at the first question.
        embedder = load_embedder(settings, say)
        record = None if measure else read_choice(settings)
        if record is None:
            say("measuring the embedding runtimes on this CPU (once, about a minute)")
            record = measure_runtimes(settings, embedder.model, say)
        rates = ", ".join(f"{k} {v:g}" for k, v in record["passage_chunks_per_s"].items())
        console.print(
            f"embedding runtimes measured on {escape(record['cpu']['model'])}: passages/s "
            f"{rates}; chosen: passages {record['passage_runtime']}, questions "
            f"{record['query_runtime']} ({escape(record['why'])})"
        )
        query_runtime, passage_runtime = effective_runtimes(settings)
        console.print(f"in use: passages {passage_runtime}, questions {query_runtime}")
        if llamacpp_installed(settings) and settings.llamacpp_model_path is None:
            path = prepare_bundled_gguf(settings, say)
            console.print(f"embedded LLM: {escape(str(path))} (verified)")
    except (EmbeddingError, LlmError) as exc:
        raise fail(str(exc)) from exc


@cli.command("eval")
def eval_command(
    dataset: Annotated[Path, typer.Argument(help="a folder with corpus.jsonl and questions.jsonl")],
    k: Annotated[int, typer.Option("--k", min=1, max=50, help="passages retrieved")] = 5,
    retrieval_only: Annotated[
        bool, typer.Option("--retrieval-only", help="skip answering with the LLM")
    ] = False,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="a fixed random sample of N questions")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write metrics and per-question results here")
    ] = None,
    backend: BackendOption = None,
    baseline: Annotated[
        bool, typer.Option(help="also measure the plain LangChain recipe on the same corpus")
    ] = True,
    fitted_guards: Annotated[
        bool,
        typer.Option(
            help="keep the question-fitted guards (missing_names, off_question, absent_terms) on"
        ),
    ] = True,
) -> None:
    """Measure retrieval and answers on an evaluation set (see ../shared/eval/README.md)."""
    from app._eval import (
        AnswerRow,
        RetrievalRow,
        build_eval_kb,
        evaluate_answers,
        evaluate_retrieval,
        load_dataset,
        plain_langchain_recipe,
        summarize_answers,
        summarize_by_kind,
        summarize_guards,
        summarize_retrieval,
    )
    from app._llm import LlmError, resolve_backend
    from app.answer import GUARDS, QUESTION_FITTED

    settings = get_settings().model_copy(update={"top_k": k})
    if not fitted_guards:
        settings = settings.model_copy(update={f"guard_{g}": False for g in QUESTION_FITTED})
    say = lambda m: err_console.print(f"[dim]{escape(m)}[/dim]")  # noqa: E731
    try:
        data = load_dataset(dataset, limit)
        embedder = load_embedder(settings, say)
        base, build_s, cached = build_eval_kb(settings, data, embedder, say)
    except (FileNotFoundError, ValueError, StoreError, EmbeddingError) as exc:
        raise fail(str(exc)) from exc
    report: dict[str, object] = {
        "dataset": str(dataset),
        "questions": len(data.questions),
        "settings": {
            "embedding_model": settings.embedding_model,
            "chunk_size": settings.chunk_size,
            "chunk_overlap": settings.chunk_overlap,
            "top_k": settings.top_k,
            "dense_weight": settings.dense_weight,
            "vector_store": settings.vector_store,
            "hybrid_fusion": settings.hybrid_fusion,
            "guards": {name: getattr(settings, f"guard_{name}") for name in GUARDS},
        },
        "index": {
            **base.counts(),
            "store": base.describe(),
            "build_s": build_s,
            "cached": cached,
        },
    }
    rows: list[RetrievalRow] = []
    answered: list[AnswerRow] = []

    def write_report(answer_rows: list[AnswerRow]) -> None:
        assert json_out is not None
        report["per_question"] = {
            "retrieval": [row.__dict__ for row in rows],
            "answers": [row.__dict__ for row in answer_rows],
        }
        json_out.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))

    with base:
        rows = list(evaluate_retrieval(settings, data, base, embedder))
        retrieval = summarize_retrieval(rows)
        report["retrieval"] = retrieval
        columns = ["recall@1", "recall@5", "recall@10", "mrr@10"]
        table = Table(
            title=f"retrieval on {data.name} ({retrieval['answerable']:.0f} answerable; "
            f"store: {base.describe()})"
        )
        table.add_column("recipe")
        for column in [*columns, "p50 ms", "p95 ms"]:
            table.add_column(column, justify="right")
        table.add_row(
            "zhiku hybrid",
            *(f"{retrieval[c]:.3f}" for c in columns),
            f"{retrieval['retrieval_p50_ms']:.0f}",
            f"{retrieval['retrieval_p95_ms']:.0f}",
        )
        if baseline:
            say("measuring the plain LangChain recipe (text splitter 1000/200 + FAISS, dense only)")
            plain, plain_timing = plain_langchain_recipe(data, embedder)
            report["plain_langchain"] = {**plain, **plain_timing}
            table.add_row(
                "plain LangChain",
                *(f"{plain[c]:.3f}" for c in columns),
                f"{plain_timing['query_p50_ms']:.0f}",
                "",
            )
        console.print(table)
        answer_rows = []
        if not retrieval_only:
            try:
                resolved = resolve_backend(settings, backend, progress=say)
            except LlmError as exc:
                raise fail(exc.en) from exc
            say(f"answering {len(data.questions)} questions with {resolved.info.label_en}")

            def show(row: AnswerRow) -> None:
                mark = "✓" if row.correct else ("refused" if row.refused else "✗")
                first = f", first token {row.first_token_s:.1f} s" if row.first_token_s else ""
                say(f"{row.qid} {mark} {row.total_s:.1f} s{first}")
                answered.append(row)
                if json_out:  # answers are slow: an interrupted run keeps what it measured
                    report["answers"] = {
                        **summarize_answers(answered),
                        "backend": resolved.info.label_en,
                        "complete": False,
                    }
                    report["guards"] = summarize_guards(answered)
                    write_report(answered)

            answer_rows = evaluate_answers(settings, data, base, embedder, resolved, show)
            answers = summarize_answers(answer_rows)
            report["answers"] = {**answers, "backend": resolved.info.label_en, "complete": True}
            report["guards"] = summarize_guards(answer_rows)
            report["answers_by_kind"] = summarize_by_kind(answer_rows)
            table = Table(title=f"answers ({resolved.info.label_en})")
            table.add_column("metric")
            table.add_column("value", justify="right")
            for key, value in answers.items():
                table.add_row(key, f"{value:.3f}" if value == value else "n/a")
            console.print(table)
            guards = Table(title="guards: fired / right→wrong / wrong→right")
            for column in ("guard", "fired", "right→wrong", "wrong→right"):
                guards.add_column(column)
            for name, entry in report["guards"].items():  # type: ignore[union-attr]
                guards.add_row(
                    name,
                    str(entry["fired"]),
                    str(entry["right_to_wrong"]),
                    str(entry["wrong_to_right"]),
                )
            console.print(guards)
            if report["answers_by_kind"]:
                kinds = Table(title="by question class: questions / right / refused")
                for column in ("class", "questions", "right", "refused"):
                    kinds.add_column(column)
                for kind, entry in report["answers_by_kind"].items():  # type: ignore[union-attr]
                    kinds.add_row(
                        kind,
                        f"{entry['questions']:.0f}",
                        f"{entry['right']:.3f}",
                        f"{entry['refused']:.3f}",
                    )
                console.print(kinds)
    if json_out:
        write_report(answer_rows)
        console.print(f"wrote {json_out}")


# ----- the web app and the service: `web`, `serve`, `mcp` ----------------------------------------

cli.add_typer(sources_cli, name="sources")
cli.add_typer(conversations_cli, name="conversations")


state_cli = typer.Typer(
    help="The app's own records (conversations, feedback, jobs, evaluation cases): STATE_URL.",
    no_args_is_help=True,
)
cli.add_typer(state_cli, name="state")


@state_cli.command("migrate")
def state_migrate(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="the database to copy into: postgresql://user:password@host:5432/db, or "
            "'sqlite' for <ZHIKU_HOME>/state.sqlite (back from PostgreSQL)",
        ),
    ],
) -> None:
    """Copy this installation's records (STATE_URL, by default <ZHIKU_HOME>/state.sqlite, and
    the per-knowledge-base files of earlier versions) into an empty database, and check counts;
    the originals the viewer opens go where the target keeps them (ORIGINALS_STORE). Set
    STATE_URL to the target afterwards; the source is left as it was."""
    from app._conversations import CONVERSATIONS_DIR, ConversationStore
    from app._evalset import EVALSETS_DIR, load_cases
    from app._watched import all_bindings
    from app.state import StateError, open_state
    from app.state.migrate import check_target, copy_originals, copy_state
    from ingest import originals_in_database
    from ingest.store import StoreError

    settings = get_settings()
    target_url = "" if to.strip() == "sqlite" else to.strip()
    target_settings = settings.model_copy(update={"state_url": target_url})
    try:
        source = open_state(settings)
        # earlier versions' files first, so that they travel too
        for path in sorted((settings.zhiku_home / CONVERSATIONS_DIR).glob("*.sqlite")):
            ConversationStore(settings, path.stem)
        for folder in sorted((settings.zhiku_home / EVALSETS_DIR).glob("*/")):
            load_cases(settings, folder.name)
        all_bindings(settings)  # sources/<kb>.json and watched/<kb>.json moved into the sources
        target = open_state(target_settings)
        check_target(source, target)
        say = lambda m: err_console.print(f"[dim]{escape(m)}[/dim]")  # noqa: E731
        # the originals first: they are copied idempotently, so a failure leaves a target that
        # the same command fills again, and the records after them go in one transaction
        originals = copy_originals(settings, target_settings, say)
        copied = copy_state(source, target, say)
    except (StateError, StoreError, ValueError) as exc:
        raise fail(getattr(exc, "en", str(exc))) from exc
    shown = target.url.render_as_string()
    console.print(f"copied into {escape(shown)}; counts checked:", soft_wrap=True)
    for name, count in copied.items():
        console.print(f"  {name}: {count}")
    where = "the database" if originals_in_database(target_settings) else "files under ZHIKU_HOME"
    if originals.carried or originals.left or originals.missing:
        console.print(
            f"originals: {originals.carried} kept in {where}, {originals.left} stay where they "
            f"are, {len(originals.missing)} not found",
            soft_wrap=True,
        )
    for missing in originals.missing:
        console.print(f"  not found: {escape(missing)}", soft_wrap=True)
    use = "the --to URL" if target_url else "empty (SQLite under ZHIKU_HOME)"
    console.print(f"to use it, set STATE_URL to {use} on every app server", soft_wrap=True)


@cli.command()
def watched(kb: KbOption = None) -> None:
    """The folders the web app keeps knowledge bases in step with (bound on its knowledge-base
    page); `zhiku watch FOLDER --kb NAME` follows one from the command line instead."""
    from app._watched import all_bindings, load_bindings

    settings = get_settings()
    bindings = {kb: load_bindings(settings, kb)} if kb else all_bindings(settings)
    table = Table(title="watched folders (web app)")
    for column in ("kb", "folder", "bound (UTC)", "present"):
        table.add_column(column, overflow="fold")
    for name, folders in bindings.items():
        for b in folders:
            table.add_row(escape(name), escape(str(b.folder)), b.bound_at, _yes(b.folder.is_dir()))
    console.print(table)


@kb_cli.command("delete")
def kb_delete(
    name: Annotated[str, typer.Argument(help="the knowledge base to delete")],
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    store_only: Annotated[
        bool,
        typer.Option(
            "--store-only",
            help="delete only this store's copy (VECTOR_STORE), keeping the uploads, copies, "
            "conversations and evaluation set that the other store's copy uses after "
            "`zhiku kb migrate`",
        ),
    ] = False,
) -> None:
    """Delete a knowledge base and everything it owns: documents and index, uploaded files,
    kept copies, conversations, evaluation set, watched-folder bindings. A deletion that stops
    half-way says what is left; running it again finishes it."""
    from app.service import Service, ServiceError

    settings = get_settings()
    what = (
        f"the {settings.vector_store} copy of knowledge base {name!r}"
        if store_only
        else f"knowledge base {name!r} with all its documents, conversations and evaluation set"
    )
    if not yes and not typer.confirm(f"Delete {what}?"):
        raise typer.Exit(1)
    service = Service(settings)
    try:
        service.delete_kb(CLI_USER, name, store_only=store_only)
    except (StoreError, ServiceError) as exc:
        raise fail(str(exc)) from exc
    finally:
        service.close()
    console.print(f"deleted {name!r}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "[red]no[/red]"


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port")] = 8000,
) -> None:
    """The HTTP API (OpenAI-compatible chat, search, knowledge bases, uploads) and MCP at /mcp."""
    import uvicorn

    from app.api import create_app, is_loopback
    from app.service import Service
    from app.state.keys import KeyStore

    settings = get_settings()
    try:
        active = KeyStore(settings).active()
    except RuntimeError as exc:
        raise fail(str(exc)) from exc
    loopback = is_loopback(host)
    if not loopback and not active:
        raise fail(
            f"refusing to listen on {host} without an API key: anyone who can reach it would "
            "read your documents. Create a key with `zhiku keys create --name NAME` (add "
            "--owner PERSON, --read-only or --kb KB to limit it) and start again, or listen on "
            "127.0.0.1."
        )
    say = lambda m: err_console.print(f"[dim]{escape(m)}[/dim]")  # noqa: E731
    try:
        embedder = load_embedder(settings, say)
    except EmbeddingError as exc:
        raise fail(str(exc)) from exc
    service = Service(settings, embedder)
    backend = service.backend()
    # the first retrieval (index, jieba's dictionary, ONNX Runtime's first run) while uvicorn
    # starts: the first question is then as fast as the tenth (`/v1/status` shows the steps)
    service.warm_up()
    if backend.notice is not None:
        err_console.print(f"[yellow]note:[/yellow] {escape(backend.notice.en)}")
    where = f"http://{host}:{port}"
    err_console.print(
        f"知库 API on {where}  (OpenAPI docs {where}/docs, MCP {where}/mcp/; "
        f"answering with {escape(backend.info.label_en)})"
    )
    if not active:
        err_console.print(
            "[yellow]no API keys yet: any program on this machine may use the API. "
            "`zhiku keys create --name NAME` turns keys on (no restart needed).[/yellow]"
        )
    app = create_app(settings, service, open_without_keys=loopback, host=host)
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)


def _once_listening(host: str, port: int, then: Callable[[], object], wait_s: float = 60) -> None:
    """Call `then` in a thread of its own once HOST:PORT accepts connections (or after `wait_s`
    seconds in any case: a probe that cannot connect must not keep the work from starting)."""
    import socket
    import threading
    import time

    probe = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)

    def run() -> None:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                socket.create_connection((probe, port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        then()

    threading.Thread(target=run, name="zhiku-start", daemon=True).start()


@cli.command()
def web(
    host: Annotated[
        str,
        typer.Option(help="address to listen on; beyond loopback only once accounts exist"),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port")] = 8501,
) -> None:
    """The web app (what `make run` starts): Streamlit on http://HOST:PORT, this machine only
    until people have accounts (`zhiku users create`), then with a login. Scheduled sources,
    watched folders and the models' warm-up start with it, before any page is opened."""
    # Streamlit's own `streamlit run`, in this interpreter (imported before the background
    # threads start importing the models, so that the server's imports are not held up)
    from streamlit.web import cli as streamlit_cli

    from app._background import background as background_of
    from app.access import listening_refusal
    from app.state.accounts import Accounts
    from app.ui.watched import SyncProgress

    settings = get_settings()
    refusal = listening_refusal(host, Accounts(settings).exist())
    if refusal is not None:
        raise fail("\n".join(refusal))
    main_script = str(Path(__file__).resolve().with_name("main.py"))
    # Streamlit runs the app's code only when a browser connects: what must go on with no page
    # open starts here; the pages, run by Streamlit in this same interpreter, share it. It
    # starts once the server listens: loading the models beside the server's own start (one
    # interpreter, two cores) would hold it up.
    background = background_of(settings)
    _once_listening(host, port, lambda: background.start(SyncProgress))
    err_console.print(f"知库 is starting: open http://{host}:{port} (Ctrl+C to stop)")
    sys.stdout.flush()
    try:
        streamlit_cli.main(
            [
                "run",
                main_script,
                "--server.address",
                host,
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
            ],
            prog_name="streamlit",
            standalone_mode=False,
        )
    finally:
        background.stop(timeout=10)  # a sync under way stops at its next step


@cli.command()
def mcp() -> None:
    """The MCP server over stdio (for Claude Desktop, editors, agents): tools search, ask,
    list_knowledge_bases, get_passage, list_documents; documents as resources."""
    from app.api.mcp import build_mcp
    from app.service import Service

    # stdout carries the protocol: nothing else may print there
    build_mcp(Service(get_settings())).run("stdio")


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
