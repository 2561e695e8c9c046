"""Debian's PostgreSQL 15 (installed by `make postgres`), started on 127.0.0.1 on a free port with
a data directory of its own for the tests, and stopped after. PostgreSQL refuses to run as root,
so as root the server runs as the `postgres` user in a folder it owns."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from milvus_server import free_port

BIN = Path(os.environ.get("ZHIKU_POSTGRES_BIN", "/usr/lib/postgresql/15/bin"))
USER = "zk"


class PostgresServer:
    """One cluster; `why_not` says why it could not start (then the tests that need it skip)."""

    def __init__(self) -> None:
        self.dir: Path | None = None
        self.port = 0
        self.why_not = ""
        self._as_postgres = os.getuid() == 0

    def _run(self, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if self._as_postgres:
            line = " ".join(f"'{part}'" for part in command)
            command = ("su", "postgres", "-s", "/bin/sh", "-c", line)
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)

    def start(self) -> bool:
        if not (BIN / "pg_ctl").is_file():
            self.why_not = f"PostgreSQL is not installed at {BIN}: run `make postgres`"
            return False
        if self._as_postgres:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                self.why_not = "running as root and there is no `postgres` user to run the server"
                return False
        # not under pytest's temporary folder: its parent is private to root
        self.dir = Path(tempfile.mkdtemp(prefix="zhiku-pg-"))
        if self._as_postgres:
            os.chown(self.dir, owner.pw_uid, owner.pw_gid)
        self.port = free_port()
        data = self.dir / "db"
        steps = [
            (str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8"),
            (
                str(BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                f"-p {self.port} -k {self.dir} -h 127.0.0.1 -c fsync=off -c max_connections=200",
                "-l",
                str(self.dir / "pg.log"),
                "-w",
                "start",
            ),
        ]
        for step in steps:
            done = self._run(*step)
            if done.returncode != 0:
                log = self.dir / "pg.log"
                tail = log.read_text(errors="replace")[-500:] if log.is_file() else ""
                self.why_not = f"{Path(step[0]).name} failed: {done.stderr.strip()[-500:]} {tail}"
                self.stop()
                return False
        return True

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=USER, dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """A new empty database on this server; its SQLAlchemy URL."""
        name = f"t{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]} WITH (FORCE)")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        if self.dir is None:
            return
        if (self.dir / "db" / "postmaster.pid").exists():
            self._run(str(BIN / "pg_ctl"), "-D", str(self.dir / "db"), "stop", "-m", "fast")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None
