"""A test double of the embedded model's worker process (`app/_worker.py`), same pipe protocol.

Used where the real worker cannot show the behaviour on these machines: a CPU that traps on an
instruction at the first generation (SIGILL needs that CPU; here the process sends it to itself
exactly where the real one would die, before reporting ready), and scripted answers for the
supervisor's bookkeeping (turns, busy callers, crash counts) without a model's minutes.

    python fake_worker.py MODE [--n-ctx N --threads T --model PATH]   (the real worker's flags)

MODE: `sigill-at-check` | `answer` (streams "答案" token by token, slowly enough to be
interrupted) | `fail-to-load`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

TOKENS = ["根据", "资料", ",", "答案", "是", "四十二", "[1]", "。"]


def emit(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def main() -> int:
    mode = sys.argv[1]
    if mode == "sigill-at-check":
        os.kill(os.getpid(), signal.SIGILL)
        time.sleep(10)
        return 0
    if mode == "fail-to-load":
        emit({"event": "failed", "message": "llama_model_load: error loading model"})
        return 3
    emit({"event": "ready", "system_info": "fake", "pid": os.getpid()})
    cancelled: set[int] = set()
    pending: list[dict[str, object]] = []
    arrived = threading.Condition()

    def read() -> None:
        for line in sys.stdin:
            message = json.loads(line)
            with arrived:
                if message.get("op") == "cancel":
                    cancelled.add(int(message["id"]))
                else:
                    pending.append(message)
                arrived.notify()
        os._exit(0)

    threading.Thread(target=read, daemon=True).start()
    while True:
        with arrived:
            while not pending:
                arrived.wait()
            message = pending.pop(0)
        request_id = int(message["id"])  # type: ignore[arg-type]
        for token in TOKENS:
            if request_id in cancelled:
                break
            emit({"id": request_id, "event": "token", "text": token})
            time.sleep(0.05)
        emit(
            {
                "id": request_id,
                "event": "done",
                "finish_reason": "stop",
                "timings": {"prompt_n": 10, "cache_n": 5, "predicted_n": len(TOKENS)},
            }
        )


if __name__ == "__main__":
    sys.exit(main())
