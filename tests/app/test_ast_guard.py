"""`app/_ast_guard.py`: with the app imported, threads parsing at once take turns, so none of
them fails with CPython 3.11's "AST constructor recursion depth mismatch"."""

from __future__ import annotations

import ast
import gc
import sys
import threading

import pytest

import app  # noqa: F401  (installs the guard)

SOURCE = "\n".join(
    f"def f{i}(x):\n    return [y * {i} for y in range(x) if y % 3]" for i in range(400)
)


class Collectable:
    """Garbage whose finalizer runs Python code, so a collection during a parse lets another
    thread in (what makes the defect show)."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        sum(range(50))


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="the defect is CPython 3.11's")
def test_threads_parsing_at_once_all_succeed() -> None:
    assert getattr(ast.parse, "_zhiku_serialized", False)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(15):
                for _ in range(200):
                    Collectable()
                ast.parse(SOURCE)
        except BaseException as exc:
            errors.append(exc)

    threshold = gc.get_threshold()
    gc.set_threshold(50)  # collections (and their finalizers) in the middle of parses
    try:
        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        gc.set_threshold(*threshold)
    assert errors == []
