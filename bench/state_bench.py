"""The state database under load: conversation writes and reads on SQLite and on PostgreSQL.

8 clients (threads of one process, each with its own connection from the engine's pool) for a
bounded time, through the product's own `ConversationStore`: each client appends turns (a real
answer's record, ~3 KB of JSON) to a conversation of its own and to one all clients share, sets
feedback on every fourth, and reads back its conversation. Afterwards every write is checked:
nothing lost, no duplicate position. PostgreSQL is Debian's 15, started on 127.0.0.1 with its own
data directory (the tests' `tests/postgres_server.py`), or the server of `--postgres URL`.

    python -m bench.state_bench [--seconds 20] [--clients 8] [--postgres postgresql://…]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench._common import REPO, bench_settings, latency_summary, say

CLIENTS = 8


def _result() -> Any:
    from app._llm import BackendInfo
    from app.answer import AnswerResult, Citation
    from app.answer.passages import Passage

    passages = [
        Passage(
            number=n,
            chunk_ids=(n, n + 1),
            doc_id=f"doc-{n}",
            title="员工手册",
            source="/data/员工手册.pdf",
            doc_type="pdf",
            page=n,
            page_seq=n,
            headings=("员工手册", "第二章 休假"),
            start=10,
            end=300,
            text="第二章 休假\n员工每年享有十五天带薪年假。" * 8,
            score=1.0,
            dense=0.9,
        )
        for n in range(1, 5)
    ]
    return AnswerResult(
        question="员工每年有几天年假?",
        standalone_question="员工每年有几天年假?",
        answer="员工每年享有十五天带薪年假[1]。",
        citations=[Citation(1, passages[0], 17, 31, "员工每年享有十五天带薪年假")],
        passages=passages,
        refused=False,
        refusal_reason=None,
        backend=BackendInfo("ollama", "qwen2.5:3b"),
        timings={"retrieval_s": 0.1, "total_s": 1.2},
    )


def run(settings: Any, seconds: float, clients: int) -> dict[str, Any]:
    from app._conversations import ConversationStore, Feedback, Turn

    result = _result()
    store = ConversationStore(settings, "bench")
    shared = store.create("共享")
    writes: list[float] = []
    reads: list[float] = []
    written: dict[str, int] = {}
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        mine = store.create(f"client {number}")
        my_writes, my_reads, counts = [], [], {mine: 0, shared: 0}
        i = 0
        try:
            while time.monotonic() < deadline:
                target = shared if i % 2 else mine
                started = time.perf_counter()
                seq = store.append(target, Turn(f"客户{number}问题{i}", result))
                if i % 4 == 0:
                    store.set_feedback(target, seq, Feedback(1, "好"))
                my_writes.append(time.perf_counter() - started)
                counts[target] += 1
                started = time.perf_counter()
                store.turns(mine)
                my_reads.append(time.perf_counter() - started)
                i += 1
        except Exception as exc:  # reported, and the run counts as failed
            errors.append(f"client {number}: {type(exc).__name__}: {exc}")
        with lock:
            writes.extend(my_writes)
            reads.extend(my_reads)
            for key, value in counts.items():
                written[key] = written.get(key, 0) + value

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lost = duplicates = 0
    for conversation, count in written.items():
        seqs = [t.seq for t in store.turns(conversation)]
        lost += max(0, count - len(seqs))
        duplicates += len(seqs) - len(set(seqs))
        if seqs != list(range(len(seqs))):
            errors.append(f"conversation {conversation}: positions {seqs[:5]}… not 0..n-1")
    return {
        "write": latency_summary(writes),
        "read": latency_summary(reads),
        "writes_per_s": len(writes) / seconds,
        "lost": lost,
        "duplicates": duplicates,
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--postgres", default="", help="a PostgreSQL URL (default: start one)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    from postgres_server import PostgresServer

    server = None
    url = args.postgres
    if not url:
        server = PostgresServer()
        if not server.start():
            say(f"PostgreSQL cannot run here: {server.why_not}")
            return 1
        url = server.create_database()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for engine, state_url in (("SQLite", ""), ("PostgreSQL 15", url)):
                settings = bench_settings(Path(tmp) / engine, state_url=state_url)
                say(f"{engine}: {args.clients} clients for {args.seconds:.0f} s …")
                rows.append((engine, run(settings, args.seconds, args.clients)))
    finally:
        from app.state.engine import forget_engines

        forget_engines()
        if server is not None:
            server.stop()
    print(f"\n{args.clients} clients, {args.seconds:.0f} s each\n")
    print("| engine | write p50 / p95 ms | read p50 / p95 ms | writes/s | lost | duplicates |")
    print("|---|---|---|---|---|---|")
    failed = False
    for engine, found in rows:
        w, r = found["write"], found["read"]
        print(
            f"| {engine} | {w['p50_ms']:.1f} / {w['p95_ms']:.1f} | {r['p50_ms']:.1f} / "
            f"{r['p95_ms']:.1f} | {found['writes_per_s']:.0f} | {found['lost']} | "
            f"{found['duplicates']} |"
        )
        for error in found["errors"]:
            print(f"  {engine}: {error}")
        failed = failed or bool(found["errors"]) or found["lost"] or found["duplicates"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
