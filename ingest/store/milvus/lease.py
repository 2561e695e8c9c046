"""One writer at a time per knowledge base, across processes and machines, kept in Milvus.

Milvus has no transactions and no compare-and-set, but it has what Lamport's bakery algorithm
needs: rows every contender can write and read back with Strong consistency (a read sees every
write that finished before it). A contender writes its row with `choosing`, reads every live
row, takes a ticket one above the highest, writes it, then waits until no other live contender
is still choosing or holds a smaller (ticket, id). That is mutual exclusion without a server
of our own.

A contender's state is never upserted: an upsert of a row is a delete and an insert, and a
Strong query that falls between them sees no row at all (measured on the Milvus core: a quarter
of the queries made while one row was upserted in a loop found nothing), so a holder renewing
its row would vanish for a moment and a newcomer would walk in beside it. Each write inserts a
new row (`lease:<holder>:<n>`) and only then deletes the previous one; readers take each
holder's highest `n`.

A row is live while its holder renews it: a background thread writes a new one every third of
`MILVUS_LEASE_S`. A process that dies (SIGKILL, a lost machine) stops renewing, and after
`MILVUS_LEASE_S` the others pass it by. The machines' clocks must agree to well within that
(NTP does). A holder whose last renewal is older than two thirds of the lease renews before it
commits, and one whose renewal is a whole lease old gives up its writes: by then another may
have passed it by.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from ingest.store.base import StoreError
from ingest.store.milvus.schema import literal

if TYPE_CHECKING:
    from pymilvus import MilvusClient

KIND = "lease"


class Lease:
    def __init__(
        self, client: MilvusClient, catalog: str, kb: str, lease_s: float, timeout_s: float
    ) -> None:
        self.client = client
        self.catalog = catalog
        self.kb = kb
        self.lease_s = lease_s
        self.timeout_s = timeout_s
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self.ticket = 0
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        # writes (the renewer's and the committing thread's) take turns, and none lands after
        # `release` has deleted the rows
        self._writing = threading.Lock()
        self._released = False
        self._written = 0  # rows written so far: the next row's `n`
        self._beat = 0.0  # wall-clock time of the last row that was written
        self.lost = False

    def _key(self, n: int) -> str:
        return f"{KIND}:{self.holder}:{n}"

    def _write(self, choosing: bool) -> None:
        with self._writing:
            if self._released:
                return
            n = self._written
            beat = time.time()
            body = {"choosing": choosing, "ticket": self.ticket, "beat": beat, "n": n}
            self.client.insert(
                self.catalog,
                [
                    {
                        "key": self._key(n),
                        "kind": KIND,
                        "doc_id": "",
                        "version": "",
                        "origin": self.holder,
                        "sha256": "",
                        "seq": self.ticket,
                        "number": n,
                        "body": json.dumps(body),
                        "_v": [0.0, 0.0],
                    }
                ],
            )
            self._written = n + 1
            self._beat = beat
            if n:
                self.client.delete(self.catalog, ids=[self._key(n - 1)])

    def others(self) -> list[tuple[str, dict[str, Any]]]:
        """Live contenders other than this one: (holder, newest state)."""
        rows = self.client.query(
            self.catalog,
            filter=f'kind == "{KIND}"',
            output_fields=["origin", "body"],
            consistency_level="Strong",
        )
        newest: dict[str, dict[str, Any]] = {}
        for row in rows:
            state = json.loads(row["body"])
            seen = newest.get(row["origin"])
            if seen is None or state.get("n", 0) > seen.get("n", 0):
                newest[row["origin"]] = state
        now = time.time()
        return [
            (holder, state)
            for holder, state in newest.items()
            if holder != self.holder and now - state["beat"] < self.lease_s
        ]

    def acquire(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        self.ticket = 0
        self._write(choosing=True)
        try:
            self.ticket = 1 + max((s["ticket"] for _, s in self.others()), default=0)
            self._write(choosing=False)
            last_beat = time.monotonic()
            while True:
                blocking = [
                    holder
                    for holder, s in self.others()
                    if s["choosing"]
                    or (s["ticket"] > 0 and (s["ticket"], holder) < (self.ticket, self.holder))
                ]
                if not blocking:
                    break
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"knowledge base {self.kb!r} is being written by another process "
                        f"({blocking[0]}; waited {self.timeout_s:.0f} s for its Milvus lease); "
                        "try again when it has finished",
                        f"知识库 {self.kb!r} 正被另一个进程写入（{blocking[0]}，已等待 "
                        f"{self.timeout_s:.0f} 秒）；请在它完成后重试",
                    )
                if time.monotonic() - last_beat > self.lease_s / 3:
                    self._write(choosing=False)  # waiting is not dying
                    last_beat = time.monotonic()
                time.sleep(0.05)
        except BaseException:
            self._delete()
            raise
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew, name="zhiku-lease", daemon=True)
        self._renewer.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            with suppress(Exception):  # `check` judges by the age of the last row written
                self._write(choosing=False)

    def check(self) -> None:
        """Called before each commit: a holder whose lease may have expired must not write on."""
        if not self.lost and time.time() - self._beat > self.lease_s * 2 / 3:
            if time.time() - self._beat < self.lease_s:
                with suppress(Exception):
                    self._write(choosing=False)
            if time.time() - self._beat >= self.lease_s:
                self.lost = True  # another writer may be inside: never write under it again
        if self.lost:
            raise StoreError(
                f"lost the write lease of knowledge base {self.kb!r} (not renewed for "
                f"{self.lease_s:.0f} s); nothing half-written is visible: run the command again",
                f"知识库 {self.kb!r} 的写入租约已失效（{self.lease_s:.0f} 秒未能续约）；"
                "请重新运行该命令",
            )

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        self._delete()

    def _delete(self) -> None:
        with self._writing:
            self._released = True
        with suppress(Exception):  # the rows expire by themselves
            self.client.delete(
                self.catalog, filter=f'kind == "{KIND}" and origin == {literal(self.holder)}'
            )
