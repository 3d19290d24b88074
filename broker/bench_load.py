"""Loads of `antrean bench` on a running bench office: the devices, paced calls
timed at the display, and the broker's own round trip as their floor.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from broker import contract
from broker.bench_office import (
    LOOPBACK,
    BenchError,
    BenchOffice,
    LatencyStats,
    ticket_command,
)
from broker.client import OfficeClient, new_command_id
from broker.contract import (
    CallEvent,
    Command,
    CommandKind,
    ContractError,
    ErrorCode,
    Reply,
    Role,
)
from broker.security import load_credentials
from broker.site import Site

_LOGGER = logging.getLogger(__name__)

FLOOR_TOPIC = "event/bench-floor"
# A call event of the bench site encodes to 400 to 500 bytes.
FLOOR_PAYLOAD_BYTES = 450
FLOOR_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class StateSizes:
    """Sizes of the states the display got, and how many it could not decode."""

    count: int
    max_bytes: int
    rejected: int


class StateWatch:
    """The display's state handler: decodes each state as OfficeClient does, and
    counts its size and the states the contract rejects (too large, malformed).
    """

    def __init__(self) -> None:
        self.count = 0
        self.max_bytes = 0
        self.rejected = 0
        self._lock = threading.Lock()

    def handle(self, message: mqtt.MQTTMessage) -> None:
        """Decode one state message and count it."""
        if not message.payload:
            return
        try:
            contract.decode_state(message.payload)
            rejected = 0
        except ContractError as exc:
            rejected = 1
            if not self.rejected:
                _LOGGER.warning("The display rejected a state: %s", exc)
        with self._lock:
            self.count += 1
            self.max_bytes = max(self.max_bytes, len(message.payload))
            self.rejected += rejected

    def sizes(self) -> StateSizes:
        """Return the counts so far."""
        with self._lock:
            return StateSizes(self.count, self.max_bytes, self.rejected)


@dataclass(frozen=True)
class Devices:
    """The connected clients of a bench office, and the display's state counts."""

    counters: list[OfficeClient]
    kiosks: list[OfficeClient]
    display: OfficeClient
    states: StateWatch


class Pacer:
    """A thread that runs short jobs at given delays, in order of their due times."""

    def __init__(self) -> None:
        self._jobs: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name="bench-pacer", daemon=True
        )
        self._thread.start()

    def after(self, delay: float, job: Callable[[], None]) -> None:
        """Run `job` on the pacer thread `delay` seconds from now."""
        with self._wake:
            due = time.monotonic() + delay
            heapq.heappush(self._jobs, (due, next(self._order), job))
            self._wake.notify()

    def stop(self) -> None:
        """Drop the jobs not yet run and end the thread."""
        with self._wake:
            self._stopped = True
            self._jobs.clear()
            self._wake.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._stopped and (
                    not self._jobs or self._jobs[0][0] > time.monotonic()
                ):
                    timeout = (
                        self._jobs[0][0] - time.monotonic() if self._jobs else None
                    )
                    self._wake.wait(timeout)
                if self._stopped:
                    return
                _, _, job = heapq.heappop(self._jobs)
            try:
                job()
            except Exception:
                _LOGGER.exception("A paced bench job failed")


