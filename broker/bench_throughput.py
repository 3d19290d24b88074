"""Throughput of `antrean bench`: commands replied to per second in a closed loop,
and the raw SQLite commit rate of the same disk for comparison.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from broker.bench_load import Devices, Refill
from broker.bench_office import BenchError
from broker.client import OfficeClient, new_command_id
from broker.contract import Command, CommandKind, Reply

_LOGGER = logging.getLogger(__name__)

# The raw commits write rows of about the size of a command's log row.
RAW_ROW_BYTES = 600


@dataclass(frozen=True)
class Throughput:
    """Commands the engine committed and replied to per second, in a closed loop."""

    commands_per_s: float
    commands: int
    seconds: float
    rejected: int
    concurrency: int


class ClosedLoop:
    """Counters that alternate Next and Finish with no pause, each waiting for its
    reply; each ticket called brings one ticket request from a kiosk.

    So the mix is a third each of issue, next and finish, and at most one
    command per counter plus the kiosks' requests is in flight.
    """

    def __init__(self, devices: Devices, refill: Refill, commands: int) -> None:
        self.devices = devices
        self.refill = refill
        self.target = commands
        self.replied: list[float] = []
        self.rejected = 0
        self._lock = threading.Lock()
        self._done = threading.Event()

    def run(self, timeout: float) -> Throughput:
        """Run until `commands` replies or the timeout; time all but the first tenth."""
        for client in self.devices.counters:
            self._send(client, CommandKind.NEXT)
        self._done.wait(timeout)
        # After a timeout the counters stop here too, before the next phase.
        self._done.set()
        with self._lock:
            replied = list(self.replied)
        warm = len(replied) // 10
        if len(replied) - warm < 2:
            raise BenchError(
                f"the engine replied to only {len(replied)} commands in {timeout:.0f} s"
            )
        seconds = replied[-1] - replied[warm]
        return Throughput(
            commands_per_s=(len(replied) - 1 - warm) / seconds,
            commands=len(replied),
            seconds=seconds,
            rejected=self.rejected,
            concurrency=len(self.devices.counters),
        )

    def _send(self, client: OfficeClient, kind: CommandKind) -> None:
        if self._done.is_set():
            return
        command = Command(kind, new_command_id("bench"), counter=int(client.device))
        client.send(command).add_done_callback(
            lambda done: self._replied(client, kind, done)
        )

    def _replied(
        self, client: OfficeClient, kind: CommandKind, future: Future[Reply]
    ) -> None:
        if self._done.is_set():
            return
        reply = self._result(future)
        self._count(reply)
        if reply is None:
            # A counter whose command timed out or was not sent stops here, so a
            # lost broker ends the run instead of looping on failures.
            _LOGGER.warning(
                "%s at counter %s failed: %s",
                kind.value,
                client.device,
                future.exception(),
            )
            return
        if kind is CommandKind.NEXT and reply.ok:
            ticket = self.refill.issue()
            ticket.add_done_callback(lambda done: self._count(self._result(done)))
            self._send(client, CommandKind.FINISH)
        else:
            self._send(client, CommandKind.NEXT)

    @staticmethod
    def _result(future: Future[Reply]) -> Reply | None:
        return future.result() if future.exception() is None else None

    def _count(self, reply: Reply | None) -> None:
        with self._lock:
            if reply is None:
                return
            self.replied.append(time.monotonic())
            if not reply.ok:
                self.rejected += 1
            if len(self.replied) >= self.target:
                self._done.set()


def raw_commit_rate(directory: Path, commits: int) -> float:
    """Return commits per second of one-row transactions in WAL mode with
    synchronous=FULL, as the store is set up, in a new file in `directory`.
    """
    path = directory / "raw-commits.sqlite"
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode = WAL")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("CREATE TABLE rows (id INTEGER PRIMARY KEY, body TEXT)")
        body = "x" * RAW_ROW_BYTES
        started = time.perf_counter()
        for _ in range(commits):
            connection.execute("BEGIN")
            connection.execute("INSERT INTO rows (body) VALUES (?)", [body])
            connection.execute("COMMIT")
        seconds = time.perf_counter() - started
    finally:
        connection.close()
    return commits / seconds
