"""The `zhiku` command: `ingest` and `kb` from `ingest.cli`, plus `ask` and `eval`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.markup import escape

from ingest._embed import EmbeddingError, load_embedder
from ingest._store import KnowledgeBase, StoreError
from ingest.cli import KbOption, cli, console, err_console, fail
from ingest.settings import get_settings

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
    from app._llm import LlmError, resolve_backend
    from app._rag import Final, Notice, Retrieved, Token, answer

    settings = get_settings()
    if k is not None:
        settings = settings.model_copy(update={"top_k": k})
    say = (lambda m: None) if as_json else (lambda m: err_console.print(f"[dim]{escape(m)}[/dim]"))
    try:
        embedder = load_embedder(settings, say)
        base = KnowledgeBase.open(settings, kb)
    except (StoreError, EmbeddingError) as exc:
        raise fail(str(exc)) from exc
    try:
        resolved = resolve_backend(settings, backend, progress=say)
    except LlmError as exc:
        raise fail(exc.en) from exc
    result = None
    with base:
        try:
            for event in answer(question, [], base, settings, embedder, resolved, progress=say):
                if isinstance(event, Notice):
                    err_console.print(f"[yellow]note:[/yellow] {escape(event.en)}")
                elif isinstance(event, Retrieved) and not as_json:
                    err_console.print(
                        f"[dim]{len(event.passages)} passages in {event.seconds:.2f} s; "
                        f"answering with {escape(event.backend.label_en)}[/dim]"
                    )
                elif isinstance(event, Token) and not as_json:
                    sys.stdout.write(event.text)
                    sys.stdout.flush()
                elif isinstance(event, Final):
                    result = event.result
        except StoreError as exc:
            raise fail(str(exc)) from exc
    assert result is not None
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
        raise typer.Exit(1 if result.error_en and not result.answer else 0)
    if result.backend.kind != "none" and not result.refused:
        console.print()  # the streamed text ended without a newline
        console.rule("answer (citations verified)")
        console.print(escape(result.answer))
    elif result.refused:
        console.print(f"[bold yellow]{escape(result.answer)}[/bold yellow]")
    else:
        console.print(
            "[dim]No LLM in use: the most relevant passages follow. Start Ollama "
            "(`ollama serve`) or run `make install` for generated answers.[/dim]"
        )
    if result.error_en:
        label = "partial answer: " if result.partial else ""
        err_console.print(f"[red]{label}{escape(result.error_en)}[/red]")
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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
