"""An office for fault runs: Mosquitto started here, the engine as a child process
(`python -m broker up --headless`), and client threads sending mixed commands.

The engine runs in its own process, so it can be killed with SIGKILL at any
moment. The broker runs from this process, so it can be stopped and started
on the same port and data directory while the engine and the clients go on.
"""

from __future__ import annotations

import logging
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from broker.client import Link, OfficeClient, OfficeUnavailable
from broker.contract import Command, DeviceStatus, ErrorCode, Reply, Role, decode_reply
from broker.mosquitto import MosquittoProcess, start_mosquitto
from broker.service import DATABASE_NAME
from broker.site import Site, bundled_site_path, load_site
from tests.faults.hostile_payloads import COUNTERS, counter_action, ticket_request

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0
ENGINE_START_TIMEOUT_S = 30.0
# A command is sent again with its id until it gets a reply or this long passes.
COMMAND_DEADLINE_S = 60.0
# Every service's daily quota in the fault site, the most a site file allows,
# so long runs keep issuing tickets instead of hitting the quota.
FAULT_QUOTA = 999
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_fault_site(directory: Path, port: int) -> Path:
    """Write the bundled site with its broker on a loopback port and large quotas."""
    text = bundled_site_path().read_text(encoding="utf-8")
    text = re.sub(r"(?m)^host = .*$", 'host = "127.0.0.1"', text, count=1)
    text = re.sub(r"(?m)^port = \d+$", f"port = {port}", text, count=1)
    text = re.sub(r"(?m)^daily_quota = \d+$", f"daily_quota = {FAULT_QUOTA}", text)
    path = directory / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


class FaultOffice:
    """A broker and an engine process on one data directory, to kill and restart."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.data_dir = directory / "data"
        self.site_file = write_fault_site(directory, free_port())
        self.site: Site = load_site(self.site_file)
        self.database = self.data_dir / DATABASE_NAME
        self.engine_log = directory / "engine.log"
        self.broker: MosquittoProcess | None = None
        self.engine: subprocess.Popen[bytes] | None = None
        self._watch: OfficeClient | None = None
        self._online = threading.Condition()
        self._online_count = 0
        self._clients: list[OfficeClient] = []

    # Broker -----------------------------------------------------------------

    def start_broker(self) -> None:
        """Start Mosquitto on the site's port; call from the main thread.

        The broker is tied to the thread that starts it (it stops when that
        thread ends), so a worker thread must not start it.
        """
        self.broker = start_mosquitto(self.site, self.data_dir)

    def stop_broker(self, how: signal.Signals = signal.SIGTERM) -> None:
        """Stop Mosquitto; SIGTERM saves its persistence file, SIGKILL does not."""
        if self.broker is None:
            return
        if how is signal.SIGTERM:
            self.broker.stop()
        else:
            self.broker.process.send_signal(how)
            self.broker.process.wait()
        self.broker = None

    # Engine -----------------------------------------------------------------

    def start_engine(self, prefix: tuple[str, ...] = ()) -> int:
        """Start the engine process; return the online count to wait past.

        `prefix` goes before the Python command, for example a setpriv call
        that runs the engine with fewer privileges.
        """
        with self._online:
            seen = self._online_count
        command = [
            *prefix,
            sys.executable,
            "-m",
            "broker",
            "up",
            "--headless",
            "--site",
            str(self.site_file),
            "--data-dir",
            str(self.data_dir),
        ]
        with open(self.engine_log, "ab") as log:
            self.engine = subprocess.Popen(
                command,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        return seen

    def wait_engine_online(
        self, seen: int, timeout: float = ENGINE_START_TIMEOUT_S
    ) -> bool:
        """Block until the engine announces itself online after `seen` announcements."""
        with self._online:
            return self._online.wait_for(lambda: self._online_count > seen, timeout)

    def kill_engine(self) -> None:
        """Kill the engine process with SIGKILL and reap it."""
        if self.engine is None:
            return
        self.engine.send_signal(signal.SIGKILL)
        self.engine.wait()
        self.engine = None

    def stop_engine(self) -> None:
        """Stop the engine as Ctrl+C would, killing it if it hangs."""
        if self.engine is None:
            return
        self.engine.send_signal(signal.SIGINT)
        try:
            self.engine.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _LOGGER.warning(
                "Engine (pid %d) ignored SIGINT; killing it", self.engine.pid
            )
            self.kill_engine()
        self.engine = None

    @property
    def engine_running(self) -> bool:
        """Whether the engine process is alive."""
        return self.engine is not None and self.engine.poll() is None

    # Whole office -----------------------------------------------------------

    def start(self) -> None:
        """Start the broker, a presence watcher and the engine; wait for the engine."""
        self.start_broker()
        self.watch_engine()
        seen = self.start_engine()
        if not self.wait_engine_online(seen):
            raise RuntimeError(f"the engine did not come online; see {self.engine_log}")

    def watch_engine(self) -> None:
        """Connect the client whose presence messages wait_engine_online counts."""
        if self._watch is None:
            self._watch = self.client(
                Role.OPERATOR, "fault-watch", on_status=self._note_status
            )

    def close(self) -> None:
        """Stop every client, the engine and the broker."""
        for client in self._clients:
            client.stop()
        self._clients.clear()
        self.stop_engine()
        self.stop_broker()

    def client(self, role: Role, device: str, **callbacks: Any) -> OfficeClient:
        """Connect a client with the device's own login; stopped by close()."""
        client = OfficeClient(
            self.site, role, device, data_dir=self.data_dir, **callbacks
        )
        client.start()
        if not client.wait_connected(CONNECT_TIMEOUT_S):
            client.stop()
            raise RuntimeError(f"{role.value} {device} did not connect to the broker")
        self._clients.append(client)
        return client

    def _note_status(self, status: DeviceStatus) -> None:
        if status.role is Role.ENGINE and status.online:
            with self._online:
                self._online_count += 1
                self._online.notify_all()

    # Database ---------------------------------------------------------------

    def read(
        self, query: str, parameters: tuple[Any, ...] = ()
    ) -> list[tuple[Any, ...]]:
        """Run a query on a read-only connection to the office database."""
        connection = sqlite3.connect(
            f"file:{self.database}?mode=ro", uri=True, timeout=10
        )
        try:
            return connection.execute(query, parameters).fetchall()
        finally:
            connection.close()