class Refill:
    """Kiosks that keep the waiting list at its length: one ticket for each ticket
    called, round robin, less the tickets other kiosks issued meanwhile.
    """

    def __init__(self, site: Site, kiosks: Sequence[OfficeClient]) -> None:
        self.site = site
        self.kiosks = list(kiosks)
        self.failed = 0
        self._next = itertools.count()
        self._issued_elsewhere = 0
        self._lock = threading.Lock()

    def replace_called(self) -> None:
        """Issue a ticket for one called, unless a ticket issued elsewhere did."""
        with self._lock:
            if self._issued_elsewhere > 0:
                self._issued_elsewhere -= 1
                return
        self.issue()

    def count_issued_elsewhere(self) -> None:
        """Count a ticket that another kiosk issued, so one call needs no new one."""
        with self._lock:
            self._issued_elsewhere += 1

    def issue(self) -> Future[Reply]:
        """Send one ticket request from the next kiosk without waiting for it."""
        with self._lock:
            index = next(self._next)
        kiosk = self.kiosks[index % len(self.kiosks)]
        future = kiosk.send(ticket_command(self.site, index))
        future.add_done_callback(self._count_failure)
        return future

    def prefill(self, tickets: int) -> None:
        """Issue `tickets` tickets and wait for every reply."""
        futures = [self.issue() for _ in range(tickets)]
        for future in futures:
            future.exception(timeout=30)

    def _count_failure(self, future: Future[Reply]) -> None:
        if future.exception() is not None or not future.result().ok:
            with self._lock:
                self.failed += 1


def connect_devices(
    office: BenchOffice, on_call: Callable[[CallEvent], None]
) -> Devices:
    """Connect every counter and kiosk of the office, and the hall display.

    Counters and kiosks take no state: in an office each is a machine of its
    own, but here they share this process, whose threads would spend their time
    decoding states and delay the clients that time the calls.
    """
    site = office.site
    counters = office.connect([(Role.COUNTER, str(c.number)) for c in site.counters])
    office.log_in(counters)
    kiosks = office.connect([(Role.KIOSK, k.id) for k in site.kiosks])
    watch = StateWatch()
    (display,) = office.connect(
        [(Role.DISPLAY, "hall")], state_handler=watch.handle, on_call=on_call
    )
    return Devices(counters, kiosks, display, watch)


# Call latency ----------------------------------------------------------------------


@dataclass(frozen=True)
class CallLatency:
    """Next sent by a counter until the display has the call, under a paced load."""

    latency: LatencyStats
    offered_calls_per_s: float
    achieved_calls_per_s: float
    nobody_waiting: int
    failed: int


class CallTimer:
    """Counters that press Next at random intervals; the display times each call.

    Each counter waits for its reply before its next press, after an
    exponentially distributed pause whose mean gives `calls_per_s` in all.
    A counter's send times queue until the display gets its calls, oldest first.
    """

    def __init__(
        self, devices: Devices, refill: Refill, calls_per_s: float, seed: int
    ) -> None:
        self.devices = devices
        self.refill = refill
        self.mean_pause = len(devices.counters) / calls_per_s
        self.random = random.Random(seed)
        self.pacer = Pacer()
        self.samples: list[float] = []
        self.nobody_waiting = 0
        self.failed = 0
        self._sent: dict[int, deque[float]] = {}
        self._lock = threading.Lock()
        self._running = False

    def start(self) -> None:
        """Start every counter after a pause of its own."""
        self._running = True
        for client in self.devices.counters:
            number = int(client.device)
            self._sent[number] = deque()
            self.pacer.after(
                self._pause(), lambda c=client, n=number: self._press(c, n)
            )

    def stop(self) -> None:
        """Stop pressing; replies still on their way are not counted."""
        self._running = False
        self.pacer.stop()

    def receive_call(self, call: CallEvent) -> None:
        """Time a call event against the oldest pending press of its counter."""
        received = time.monotonic()
        if call.recall:
            return
        with self._lock:
            pending = self._sent.get(call.counter)
            if pending:
                self.samples.append(received - pending.popleft())

    def _press(self, client: OfficeClient, number: int) -> None:
        if not self._running:
            return
        command = Command(CommandKind.NEXT, new_command_id("bench"), counter=number)
        with self._lock:
            self._sent[number].append(time.monotonic())
        future = client.send(command)
        future.add_done_callback(lambda done: self._replied(client, number, done))

    def _replied(
        self, client: OfficeClient, number: int, future: Future[Reply]
    ) -> None:
        if not self._running:
            return
        error = future.exception()
        reply = future.result() if error is None else None
        if reply is None or not reply.ok:
            # No call follows a failed Next, so its send time is dropped.
            with self._lock:
                self._sent[number].pop()
                if reply is not None and reply.error is ErrorCode.NOBODY_WAITING:
                    self.nobody_waiting += 1
                else:
                    self.failed += 1
            if reply is None or reply.error is not ErrorCode.NOBODY_WAITING:
                _LOGGER.warning("Next at counter %d failed: %s", number, error or reply)
        else:
            self.refill.replace_called()
        if self._running:
            self.pacer.after(self._pause(), lambda: self._press(client, number))

    def _pause(self) -> float:
        return self.random.expovariate(1.0 / self.mean_pause)


