"""One writer at a time per knowledge base, across processes and machines, kept in Milvus.

Milvus has no transactions and no compare-and-set, but it has what Lamport's bakery algorithm
needs: rows every contender can write and read back with Strong consistency (a read sees every
write that finished before it). A contender writes its row with `choosing`, reads every live
row, takes a ticket one above the highest, writes it, then waits until no other live contender
is still choosing or holds a smaller (ticket, id). That is mutual exclusion without a server
of our own.

A row is live while its holder renews it: a background thread rewrites it every third of
`MILVUS_LEASE_S`. A process that dies (SIGKILL, a lost machine) stops renewing, and after
`MILVUS_LEASE_S` the others pass it by. The machines' clocks must agree to well within that
(NTP does); a writer whose renewal fails for a whole lease gives up its writes.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import suppress
from typing import TYPE_CHECKING

from ingest.store.base import StoreError

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
        self.lost = False

    def _write(self, choosing: bool) -> None:
        body = {"choosing": choosing, "ticket": self.ticket, "beat": time.time()}
        self.client.upsert(
            self.catalog,
            [
                {
                    "key": f"{KIND}:{self.holder}",
                    "kind": KIND,
                    "doc_id": "",
                    "version": "",
                    "origin": self.holder,
                    "sha256": "",
                    "seq": self.ticket,
                    "number": -1,
                    "body": json.dumps(body),
                    "_v": [0.0, 0.0],
                }
            ],
        )

    def others(self) -> list[tuple[str, dict]]:
        """Live contenders other than this one: (holder, state)."""
        rows = self.client.query(
            self.catalog,
            filter=f'kind == "{KIND}"',
            output_fields=["origin", "body"],
            consistency_level="Strong",
        )
        now = time.time()
        live = []
        for row in rows:
            state = json.loads(row["body"])
            if row["origin"] != self.holder and now - state["beat"] < self.lease_s:
                live.append((row["origin"], state))
        return live

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
        last_ok = time.monotonic()
        while not self._stop.wait(self.lease_s / 3):
            try:
                self._write(choosing=False)
                last_ok = time.monotonic()
            except Exception:
                if time.monotonic() - last_ok > self.lease_s:
                    self.lost = True

    def check(self) -> None:
        """Called before each commit: a holder that could not renew must not write on."""
        if self.lost:
            raise StoreError(
                f"lost the write lease of knowledge base {self.kb!r} (Milvus unreachable for "
                f"{self.lease_s:.0f} s); nothing half-written is visible: run the command again",
                f"知识库 {self.kb!r} 的写入租约已失效（Milvus 无法连接）；请重新运行该命令",
            )

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=5)
        self._delete()

    def _delete(self) -> None:
        with suppress(Exception):  # the row expires by itself
            self.client.delete(self.catalog, ids=[f"{KIND}:{self.holder}"])
