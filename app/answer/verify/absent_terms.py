"""`absent_terms` (GUARD_ABSENT_TERMS): tell the model that a Latin-script name of a Chinese
question is in no passage (a note in the prompt, never a refusal)."""

from __future__ import annotations

from collections.abc import Sequence

from app.answer.verify.reading import LATIN_TERM
from ingest.text import has_cjk


def absent_terms(question: str, texts: Sequence[str]) -> list[str]:
    """Latin-script names in a Chinese question ("Claude", "Rust") that no passage contains."""
    if not has_cjk(question):
        return []
    seen = "\n".join(texts).lower()
    terms = dict.fromkeys(t for t in LATIN_TERM.findall(question) if len(t) >= 2)
    return [t for t in terms if t.lower() not in seen]