def wait_for_samples(samples: Sequence[object], count: int, timeout: float) -> None:
    """Sleep until `samples` contains `count` items or the timeout passes."""
    deadline = time.monotonic() + timeout
    while len(samples) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    if len(samples) < count:
        _LOGGER.warning(
            "Took %d of %d samples before the %.0f s limit",
            len(samples),
            count,
            timeout,
        )


# Floor -----------------------------------------------------------------------------


class FloorProbe:
    """A plain paho publisher and subscriber that time QoS 1 round trips through the
    bench broker, one message at a time, as the lower bound of any call latency.

    The publisher logs in as the engine and the subscriber as the operator,
    because the broker's ACL lets only these write and read a topic of their own.
    """

    def __init__(self, office: BenchOffice) -> None:
        root = f"antrean/{office.site.id}"
        self.topic = f"{root}/{FLOOR_TOPIC}"
        self.samples: list[float] = []
        self._received = threading.Event()
        self._sent_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.publisher = self._client(office, Role.ENGINE, office.site.id, "floor-pub")
        self.subscriber = self._client(office, Role.OPERATOR, "admin", "floor-sub")
        self.subscriber.on_message = self._receive
        self._subscribed = threading.Event()
        self.subscriber.on_subscribe = lambda *_args: self._subscribed.set()
        self._connect(self.subscriber, office)
        self.subscriber.subscribe(self.topic, qos=1)
        if not self._subscribed.wait(FLOOR_TIMEOUT_S):
            raise BenchError(
                f"the broker did not grant the subscription to {self.topic}"
            )
        self._connect(self.publisher, office)

    @staticmethod
    def _client(office: BenchOffice, role: Role, device: str, name: str) -> mqtt.Client:
        credentials = load_credentials(office.data_dir, role, device)
        if credentials is None:
            raise BenchError(
                f"no credentials of {role.value} {device} in {office.data_dir}"
            )
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-{name}",
            protocol=mqtt.MQTTv5,
        )
        client.username_pw_set(credentials.username, credentials.password)
        return client

    @staticmethod
    def _connect(client: mqtt.Client, office: BenchOffice) -> None:
        client.connect(LOOPBACK, office.site.broker.port)
        client.loop_start()

    def measure(self, count: int, pause: float) -> None:
        """Time `count` round trips, `pause` seconds apart, on the calling thread."""
        payload = bytes(FLOOR_PAYLOAD_BYTES)
        for _ in range(count):
            if self._stop.is_set():
                return
            self._received.clear()
            self._sent_at = time.monotonic()
            self.publisher.publish(self.topic, payload, qos=1)
            if not self._received.wait(FLOOR_TIMEOUT_S):
                raise BenchError(f"a QoS 1 message to {self.topic} was not delivered")
            self._stop.wait(pause)

    def start(self, count: int, pause: float) -> None:
        """Measure in a background thread until `count` samples or stop()."""
        self._thread = threading.Thread(
            target=self.measure, args=(count, pause), name="bench-floor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """End the background measurement and disconnect both clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for client in (self.publisher, self.subscriber):
            client.disconnect()
            client.loop_stop()

    def _receive(
        self, _client: mqtt.Client, _userdata: object, _message: mqtt.MQTTMessage
    ) -> None:
        self.samples.append(time.monotonic() - self._sent_at)
        self._received.set()
