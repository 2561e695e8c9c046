"""The floors of the house: `ingest` never imports `app`; `app` uses only the library's public
API (`ingest`, `ingest.store`, `ingest.settings`, … never a module whose name starts with `_`);
the rest of the app uses the answering package through its public API (`app.answer`, never
`app.answer.check` and the like); nothing below the web UI imports the UI; and the web UI takes
from the library only data types, errors, constants and pure helpers (`UI_FROM_INGEST`): it reads
and writes knowledge bases, the embedder and the data home through the service, which checks the
person's rights first. Read from the
source's import statements, so a violation is named with its file and line."""

from __future__ import annotations

import ast
from collections.abc import Callable

from support import REPO

UI = ("app.ui", "app.pages", "app.main")
ANSWER = "app.answer"
# what may import the UI: the UI itself and `zhiku web`, which launches it
UI_USERS = (*UI, "app.cli")
# What the web UI may import from `ingest`: plain data types, errors, constants and pure helpers.
# A store, the embedder, the ingestion code and the data home's files are reached through
# `app.service.Service` (with the person's rights checked), never from a page.
UI_FROM_INGEST = frozenset(
    {
        "Settings",
        "StoreError",
        "ModelMismatch",
        "DocumentRecord",
        "ChunkRecord",
        "validate_kb_name",
        "is_web_url",
        "SUPPORTED_SUFFIXES",
        "SavedUpload",
        "Rejection",
        "FileOutcome",
        "WatchState",
        "Progress",  # the callback interface an ingest run reports to
        "Throughput",
        "duration_zh",
    }
)


def imported_modules(source: str) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in `source`, function-level ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def private_ingest(module: str) -> bool:
    return module.startswith("ingest._")


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def violations(folder: str, rule: Callable[[str, str], bool]) -> list[str]:
    out = []
    for path in sorted((REPO / folder).rglob("*.py")):
        relative = path.relative_to(REPO)
        name = ".".join(relative.with_suffix("").parts).removesuffix(".__init__")
        for line, module in imported_modules(path.read_text(encoding="utf-8")):
            if rule(name, module):
                out.append(f"{relative}:{line} imports {module}")
    return out


def ui_library_uses(source: str) -> list[tuple[int, str]]:
    """(line, what) of every use of the library outside `UI_FROM_INGEST` in `source`: a name
    taken from `ingest` or one of its modules, or a whole such module imported."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if within(a.name, ("ingest",))]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [
                (node.lineno, f"{node.module}.{alias.name}")
                for alias in node.names
                if within(node.module, ("ingest",)) and alias.name not in UI_FROM_INGEST
            ]
    return found


def ui_files() -> list:
    return [
        path
        for path in sorted((REPO / "app").rglob("*.py"))
        if within(".".join(path.relative_to(REPO).with_suffix("").parts), UI)
    ]


def app_rule(name: str, module: str) -> bool:
    below_ui = not within(name, UI_USERS)
    return private_ingest(module) or (below_ui and within(module, UI))


def answer_rule(name: str, module: str) -> bool:
    """A module of the answering package imported from outside it."""
    return module.startswith(ANSWER + ".") and not within(name, (ANSWER,))


def test_ingest_never_imports_the_app() -> None:
    assert violations("ingest", lambda name, module: within(module, ("app",))) == []


def test_the_app_uses_the_public_library_and_only_the_ui_imports_the_ui() -> None:
    assert violations("app", app_rule) == []


def test_the_web_ui_reaches_the_library_only_through_the_service() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line} uses {what}"
        for path in ui_files()
        for line, what in ui_library_uses(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_app_answers_through_the_answering_packages_public_api() -> None:
    assert violations("app", answer_rule) == []


def test_the_rules_see_what_they_forbid() -> None:
    """A rule that never fires would pass the tests above: each forbidden shape is caught,
    function-level imports included, and what is allowed is not."""
    source = "import ingest._embed\ndef f():\n    from ingest._store import KnowledgeBase\n"
    assert [m for _, m in imported_modules(source)] == ["ingest._embed", "ingest._store"]
    assert app_rule("app.service", "ingest._embed")
    assert app_rule("app._conversations", "app.ui.markdown")
    assert not app_rule("app.ui.chat", "app.ui.markdown")
    assert not app_rule("app.main", "app.ui.sources")
    assert app_rule("app.api.chat", "app.ui.markdown")  # the API is no launcher of the UI
    assert not app_rule("app.service", "ingest.store")
    assert not app_rule("app.service", "ingest")
    assert not private_ingest("ingest.store.base") and private_ingest("ingest._tokenize")
    assert not within("app.uix", UI) and within("app.ui", UI)
    assert app_rule("app.answer.engine", "app.ui.markdown")  # answering is below the UI
    assert answer_rule("app.service", "app.answer.check")
    assert answer_rule("app.ui.chat", "app.answer.verify.small_talk")
    assert not answer_rule("app.service", "app.answer")
    assert not answer_rule("app.answer.engine", "app.answer.check")
    assert not answer_rule("app.answer.verify.off_topic", "app.answer.verify.missing_names")
    assert not answer_rule("app.answerx", "app.answerx.y") and not within("app.answerx", (ANSWER,))
    ui_source = (
        "import ingest.store\nfrom ingest.settings import Settings\n"
        "def f():\n    from ingest import load_embedder, StoreError, save_uploads\n"
    )
    assert [what for _, what in ui_library_uses(ui_source)] == [
        "ingest.store",
        "ingest.load_embedder",
        "ingest.save_uploads",
    ]
    assert ui_library_uses("from ingestx import y\nfrom app.service import Service\n") == []
    assert {p.relative_to(REPO).as_posix() for p in ui_files()} >= {
        "app/main.py",
        "app/ui/resources.py",
        "app/pages/knowledge_base.py",
    }


def test_every_name_taken_from_the_public_api_is_there() -> None:
    """`from ingest import X` (or `from app.answer import X`) resolves only on first use,
    function-level imports included: a name the public API does not export must fail here, not
    in a user's command."""
    import app.answer
    import ingest

    public = {"ingest": ingest.__all__, ANSWER: app.answer.__all__}
    missing = []
    for path in sorted((REPO / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in public:
                missing += [
                    f"{path.relative_to(REPO)}:{node.lineno} {alias.name}"
                    for alias in node.names
                    if alias.name not in public[node.module]
                ]
    assert missing == []
    for package, names in ((ingest, ingest.__all__), (app.answer, app.answer.__all__)):
        assert all(getattr(package, name) is not None for name in names)
