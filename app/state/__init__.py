"""The app's own records: people, grants, keys, conversations, jobs, the audit log.

One SQLAlchemy engine (`app.state.engine`): SQLite under `ZHIKU_HOME` by default, PostgreSQL when
`STATE_URL` names one. Each kind of record defines its tables on `engine.metadata` in a module of
its own beside this one and reads and writes them with SQLAlchemy Core.
"""

# the modules that declare tables, imported so that `open_state` creates them all
from app.state import conversations
from app.state.engine import SCHEMA_VERSION, StateError, metadata, open_state, state_url

__all__ = [
    "SCHEMA_VERSION",
    "StateError",
    "conversations",
    "evalcases",
    "jobs",
    "metadata",
    "open_state",
    "state_url",
]
