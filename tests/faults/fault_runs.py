"""The fault runs behind docs/reliability.md: engine kills, broker restarts and
hostile payload bursts, each returning a summary of what was tried and what held.
"""

from __future__ import annotations

import logging
import random
import signal
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import contract
from broker.contract import ErrorCode, OfficeState, Role, Topics
from broker.security import load_credentials, username_for
from broker.site import Site
from tests.faults.fault_office import (
    CONNECT_TIMEOUT_S,
    FaultOffice,
    Traffic,
    check_database,
    issued_tickets,
    missing_commands,
)
from tests.faults.hostile_payloads import invalid_payloads

_LOGGER = logging.getLogger(__name__)

Progress = Callable[[str], None]
REPLY_TIMEOUT_S = 30.0


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class TrafficFigures:
    """What the clients sent and got during a run."""

    commands: int
    answered: int
    # Commands the client library published again after RESEND_AFTER_S without a reply.
    resent: int
    # Commands the sender sent again after the client gave up on them: not
    # connected at the time, or no reply within the client's 5 s timeout.
    retried: int
    tickets: int
    problems: tuple[str, ...]


def _traffic_figures(office: FaultOffice, traffic: Traffic) -> TrafficFigures:
    deliveries = traffic.stop()
    return TrafficFigures(
        commands=len(deliveries),
        answered=sum(d.reply is not None for d in deliveries),
        resent=traffic.resends,
        retried=sum(d.attempts > 1 for d in deliveries),
        tickets=issued_tickets(office),
        problems=tuple(check_database(office, deliveries)),
    )


# Engine kills ------------------------------------------------------------------


@dataclass(frozen=True)
class KillSummary:
    """The result of killing the engine with SIGKILL during traffic, many times."""

    kills: int
    seed: int
    seconds: float
    traffic: TrafficFigures
    # Commands replied to before a kill that the database lacked after it.
    lost_after_kill: int
    restart_median_s: float
    restart_max_s: float


def run_kills(
    directory: Path, kills: int, seed: int, progress: Progress = _quiet
) -> KillSummary:
    """Kill and restart the engine `kills` times at random moments during traffic."""
    rng = random.Random(seed)
    office = FaultOffice(directory)
    started = time.monotonic()
    restarts: list[float] = []
    lost = 0
    office.start()
    traffic = Traffic(office, seed)
    try:
        traffic.start()
        for number in range(1, kills + 1):
            time.sleep(rng.uniform(0.05, 0.8))
            acknowledged = traffic.answered()
            killed_at = time.monotonic()
            office.kill_engine()
            seen = office.start_engine()
            if not office.wait_engine_online(seen):
                raise RuntimeError(
                    f"the engine did not restart; see {office.engine_log}"
                )
            restarts.append(time.monotonic() - killed_at)
            lost += len(missing_commands(office, acknowledged))
            progress(
                f"kill {number}/{kills}: back in {restarts[-1]:.2f} s, {lost} lost"
            )
        figures = _traffic_figures(office, traffic)
    finally:
        traffic.stop()
        office.close()
    return KillSummary(
        kills=kills,
        seed=seed,
        seconds=time.monotonic() - started,
        traffic=figures,
        lost_after_kill=lost,
        restart_median_s=_median(restarts),
        restart_max_s=max(restarts, default=0.0),
    )


# Broker restarts ---------------------------------------------------------------


@dataclass(frozen=True)
class RestartSummary:
    """The result of stopping and starting Mosquitto during traffic, many times."""

    restarts: int
    seed: int
    how: str
    seconds: float
    traffic: TrafficFigures
    clients: int
    # From the broker listening again to the last client connected and subscribed.
    reconnect_median_s: float
    reconnect_max_s: float
    # From the broker listening again to the display's first state stamped after
    # that moment, which the engine publishes once it is connected again.
    engine_back_median_s: float
    engine_back_max_s: float
    # Restarts after which the display got no fresh office state within 30 s.
    stale_after_restart: int


