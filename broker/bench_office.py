"""A throwaway office for `antrean bench`: a generated site, its own Mosquitto on a
free loopback port, the engine in a child process, and latency statistics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.client import Handler, OfficeClient, new_command_id
from broker.contract import Command, CommandKind, Role
from broker.errors import AntreanError
from broker.mosquitto import MosquittoProcess, start_mosquitto
from broker.officers import add_officer
from broker.service import DATABASE_NAME
from broker.site import Site, parse_site
from broker.store import Store

_LOGGER = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
SITE_ID = "bench"
SITE_FILE = "site.json"
CHILD_READY_TIMEOUT_S = 30.0
CHILD_STOP_TIMEOUT_S = 15.0
CONNECT_TIMEOUT_S = 20.0
# The four services of the bundled Lebong site, with the largest daily quota a
# site file accepts, so a long run does not run out of numbers.
SERVICES = (("A", 15.0), ("B", 12.0), ("C", 4.0), ("D", 6.0))
DAILY_QUOTA = 999
OFFICER_PIN = "2468"
# Every eighth ticket of a load goes to the priority lane.
PRIORITY_EVERY = 8


class BenchError(AntreanError):
    """A benchmark could not run: a child process, the broker or a client failed."""


@dataclass(frozen=True)
class LatencyStats:
    """Latency samples in milliseconds: their count and nearest-rank percentiles."""

    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


def latency_stats(seconds: Sequence[float]) -> LatencyStats:
    """Summarise latency samples given in seconds; raise BenchError without any."""
    if not seconds:
        raise BenchError(
            "no latency sample was taken; rerun with -v to see which requests failed"
        )
    ordered = sorted(seconds)

    def rank(quantile: float) -> float:
        index = min(len(ordered) - 1, max(0, math.ceil(quantile * len(ordered)) - 1))
        return ordered[index] * 1000

    return LatencyStats(
        count=len(ordered),
        p50_ms=rank(0.50),
        p99_ms=rank(0.99),
        max_ms=ordered[-1] * 1000,
        mean_ms=sum(ordered) / len(ordered) * 1000,
    )


def emit(event: str, **fields: Any) -> None:
    """Write one JSON line for the parent of a bench child, and flush it at once."""
    print(json.dumps({"event": event, **fields}), flush=True)


def free_port() -> int:
    """Return a TCP port on the loopback address that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def office_site_data(counters: int, kiosks: int, port: int) -> dict[str, Any]:
    """Return the parsed TOML of a site with this many counters and kiosks.

    Every counter takes the four Lebong services in both lanes. The broker
    listens on the loopback address only.
    """
    return {
        "site": {"id": SITE_ID, "name": "Kantor Uji Beban", "timezone": "Asia/Jakarta"},
        "hours": {"open": "08:00", "close": "16:00"},
        "broker": {"host": LOOPBACK, "port": port},
        "services": [
            {
                "code": code,
                "name_id": f"Layanan {code}",
                "name_en": f"Service {code}",
                "minutes": minutes,
                "daily_quota": DAILY_QUOTA,
            }
            for code, minutes in SERVICES
        ],
        "priority": [{"key": "lansia", "name_id": "Lansia", "name_en": "Elderly"}],
        "counters": [
            {
                "number": number,
                "name": f"Loket {number}",
                "services": [code for code, _ in SERVICES],
                "lanes": ["priority", "normal"],
            }
            for number in range(1, counters + 1)
        ],
        "kiosks": [{"id": f"kiosk-{index}"} for index in range(1, kiosks + 1)],
        "displays": [{"id": "hall", "layout": "hall"}],
    }


def ticket_command(site: Site, index: int) -> Command:
    """Return the index-th ticket request of a load: the site's services in turn,
    every PRIORITY_EVERY-th in the priority lane of the site's first category.
    """
    service = site.services[index % len(site.services)].code
    category = None
    if index % PRIORITY_EVERY == 0 and site.priority_categories:
        category = site.priority_categories[0].key
    return Command(
        CommandKind.ISSUE_TICKET,
        new_command_id("bench"),
        service=service,
        category=category,
    )


