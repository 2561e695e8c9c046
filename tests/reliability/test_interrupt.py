"""Ctrl+C during a long `zhiku ingest`: every file committed before it stays, the knowledge base
passes `zhiku kb check`, and the same command run again ingests exactly the rest.

A real `zhiku ingest` process gets a real SIGINT once its first batch is committed (seen from
outside, in its SQLite file). Chunks are kept short (CHUNK_SIZE=60) so 50 files make several
batches quickly on two shared cores.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import MODELS_DIR

SENTENCE = "写入采用事务，提交之前的修改在中断后不会留下半个文件。"


def committed(db: Path) -> int:
    if not db.is_file():
        return 0
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:  # not created yet, or locked for a moment
        return 0


@pytest.mark.slow
def test_sigint_keeps_finished_files_and_a_rerun_finishes_the_rest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(50):
        (docs / f"f{i:02d}.txt").write_text(f"第{i}号文件\n" + SENTENCE * 12, encoding="utf-8")
    env = {
        **os.environ,
        "ZHIKU_HOME": str(tmp_path / "home"),
        "ZHIKU_MODELS_DIR": str(MODELS_DIR),
        "LLM_BACKEND": "none",
        "CHUNK_SIZE": "60",
        "CHUNK_OVERLAP": "0",
    }
    zhiku = [str(Path(sys.executable).parent / "zhiku")]
    db = tmp_path / "home" / "kbs" / "c" / "kb.sqlite"
    run = subprocess.Popen(
        [*zhiku, "ingest", str(docs), "--kb", "c"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 600
    while committed(db) == 0 and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "the ingest ended before its first commit was seen"
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=600)
    kept = committed(db)
    assert run.returncode == 130, (out, err)
    assert "stopped" in err and 0 < kept < 50, (kept, out, err)
    check = subprocess.run([*zhiku, "kb", "check", "--kb", "c"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert check.returncode == 0 and f"consistent ({kept} documents" in check.stdout, check
    again = subprocess.run([*zhiku, "ingest", str(docs), "--kb", "c"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=900)  # fmt: skip
    assert again.returncode == 0, again
    assert f"added {50 - kept}, updated 0, skipped {kept}, failed 0" in again.stdout
    assert committed(db) == 50