class _StateWatch:
    """Notes when each office state reached the display and when it was stamped."""

    def __init__(self) -> None:
        self.states: list[tuple[float, datetime]] = []
        self.lock = threading.Lock()

    def note(self, state: OfficeState) -> None:
        with self.lock:
            self.states.append((time.monotonic(), state.at))

    def first_after(self, stamp: datetime) -> float | None:
        """Return when the first state stamped after `stamp` arrived, or None."""
        with self.lock:
            return next((got for got, at in self.states if at > stamp), None)


def run_broker_restarts(
    directory: Path,
    restarts: int,
    seed: int,
    how: signal.Signals = signal.SIGTERM,
    progress: Progress = _quiet,
) -> RestartSummary:
    """Stop Mosquitto (SIGTERM or SIGKILL), leave it down briefly, start it again."""
    rng = random.Random(seed)
    office = FaultOffice(directory)
    started = time.monotonic()
    reconnects: list[float] = []
    engine_backs: list[float] = []
    office.start()
    traffic = Traffic(office, seed)
    watch = _StateWatch()
    try:
        traffic.start()
        office.client(
            Role.DISPLAY,
            "hall",
            on_state=watch.note,
            on_link=traffic.links.listener("display hall"),
        )
        names = [*traffic.names, "display hall"]
        for number in range(1, restarts + 1):
            time.sleep(rng.uniform(0.2, 1.0))
            reconnect, engine_back = _restart_broker(
                office, names, traffic, watch, how, rng
            )
            reconnects.append(reconnect)
            if engine_back is not None:
                engine_backs.append(engine_back)
            progress(f"restart {number}/{restarts}: clients back in {reconnect:.2f} s")
        figures = _traffic_figures(office, traffic)
    finally:
        traffic.stop()
        office.close()

    return RestartSummary(
        restarts=restarts,
        seed=seed,
        how=how.name,
        seconds=time.monotonic() - started,
        traffic=figures,
        clients=len(names),
        reconnect_median_s=_median(reconnects),
        reconnect_max_s=max(reconnects, default=0.0),
        engine_back_median_s=_median(engine_backs),
        engine_back_max_s=max(engine_backs, default=0.0),
        stale_after_restart=restarts - len(engine_backs),
    )


def _restart_broker(
    office: FaultOffice,
    names: list[str],
    traffic: Traffic,
    watch: _StateWatch,
    how: signal.Signals,
    rng: random.Random,
) -> tuple[float, float | None]:
    """Restart Mosquitto once; return when every client and the engine were back."""
    office.stop_broker(how)
    time.sleep(rng.uniform(0.5, 2.0))
    office.start_broker()
    up_at = time.monotonic()
    up_stamp = datetime.now(UTC)

    back = _wait_for(partial(traffic.links.all_connected_after, names, up_at))
    if back is None:
        raise RuntimeError("a client did not reconnect to the restarted broker")
    fresh = _wait_for(partial(watch.first_after, up_stamp))
    return back - up_at, None if fresh is None else fresh - up_at


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _wait_for(
    probe: Callable[[], float | bool | None], timeout: float = 30.0
) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return float(value)
        time.sleep(0.02)
    return None


# Hostile payloads --------------------------------------------------------------


@dataclass(frozen=True)
class BurstSummary:
    """The result of publishing invalid payloads on command topics."""

    payloads: int
    seed: int
    invalid_replies: int
    other_replies: int
    unanswered: int
    # Tables whose rows differ after the burst; an empty tuple means nothing changed.
    changed_tables: tuple[str, ...]
    seconds: float
    # Payloads sent before waiting for replies; 0 when all went at once.
    wave: int
    errors: dict[str, int] = field(default_factory=dict)