@dataclass
class Delivery:
    """One command, the reply it finally got, and how often it was sent."""

    command: Command
    sender: str
    attempts: int = 0
    reply: Reply | None = None
    replied_at: float | None = None


@dataclass
class LinkLog:
    """When each client last became connected, on the monotonic clock."""

    connected_at: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def listener(self, name: str) -> Callable[[Link], None]:
        """Return an on_link callback that records one client's connections."""

        def record(link: Link) -> None:
            if link is Link.CONNECTED:
                with self.lock:
                    self.connected_at[name] = time.monotonic()

        return record

    def all_connected_after(self, names: list[str], moment: float) -> float | None:
        """Return when the last of `names` connected after `moment`, or None."""
        with self.lock:
            times = [self.connected_at.get(name, 0.0) for name in names]
        if all(at > moment for at in times):
            return max(times)
        return None


class Traffic:
    """Client threads that send mixed commands, each sent again until it gets a reply.

    Two kiosks issue tickets; four operator clients act for counters 1 to 4
    (operators need no officer login, so the run tests delivery, not logins).
    """

    def __init__(self, office: FaultOffice, seed: int, pause_s: float = 0.05) -> None:
        self.office = office
        self.seed = seed
        self.pause_s = pause_s
        self.links = LinkLog()
        self.deliveries: list[Delivery] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.names: list[str] = []
        self.clients: list[OfficeClient] = []

    def start(self) -> None:
        """Connect every client and start its thread."""
        senders = [(Role.KIOSK, "kiosk-1", None), (Role.KIOSK, "kiosk-2", None)]
        senders += [(Role.OPERATOR, f"counter-{n}", n) for n in COUNTERS]
        for index, (role, device, counter) in enumerate(senders):
            name = f"{role.value} {device}"
            client = self.office.client(role, device, on_link=self.links.listener(name))
            self.clients.append(client)
            self.links.connected_at[name] = time.monotonic()
            rng = random.Random(self.seed * 100 + index)
            thread = threading.Thread(
                target=self._run,
                args=(client, name, counter, rng),
                name=name,
                daemon=True,
            )
            self.names.append(name)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()

    def stop(self) -> list[Delivery]:
        """Stop sending; each thread finishes the command it is delivering."""
        self._stop.set()
        for thread in self._threads:
            thread.join(COMMAND_DEADLINE_S + 10)
        return list(self.deliveries)

    @property
    def resends(self) -> int:
        """Commands the clients published again for want of a reply."""
        return sum(client.resends for client in self.clients)

    def answered(self) -> list[Delivery]:
        """Return the deliveries that got a reply so far."""
        with self._lock:
            return [d for d in self.deliveries if d.reply is not None]

    def _run(
        self, client: OfficeClient, name: str, counter: int | None, rng: random.Random
    ) -> None:
        number = 0
        while not self._stop.is_set():
            number += 1
            command_id = f"{name.replace(' ', '-')}-{self.seed}-{number}"
            if counter is None:
                command = ticket_request(rng, command_id)
            else:
                command = counter_action(rng, command_id, counter)
            delivery = Delivery(command, name)
            with self._lock:
                self.deliveries.append(delivery)
            deliver(client, delivery)
            time.sleep(rng.uniform(0, 2 * self.pause_s))


