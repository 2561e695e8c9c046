"""The app's own records: people, grants, keys, conversations, jobs, sources, the audit log.

One SQLAlchemy engine (`app.state.engine`): SQLite under `ZHIKU_HOME` by default, PostgreSQL when
`STATE_URL` names one. Each kind of record defines its tables on `engine.metadata` in a module of
its own beside this one and reads and writes them with SQLAlchemy Core.
"""

# every module that declares tables, imported here so that `open_state` (which creates the
# tables of `metadata` once per database) finds them all, whichever module a process opens first
from app.state import (
    accounts,
    audit,
    conversations,
    evalcases,
    jobs,
    keys,
    sessions,
    sources,
)
from app.state.engine import SCHEMA_VERSION, StateError, metadata, open_state, state_url

__all__ = [
    "SCHEMA_VERSION",
    "StateError",
    "accounts",
    "audit",
    "conversations",
    "evalcases",
    "jobs",
    "keys",
    "metadata",
    "open_state",
    "sessions",
    "sources",
    "state_url",
]