class RawSender:
    """A plain paho client with a device's login, to publish any payload at all."""

    def __init__(self, site: Site, data_dir: Path, role: Role, device: str) -> None:
        self.topics = Topics(site.id)
        self.command_topic = self.topics.command(role, device)
        username = username_for(role, device)
        client_id = f"{role.value}-{device}-raw"
        self.reply_topic = self.topics.reply(username, client_id)
        self.replies: dict[bytes, contract.Reply] = {}
        self.lock = threading.Condition()
        self.disconnects = 0

        credentials = load_credentials(data_dir, role, device)
        if credentials is None:
            raise RuntimeError(f"no credentials for {username} in {data_dir}")
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(credentials.username, credentials.password)
        self.client.on_message = self._on_message
        self.client.on_disconnect = self._on_disconnect
        self._connect(site, username)

    def _connect(self, site: Site, username: str) -> None:
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_: subscribed.set()
        self.client.connect(site.broker.host, site.broker.port)
        self.client.loop_start()
        self.client.subscribe(self.reply_topic, qos=1)
        if not subscribed.wait(CONNECT_TIMEOUT_S):
            raise RuntimeError(f"{username} could not subscribe to its replies")

    def send(self, payload: bytes, correlation: bytes) -> int:
        """Publish a payload as a command with a reply topic; return its message id."""
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = self.reply_topic
        properties.CorrelationData = correlation
        info = self.client.publish(
            self.command_topic, payload, qos=1, properties=properties
        )
        return info.mid

    def wait_replies(self, count: int, timeout: float = REPLY_TIMEOUT_S) -> bool:
        """Block until `count` replies have arrived or the timeout passes."""
        with self.lock:
            return self.lock.wait_for(lambda: len(self.replies) >= count, timeout)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(
        self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage
    ) -> None:
        correlation = getattr(message.properties, "CorrelationData", None) or b""
        with self.lock:
            self.replies[correlation] = contract.decode_reply(message.payload)
            self.lock.notify_all()

    def _on_disconnect(self, *args: object) -> None:
        with self.lock:
            self.disconnects += 1
            self.lock.notify_all()


def table_rows(
    read: Callable[[str], list[tuple[object, ...]]],
) -> dict[str, list[tuple[object, ...]]]:
    """Return every row of every table, for comparing a database before and after."""
    names = [
        row[0]
        for row in read(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
        )
    ]
    return {name: read(f'SELECT * FROM "{name}" ORDER BY rowid') for name in names}


def run_payload_burst(
    site: Site,
    data_dir: Path,
    read: Callable[[str], list[tuple[object, ...]]],
    payloads: int,
    seed: int,
    wave: int = 0,
) -> BurstSummary:
    """Publish `payloads` invalid payloads, alternating a kiosk and an operator login.

    With `wave` above 0 they go out in waves of that many, each after the
    replies to the one before; with 0, all at once.
    """
    rng = random.Random(seed)
    started = time.monotonic()
    before = table_rows(read)
    senders = [
        RawSender(site, data_dir, Role.KIOSK, "kiosk-1"),
        RawSender(site, data_dir, Role.OPERATOR, "fuzz"),
    ]
    try:
        for number, payload in enumerate(invalid_payloads(rng, payloads), start=1):
            senders[number % 2].send(payload, f"burst-{number}".encode())
            if number == payloads or (wave and number % wave == 0):
                # Even numbers went to the kiosk, odd ones to the operator.
                expected = (number // 2, (number + 1) // 2)
                for sender, count in zip(senders, expected, strict=True):
                    sender.wait_replies(count)
    finally:
        for sender in senders:
            sender.close()
    replies = [reply for sender in senders for reply in sender.replies.values()]
    after = table_rows(read)
    errors: dict[str, int] = {}
    for reply in replies:
        key = reply.message.split(":")[0][:60]
        errors[key] = errors.get(key, 0) + 1
    return BurstSummary(
        payloads=payloads,
        seed=seed,
        invalid_replies=sum(r.error is ErrorCode.INVALID for r in replies),
        other_replies=sum(r.error is not ErrorCode.INVALID for r in replies),
        unanswered=payloads - len(replies),
        changed_tables=tuple(name for name in after if after[name] != before.get(name)),
        seconds=time.monotonic() - started,
        wave=wave,
        errors=errors,
    )
