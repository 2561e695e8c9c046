"""The service's error (`app.service.ServiceError`), in a module of its own so that the parts of
the service kept in other modules (`app/_authored.py`) raise it without importing the service."""

from __future__ import annotations


class ServiceError(RuntimeError):
    """A request the service cannot do, with the reason in English and Chinese; `kind` says
    which: not_found, conflict, busy, bad_request."""

    def __init__(self, kind: str, en: str, zh: str) -> None:
        super().__init__(en)
        self.kind = kind
        self.en = en
        self.zh = zh


__all__ = ["ServiceError"]