def deliver(client: OfficeClient, delivery: Delivery) -> None:
    """Send a command until it gets a reply, with the same id each time."""
    deadline = time.monotonic() + COMMAND_DEADLINE_S
    while time.monotonic() < deadline:
        delivery.attempts += 1
        try:
            delivery.reply = client.request(delivery.command)
        except OfficeUnavailable:
            time.sleep(0.2)
            continue
        delivery.replied_at = time.monotonic()
        return
    _LOGGER.warning(
        "%s got no reply in %.0f s", delivery.command.command_id, COMMAND_DEADLINE_S
    )


def recorded(delivery: Delivery) -> bool:
    """Tell whether an answered command must be in the database.

    Replies about a failed database or an internal error are sent without
    recording the command; every other reply follows its commit.
    """
    reply = delivery.reply
    return reply is not None and reply.error not in (
        ErrorCode.UNAVAILABLE,
        ErrorCode.INVALID,
    )


def missing_commands(office: FaultOffice, deliveries: list[Delivery]) -> list[str]:
    """Return the ids of answered commands that the database does not hold."""
    expected = {d.command.command_id for d in deliveries if recorded(d)}
    stored = {row[0] for row in office.read("SELECT command_id FROM commands")}
    return sorted(expected - stored)


def check_database(office: FaultOffice, deliveries: list[Delivery]) -> list[str]:
    """Compare the database with every reply the clients got; return the problems."""
    problems = [
        f"answered command {c} is not stored"
        for c in missing_commands(office, deliveries)
    ]
    stored = dict(office.read("SELECT command_id, reply FROM commands"))
    for delivery in deliveries:
        problems += _reply_problems(delivery, stored)
    problems += _numbering_problems(office)
    duplicated = office.read(
        "SELECT command_id, kind, COUNT(*) FROM events WHERE kind IN ('issue', 'call')"
        " GROUP BY command_id, kind HAVING COUNT(*) > 1"
    )
    problems += [f"command {c} made {n} {kind} events" for c, kind, n in duplicated]
    tickets = {row[0] for row in office.read("SELECT id FROM tickets")}
    for delivery in deliveries:
        reply = delivery.reply
        issued = reply is not None and reply.ok and reply.ticket is not None
        if issued and reply.ticket.id not in tickets:
            problems.append(f"ticket {reply.ticket.id} of {reply.command_id} is lost")
    return problems


def _reply_problems(delivery: Delivery, stored: dict[str, str]) -> list[str]:
    reply = delivery.reply
    if reply is None or not recorded(delivery):
        return []
    text = stored.get(delivery.command.command_id)
    if text is None:
        return []
    kept = decode_reply(text.encode())
    problems = []
    if kept.ok != reply.ok:
        problems.append(
            f"{reply.command_id}: client saw ok={reply.ok}, store has {kept.ok}"
        )
    got = reply.ticket.id if reply.ticket else None
    has = kept.ticket.id if kept.ticket else None
    if got != has:
        problems.append(f"{reply.command_id}: client saw ticket {got}, store has {has}")
    return problems


def _numbering_problems(office: FaultOffice) -> list[str]:
    rows = office.read(
        "SELECT day, service, number, COUNT(*) FROM tickets WHERE visit = 0"
        " GROUP BY day, service, number ORDER BY day, service, number"
    )
    problems = [f"{d} {s}-{n:03d} issued {c} times" for d, s, n, c in rows if c > 1]
    numbers: dict[tuple[str, str], list[int]] = {}
    for day, service, number, _ in rows:
        numbers.setdefault((day, service), []).append(number)
    for (day, service), issued in numbers.items():
        if issued != list(range(1, len(issued) + 1)):
            problems.append(f"{day} {service}: numbers have gaps: {issued[:5]}…")
    return problems


def issued_tickets(office: FaultOffice) -> int:
    """Return how many first visits the database holds."""
    return int(office.read("SELECT COUNT(*) FROM tickets WHERE visit = 0")[0][0])