def write_site_data(data: dict[str, Any], directory: Path) -> Path:
    """Write parsed site data as JSON for a child process; return the file's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SITE_FILE
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def read_site_data(path: Path) -> Site:
    """Validate site data written by write_site_data into a Site."""
    return parse_site(json.loads(path.read_text(encoding="utf-8")), path)


class SpeededClock:
    """A clock that starts at `start` when time.monotonic() reads `origin` and runs
    `speed` times faster than real time.

    CLOCK_MONOTONIC is shared by every process on a Linux machine, so children
    given the same start, origin and speed keep the same simulated time.
    """

    def __init__(self, start: datetime, origin: float, speed: float) -> None:
        self.start = start
        self.origin = origin
        self.speed = speed

    def __call__(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed())

    def elapsed(self) -> float:
        """Return the simulated seconds since the start."""
        return (time.monotonic() - self.origin) * self.speed

    def arguments(self) -> list[str]:
        """Return the command-line options that rebuild this clock in a child."""
        return [
            "--start",
            self.start.isoformat(),
            "--origin",
            repr(self.origin),
            "--speed",
            repr(self.speed),
        ]


@dataclass(frozen=True)
class ProcessMemory:
    """A process's memory from /proc/<pid>/status, in KiB.

    `rss` is VmRSS: `anonymous` (heap and stacks) plus `file` (mapped files
    such as shared libraries, shared with other processes) plus shared memory.
    """

    rss: int
    anonymous: int
    file: int
    peak: int


def process_memory(pid: int) -> ProcessMemory:
    """Read the memory of a process from /proc/<pid>/status (Linux only)."""
    path = Path(f"/proc/{pid}/status")
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except OSError as exc:
        raise BenchError(f"cannot read {path}: {exc}; did the process exit?") from exc
    fields = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields[name] = value
    try:
        return ProcessMemory(
            rss=int(fields["VmRSS"].split()[0]),
            anonymous=int(fields["RssAnon"].split()[0]),
            file=int(fields["RssFile"].split()[0]),
            peak=int(fields["VmHWM"].split()[0]),
        )
    except (KeyError, IndexError, ValueError) as exc:
        raise BenchError(f"{path} lacks the field {exc}; this needs Linux") from exc


def child_environment(work_dir: Path) -> dict[str, str]:
    """Return the environment of a child: offscreen Kivy, scratch files in work_dir."""
    environment = dict(os.environ)
    environment.update(
        TMPDIR=str(work_dir),
        KIVY_HOME=str(work_dir / "kivy"),
        KIVY_NO_ARGS="1",
        KIVY_NO_CONSOLELOG="1",
        SDL_VIDEODRIVER="offscreen",
        SDL_AUDIODRIVER="dummy",
    )
    return environment


class Child:
    """A Python child process that reports JSON lines on stdout and stops when its
    stdin closes. Its stderr goes to a log file named after it.
    """

    def __init__(self, name: str, arguments: list[str], work_dir: Path) -> None:
        self.name = name
        self.log_path = work_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *arguments],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                env=child_environment(work_dir),
            )
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.history: list[dict[str, Any]] = []
        self._reader = threading.Thread(
            target=self._read, name=f"bench-{name}-reader", daemon=True
        )
        self._reader.start()
        _LOGGER.info("Started %s (pid %d)", name, self.process.pid)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.process.pid

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                _LOGGER.warning("%s wrote a line that is not JSON: %r", self.name, raw)
                continue
            self.history.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        """Wait for the child's next line of this event and return it.

        Lines of other events are skipped. Raises BenchError, with the tail of
        the child's log, when it exits or the timeout passes first.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self.lines.get(timeout=max(remaining, 0.001))
            except queue.Empty:
                raise self._failure(
                    f"sent no {event!r} within {timeout:.0f} s"
                ) from None
            if line is None:
                self.lines.put(None)
                raise self._failure(f"exited before it sent {event!r}")
            if line.get("event") == event:
                return line

    def events(self, event: str) -> list[dict[str, Any]]:
        """Return every line of an event the child has sent so far, in order."""
        return [line for line in list(self.history) if line.get("event") == event]

    def stop(self) -> None:
        """Close the child's stdin, wait for it to exit, and kill it after a timeout."""
        if self.process.stdin is not None and not self.process.stdin.closed:
            try:
                self.process.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.process.wait(timeout=CHILD_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _LOGGER.warning(
                "%s (pid %d) did not stop in %.0f s; killing it",
                self.name,
                self.pid,
                CHILD_STOP_TIMEOUT_S,
            )
            self.process.kill()
            self.process.wait()

    def _failure(self, what: str) -> BenchError:
        tail = self.log_path.read_text(errors="replace").strip().splitlines()[-5:]
        return BenchError(
            f"{self.name} (pid {self.pid}) {what}: {' | '.join(tail) or 'no log'}. "
            f"See {self.log_path}."
        )


def officer_of(counter: int) -> str:
    """Return the id of the bench officer who works at a counter."""
    return f"petugas{counter}"


class BenchOffice:
    """Mosquitto and an engine child for one generated site, and its device clients.

    Everything lives under `directory`: the broker's files, the credentials
    of every device, the database and the children's logs.
    """

    def __init__(
        self,
        data: dict[str, Any],
        directory: Path,
        clock: SpeededClock | None = None,
    ) -> None:
        self.directory = directory
        self.data_dir = directory / "data"
        self.site_path = write_site_data(data, directory)
        self.site = read_site_data(self.site_path)
        self.broker: MosquittoProcess | None = None
        self.engine: Child | None = None
        self.clients: list[OfficeClient] = []
        self._clock = clock

    def __enter__(self) -> BenchOffice:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start Mosquitto, then the engine, and wait until the engine is connected.

        Each counter gets an officer of its own in the database first.
        """
        self.broker = start_mosquitto(self.site, self.data_dir)
        self._add_officers()
        arguments = [
            "broker.bench_engine",
            "serve",
            "--site-json",
            str(self.site_path),
            "--data-dir",
            str(self.data_dir),
        ]
        if self._clock is not None:
            arguments += self._clock.arguments()
        self.engine = Child("engine", arguments, self.directory)
        self.engine.expect("ready", CHILD_READY_TIMEOUT_S)

    @property
    def engine_pid(self) -> int:
        """The process id of the engine child; BenchError before start()."""
        if self.engine is None:
            raise BenchError("the bench office is not running; start it first")
        return self.engine.pid

    def connect(
        self,
        devices: Sequence[tuple[Role, str]],
        state_handler: Handler | None = None,
        **callbacks: Any,
    ) -> list[OfficeClient]:
        """Connect one client per device with that device's own login, all at once.

        `state_handler` gets each raw state message, as an alternative to an
        on_state callback; without either a client takes no state.
        """
        started = []
        for role, device in devices:
            client = OfficeClient(
                self.site, role, device, data_dir=self.data_dir, **callbacks
            )
            if state_handler is not None:
                client.subscribe(client.topics.state, state_handler)
            started.append(client)
        self.clients.extend(started)
        for client in started:
            client.start()
        for client in started:
            if not client.wait_connected(CONNECT_TIMEOUT_S):
                reason = client.refusal or "no answer"
                raise BenchError(
                    f"{client.client_id} did not connect to the bench broker at "
                    f"{LOOPBACK}:{self.site.broker.port} ({reason})"
                )
        return started

    def log_in(self, counters: Sequence[OfficeClient]) -> None:
        """Log each counter's officer in through its counter client, all at once."""
        futures = [
            client.send(
                Command(
                    CommandKind.LOGIN,
                    new_command_id("bench-login"),
                    counter=int(client.device),
                    officer=officer_of(int(client.device)),
                    pin=OFFICER_PIN,
                ),
                timeout=CONNECT_TIMEOUT_S,
            )
            for client in counters
        ]
        for client, future in zip(counters, futures, strict=True):
            reply = future.result(timeout=CONNECT_TIMEOUT_S + 1)
            if not reply.ok:
                raise BenchError(
                    f"login at counter {client.device} failed: {reply.message}"
                )

    def _add_officers(self) -> None:
        store = Store(self.data_dir / DATABASE_NAME)
        try:
            for counter in self.site.counters:
                add_officer(
                    store,
                    officer_of(counter.number),
                    f"Petugas {counter.number}",
                    OFFICER_PIN,
                    datetime.now(UTC),
                )
        finally:
            store.close()

    def close(self) -> None:
        """Stop the clients, the engine and the broker, in that order."""
        for client in self.clients:
            client.stop()
        self.clients.clear()
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.broker is not None:
            self.broker.stop()
            self.broker = None
