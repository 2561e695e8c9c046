"""The real Milvus core (the C++ server inside the `milvus-lite==2.5.1` wheel, installed by
`make milvus` into .venv/milvus-core), started on 127.0.0.1 on a free port for the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import suppress
from pathlib import Path

from support import REPO

CORE = Path(os.environ.get("ZHIKU_MILVUS_CORE", REPO / ".venv" / "milvus-core"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MilvusServer:
    """One server process; `why_not` says why it could not start (then tests skip)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.uri = ""
        self.why_not = ""

    def start(self, timeout_s: float = 60.0) -> bool:
        lib = CORE / "milvus_lite" / "lib"
        binary = lib / "milvus"
        if not binary.is_file():
            self.why_not = f"the Milvus core is not installed at {binary}: run `make milvus`"
            return False
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {**os.environ, "LD_LIBRARY_PATH": str(lib)}
        log = (self.data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [str(binary), str(self.data_dir / "m.db"), f"127.0.0.1:{port}", "ERROR"],
            cwd=self.data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.why_not = f"the Milvus core exited with {self.process.returncode}"
                return False
            with socket.socket() as s, suppress(OSError):
                s.connect(("127.0.0.1", port))
                self.uri = f"http://127.0.0.1:{port}"
                return True
            time.sleep(0.1)
        self.why_not = f"the Milvus core did not listen within {timeout_s:.0f} s"
        self.stop()
        return False

    def drop_all(self) -> None:
        """Drop every collection: the next test starts from an empty server."""
        from pymilvus import MilvusClient

        from ingest.store.milvus.schema import GRPC_OPTIONS

        client = MilvusClient(uri=self.uri, grpc_options=GRPC_OPTIONS)
        for name in client.list_collections():
            client.drop_collection(name)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
