"""The HTTP API under load: concurrent clients on `POST /v1/search` against a large knowledge
base while uploads run, through a real `zhiku serve` (uvicorn, its own process, an API key).

    .venv/bin/python bench/api_load.py [--size 100000] [--clients 8] [--seconds 60]

The knowledge base has the scale benchmark's synthetic text (bench/synth.py: real Chinese,
varied) with random unit vectors (see `ensure_load_kb`), built once into
`.zhiku/bench-cache/api-load-kb/` and copied to a throwaway data home for each run, so the
uploads never touch the cache. Every client is a
thread with its own HTTP connection sending real evaluation questions one after another; an
uploader sends two new small documents every few seconds and follows each job to the end.
Afterwards every uploaded document must be in the knowledge base exactly once. The clients run
on the same two cores as the server: the latencies include that contention. The figures go into
`bench/results.md`, section "6. API under load" (replaced on each run).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import synth
from bench._common import CACHE_DIR, MODELS_DIR, RAW_DIR, REPO, RESULTS_MD, say, table

BEGIN = "<!-- api-load: written by bench/api_load.py -->"
END = "<!-- /api-load -->"
ZHIKU = str(REPO / ".venv" / "bin" / "zhiku")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def start_server(home: Path, kb: str, port: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIKU_", "LLM_"))}
    env.update(
        ZHIKU_HOME=str(home), ZHIKU_MODELS_DIR=str(MODELS_DIR), LLM_BACKEND="none", DEFAULT_KB=kb
    )
    created = subprocess.run(
        [ZHIKU, "keys", "create", "--name", "load"],
        env=env,
        cwd=home.parent,
        capture_output=True,
        text=True,
        check=True,
    )
    key = created.stdout.strip()
    handle = log.open("wb")
    proc = subprocess.Popen(
        [ZHIKU, "serve", "--port", str(port)],
        env=env,
        cwd=home.parent,
        stdout=handle,
        stderr=handle,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace"))
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc, key
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError("zhiku serve did not start")


def load_kb_dir(size: int) -> Path:
    return CACHE_DIR / "api-load-kb" / "kbs" / f"load-{size}"


def ensure_load_kb(size: int) -> dict[str, Any]:
    """A knowledge base of `size` chunks with bench/synth.py's text (real Chinese, varied) and
    schema, but random unit vectors instead of synth's calibrated ones: calibrating needs ~2,900
    real embeddings, an hour on a loaded machine, and a flat index costs the same per query
    whatever the vectors. The text is what matters for the keyword side. Cached."""
    import sqlite3

    import numpy as np

    from bench._common import bench_settings, load_model
    from ingest._store import KnowledgeBase

    path = load_kb_dir(size)
    db = path / "kb.sqlite"
    settings = bench_settings(path.parent.parent)
    if db.is_file():
        conn = sqlite3.connect(db)
        try:
            built = synth._meta(conn, "api_load_built")
        finally:
            conn.close()
        if built:
            return json.loads(built)
        shutil.rmtree(path)
    spec = dict(load_model(say).spec.__dict__)  # the server's model must accept the vectors
    rng = np.random.default_rng([synth.SEED, 9])
    sources = synth.load_sources()
    windows = synth.make_windows(sources, synth.WINDOWS, rng)
    centres = rng.standard_normal((len(windows), spec["dimension"])).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    material = synth.Material(
        sources,
        windows,
        centres,
        np.eye(spec["dimension"], dtype=np.float32),
        0.05,
        [],
        [],
        np.zeros((0, spec["dimension"]), dtype=np.float32),
        spec,
        {},
    )
    started = time.perf_counter()
    KnowledgeBase.open(settings, path.name, create=True).close()  # the product's schema
    conn = sqlite3.connect(db, isolation_level=None, timeout=60)
    conn.execute("PRAGMA synchronous=OFF")  # a cache: a crash means a rebuild
    synth._set_meta(conn, "embedding", json.dumps(spec, ensure_ascii=False))
    synth._set_meta(conn, "generation", "1")
    synth._fill(conn, material, range(size // synth.BLOCK), size)
    conn.close()
    kb = KnowledgeBase.open(settings, path.name)
    try:
        kb.save_vectors()  # the product's own index (flat below IVF_THRESHOLD)
        info = {"size": size, "build_s": time.perf_counter() - started, **kb.counts()}
        with kb._lock:
            synth._set_meta(kb.conn, "api_load_built", json.dumps(info))
    finally:
        kb.close()
    return info


def run(size: int, clients: int, seconds: float) -> dict[str, Any]:
    build = ensure_load_kb(size)
    kb = load_kb_dir(size).name
    work = CACHE_DIR / "api-load"
    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    say(f"copying {kb} to {home} (the uploads must not change the cache)")
    shutil.copytree(load_kb_dir(size), home / "kbs" / kb)
    # the evaluation sets' questions; an empty one would be a (correct) 422, not load
    questions = [q for q in synth._read_questions()[0] if q.strip()]
    port = free_port()
    proc, key = start_server(home, kb, port, work / "serve.log")
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(headers=headers, timeout=60) as warm:
            for question in questions[:10]:
                warm.post(f"{url}/v1/search", json={"query": question}).raise_for_status()
            before = len(warm.get(f"{url}/v1/knowledge_bases/{kb}/documents").json())

        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client(index: int, stop: threading.Event = stop) -> None:
            position = index * 97
            with httpx.Client(headers=headers, timeout=60) as http:
                while not stop.is_set():
                    question = questions[position % len(questions)]
                    position += 1
                    started = time.perf_counter()
                    try:
                        response = http.post(f"{url}/v1/search", json={"query": question, "k": 5})
                        ok = response.status_code == 200 and len(response.json()["passages"]) == 5
                        problem = "" if ok else f"{response.status_code}: {response.text[:200]}"
                    except (httpx.HTTPError, ValueError) as exc:
                        problem = f"{type(exc).__name__}: {exc}"
                    elapsed = time.perf_counter() - started
                    with lock:
                        if problem:
                            errors.append(problem)
                        else:
                            latencies.append(elapsed)

        uploaded: list[str] = []
        jobs: list[dict[str, Any]] = []

        def uploader() -> None:
            batch = 0
            with httpx.Client(headers=headers, timeout=120) as http:
                while not stop.is_set():
                    files = []
                    for j in range(2):
                        name = f"load-{batch:03d}-{j}.txt"
                        text = (
                            f"负载测试文档 {batch}-{j}\n第 {batch} 批第 {j} 份上传的文档，"
                            f"编号 ZK{batch:03d}{j}，用来检查并发上传之后每份文档只入库一次。\n"
                        )
                        files.append(("files", (name, text.encode())))
                        uploaded.append(name)
                    try:
                        response = http.post(
                            f"{url}/v1/knowledge_bases/{kb}/documents", files=files
                        )
                        response.raise_for_status()
                        job = response.json()
                        while job["status"] in ("queued", "running"):
                            time.sleep(0.5)
                            job = http.get(f"{url}/v1/jobs/{job['id']}").json()
                        jobs.append(job)
                    except (httpx.HTTPError, ValueError) as exc:
                        with lock:
                            errors.append(f"upload: {type(exc).__name__}: {exc}")
                    batch += 1
                    stop.wait(3.0)

        # one client alone first, no uploads: the same server's unloaded latency, side by side
        alone = threading.Event()
        single = threading.Thread(target=client, args=(clients, alone))
        single.start()
        time.sleep(min(15.0, seconds / 4))
        alone.set()
        single.join()
        with lock:
            single_latencies, latencies[:] = list(latencies), []
            single_errors, errors[:] = len(errors), []

        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        threads.append(threading.Thread(target=uploader))
        say(f"{clients} clients on /v1/search for {seconds:.0f} s, uploads running")
        load_before = os.getloadavg()
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        load_after = os.getloadavg()

        with httpx.Client(headers=headers, timeout=60) as http:
            docs = http.get(f"{url}/v1/knowledge_bases/{kb}/documents").json()
        files = [d["file"] for d in docs]
        counts = {name: files.count(name) for name in uploaded}
        failed_files = [
            f for job in jobs for f in job["files"] if f["status"] not in ("added", "updated")
        ]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "size": size,
        "requested_seconds": seconds,
        "build": build,
        "clients": clients,
        "seconds": wall,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_samples": errors[:5],
        "throughput_rps": len(latencies) / wall,
        "single_requests": len(single_latencies),
        "single_errors": single_errors,
        "single_p50_ms": 1000 * statistics.median(single_latencies) if single_latencies else None,
        "single_p95_ms": 1000 * percentile(single_latencies, 0.95) if single_latencies else None,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else None,
        "p95_ms": 1000 * percentile(latencies, 0.95) if latencies else None,
        "p99_ms": 1000 * percentile(latencies, 0.99) if latencies else None,
        "uploads": len(uploaded),
        "upload_jobs": len(jobs),
        "upload_files_failed": len(failed_files),
        "documents_before": before,
        "documents_after": len(docs),
        "uploaded_present_once": sum(1 for c in counts.values() if c == 1),
        "uploaded_missing": sorted(n for n, c in counts.items() if c == 0),
        "uploaded_duplicated": sorted(n for n, c in counts.items() if c > 1),
        "load_average_before": load_before,
        "load_average_after": load_after,
    }


def render(r: dict[str, Any]) -> str:
    ok = r["errors"] == 0 and not r["uploaded_missing"] and not r["uploaded_duplicated"]
    rows = [
        [
            "knowledge base",
            f"{r['size']:,} chunks, {r['documents_before']:,} documents: bench/synth.py text, "
            "random unit vectors, flat index",
        ],
        ["clients", f"{r['clients']} threads, one HTTP connection each, real questions"],
        ["duration", f"{r['seconds']:.1f} s"],
        ["search requests", f"{r['requests']:,} ({r['throughput_rps']:.1f}/s)"],
        ["errors", f"{r['errors']}"],
        [
            "one client alone first (no uploads): p50 / p95",
            f"{r['single_p50_ms']:.0f} / {r['single_p95_ms']:.0f} ms over "
            f"{r['single_requests']} requests ({r['single_errors']} errors)",
        ],
        [
            "latency p50 / p95 / p99",
            f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f} / {r['p99_ms']:.0f} ms",
        ],
        [
            "uploads during the load",
            f"{r['uploads']} files in {r['upload_jobs']} jobs; "
            f"failed files {r['upload_files_failed']}",
        ],
        [
            "every uploaded document present once",
            f"{r['uploaded_present_once']} of {r['uploads']} "
            f"(missing {len(r['uploaded_missing'])}, duplicated {len(r['uploaded_duplicated'])}); "
            f"documents {r['documents_before']:,} → {r['documents_after']:,}",
        ],
        [
            "load average (1/5/15 min) before → after",
            " / ".join(f"{x:.2f}" for x in r["load_average_before"])
            + " → "
            + " / ".join(f"{x:.2f}" for x in r["load_average_after"]),
        ],
    ]
    lines = [
        BEGIN,
        "## 6. API under load",
        "",
        f"`.venv/bin/python bench/api_load.py --size {r['size']} --clients {r['clients']} "
        f"--seconds {r['requested_seconds']:.0f}`: a real `zhiku serve` (uvicorn, API key, "
        "no LLM), "
        f"{r['clients']} concurrent clients on `POST /v1/search` (k=5) while an uploader sends two "
        "documents every ~3 s and follows each job. Clients and server share the same 2 cores "
        "(and the machine is shared with other work), so these latencies include that "
        f"contention; the same server with one client alone, measured just before, is the "
        "reference (section 2: ~46 ms p50 at 100k for `search()` in process). Result: "
        f"{'no errors, nothing lost' if ok else 'FAILED (see errors)'}.",
        "",
        table(["what", "measured"], rows),
    ]
    if r["error_samples"]:
        lines += ["", "Errors: " + "; ".join(f"`{e}`" for e in r["error_samples"])]
    lines.append(END)
    return "\n".join(lines)


def write_section(section: str) -> None:
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.is_file() else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS_MD.write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000, help="chunks (a multiple of 10,000)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    result = run(args.size, args.clients, args.seconds)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    (RAW_DIR / "api_load.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    section = render(result)
    write_section(section)
    print(section)
    return 0 if result["errors"] == 0 and not result["uploaded_missing"] else 1


if __name__ == "__main__":
    sys.exit(main())
