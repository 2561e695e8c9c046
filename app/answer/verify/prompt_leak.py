"""`prompt_leak` (GUARD_PROMPT_LEAK): drop answer sentences that repeat the system prompt."""

from __future__ import annotations

_LEAK_WINDOW = 15


def leak_windows(prompt: str) -> frozenset[str]:
    return frozenset(
        prompt[i : i + _LEAK_WINDOW]
        for i in range(len(prompt) - _LEAK_WINDOW + 1)
        if "\n" not in prompt[i : i + _LEAK_WINDOW]
    )


def quotes_prompt(text: str, windows: frozenset[str]) -> bool:
    """Whether `text` repeats a stretch of the system prompt word for word."""
    return any(text[i : i + _LEAK_WINDOW] in windows for i in range(len(text)))
