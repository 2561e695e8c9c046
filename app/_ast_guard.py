"""One `ast.parse` at a time in this process.

CPython 3.11 keeps the depth counter of its AST constructor in interpreter-wide state, so two
threads inside `ast.parse` at once (a garbage collection in one lets the other run) corrupt it,
and the parse fails with "SystemError: AST constructor recursion depth mismatch" (CPython
gh-106905). The web app does exactly that: Streamlit parses a page's script in one session's
thread while LangChain parses a function's source (`RunnableLambda`) in another's, and the page
shows "Script compilation error". Parsing is short; taking turns costs nothing measurable.
"""

from __future__ import annotations

import ast
import functools
import sys
import threading
from typing import Any

_lock = threading.RLock()  # re-entrant: a parse may run a finalizer that parses


def install() -> None:
    """Wrap `ast.parse` with the lock (once; only where the interpreter has the defect)."""
    if sys.version_info >= (3, 12) or getattr(ast.parse, "_zhiku_serialized", False):
        return
    unguarded = ast.parse

    @functools.wraps(unguarded)
    def parse(*args: Any, **kwargs: Any) -> Any:
        with _lock:
            return unguarded(*args, **kwargs)

    parse._zhiku_serialized = True  # type: ignore[attr-defined]
    ast.parse = parse
