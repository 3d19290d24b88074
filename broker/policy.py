"""Queue policies: which waiting ticket a counter takes when its officer presses Next.

A policy is a plain function of the waiting tickets, the counter and a context
holding the engine's clock and the counter's call history, so the same tickets
and the same command always give the same choice, whatever the clocks of the
machines that sent them say.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from broker.site import Counter, Lane, PolicyConfig, PolicyKind, TransferOrder
from broker.store import timestamp

QueueKey = tuple[str, int]


@dataclass(frozen=True)
class Appointment:
    """A booked time window, as engine timestamps in UTC (the store's format)."""

    start: str
    end: str
    checked_in: bool = False

    def open_at(self, stamp: str) -> bool:
        """Tell whether the ticket is checked in and `stamp` falls inside the window."""
        return self.checked_in and self.start <= stamp <= self.end


@dataclass(frozen=True)
class Candidate:
    """A waiting ticket as a policy sees it."""

    ticket_id: str
    service: str
    lane: Lane
    arrived_at: str
    order: int
    target_counter: int | None = None
    # The first issue time, which transfers keep. Empty means the same as arrived_at.
    issued_at: str = ""
    appointment: Appointment | None = None

    def queued_since(self, transfers: TransferOrder) -> str:
        """Return the timestamp the ticket queues from under a transfer setting."""
        if transfers is TransferOrder.KEEP_ARRIVAL and self.issued_at:
            return self.issued_at
        return self.arrived_at

    def eligible_at(self, counter: Counter) -> bool:
        """Tell whether this counter may take the ticket at all."""
        return (
            self.service in counter.services
            and self.lane in counter.lanes
            and self.target_counter in (None, counter.number)
        )


@dataclass(frozen=True)
class PolicyContext:
    """The engine's clock and the counter's call history, all a policy uses besides tickets."""

    now: datetime
    # Lanes of the tickets this counter called today, oldest first, recalls excluded.
    history: tuple[Lane, ...] = ()


class WaitingQueue(Sequence[Candidate]):
    """Waiting tickets in queue order, indexed so a policy finds the oldest of a lane fast.

    Queue order is the time a ticket queues from (see `Candidate.queued_since`),
    then its insertion order. Removal is lazy, so a forward simulation can take
    tickets out one by one without rebuilding the index.
    """

    def __init__(
        self,
        candidates: Iterable[Candidate],
        transfers: TransferOrder = TransferOrder.BACK_OF_QUEUE,
    ) -> None:
        self.transfers = transfers
        self._all: list[Candidate] = []
        self._buckets: dict[tuple[str, Lane, int | None], _Bucket] = {}
        self._removed: set[str] = set()
        self._appointments: list[Candidate] = []
        for candidate in sorted(candidates, key=self.key):
            self.add(candidate)

    def key(self, candidate: Candidate) -> QueueKey:
        """Return the sort key of a ticket in this queue."""
        return candidate.queued_since(self.transfers), candidate.order

    def add(self, candidate: Candidate) -> None:
        """Put a ticket into the queue at its place."""
        self._all.append(candidate)
        bucket_key = (candidate.service, candidate.lane, candidate.target_counter)
        self._buckets.setdefault(bucket_key, _Bucket()).insert(
            self.key(candidate), candidate
        )
        if candidate.appointment is not None:
            self._appointments.append(candidate)

    def remove(self, candidate: Candidate) -> None:
        """Take a ticket out of the queue."""
        self._removed.add(candidate.ticket_id)

    def oldest(self, counter: Counter, lane: Lane) -> Candidate | None:
        """Return the first ticket in queue order of a lane that this counter may take."""
        if lane not in counter.lanes:
            return None
        best: Candidate | None = None
        best_key: QueueKey | None = None
        for service in counter.services:
            for target in (None, counter.number):
                bucket = self._buckets.get((service, lane, target))
                head = bucket.head(self._removed) if bucket else None
                if head is not None and (best_key is None or head[0] < best_key):
                    best_key, best = head
        return best

    def appointments(self) -> list[Candidate]:
        """Return the waiting tickets that carry an appointment."""
        return [c for c in self._appointments if c.ticket_id not in self._removed]

    def __len__(self) -> int:
        return len(self._all) - len(self._removed)

    def __iter__(self) -> Iterator[Candidate]:
        live = (c for c in self._all if c.ticket_id not in self._removed)
        return iter(sorted(live, key=self.key))

    def __getitem__(self, index: int) -> Candidate:  # type: ignore[override]
        return list(self)[index]


class _Bucket:
    """Tickets of one service, lane and reserved counter, sorted by queue key."""

    def __init__(self) -> None:
        self.keys: list[QueueKey] = []
        self.items: list[Candidate] = []
        self.start = 0

    def insert(self, key: QueueKey, candidate: Candidate) -> None:
        index = bisect.bisect(self.keys, key)
        self.keys.insert(index, key)
        self.items.insert(index, candidate)
        self.start = min(self.start, index)

    def head(self, removed: set[str]) -> tuple[QueueKey, Candidate] | None:
        while (
            self.start < len(self.items) and self.items[self.start].ticket_id in removed
        ):
            self.start += 1
        if self.start == len(self.items):
            return None
        return self.keys[self.start], self.items[self.start]


Policy = Callable[[WaitingQueue, Counter, PolicyContext], Candidate | None]


def strict_priority(
    waiting: WaitingQueue, counter: Counter, context: PolicyContext
) -> Candidate | None:
    """Take the priority lane first, then the normal lane, each in queue order."""
    priority = waiting.oldest(counter, Lane.PRIORITY)
    if priority is not None:
        return priority
    return waiting.oldest(counter, Lane.NORMAL)


def ratio(run: int) -> Policy:
    """Make a policy that takes the oldest normal ticket after `run` priority calls."""

    def choose(
        waiting: WaitingQueue, counter: Counter, context: PolicyContext
    ) -> Candidate | None:
        recent = context.history[-run:]
        if len(recent) == run and all(lane is Lane.PRIORITY for lane in recent):
            normal = waiting.oldest(counter, Lane.NORMAL)
            if normal is not None:
                return normal
        return strict_priority(waiting, counter, context)

    return choose


def ageing_cap(max_wait_minutes: float) -> Policy:
    """Make a policy in which a normal ticket waiting over the cap passes later priority ones."""
    cap = timedelta(minutes=max_wait_minutes)

    def choose(
        waiting: WaitingQueue, counter: Counter, context: PolicyContext
    ) -> Candidate | None:
        priority = waiting.oldest(counter, Lane.PRIORITY)
        normal = waiting.oldest(counter, Lane.NORMAL)
        if normal is None or priority is None:
            return priority or normal
        # Timestamps share one UTC format, so text order is time order.
        aged = normal.queued_since(waiting.transfers) < timestamp(context.now - cap)
        if aged and waiting.key(normal) < waiting.key(priority):
            return normal
        return priority

    return choose


def appointments_first(then: Policy) -> Policy:
    """Wrap a policy so a checked-in appointment ticket inside its window goes first.

    Among several such tickets the earliest window wins, then queue order.
    """

    def choose(
        waiting: WaitingQueue, counter: Counter, context: PolicyContext
    ) -> Candidate | None:
        stamp = timestamp(context.now)
        due = [
            candidate
            for candidate in waiting.appointments()
            if candidate.appointment is not None
            and candidate.appointment.open_at(stamp)
            and candidate.eligible_at(counter)
        ]
        if due:
            return min(
                due,
                key=lambda c: (c.appointment.start, waiting.key(c)),  # type: ignore[union-attr]
            )
        return then(waiting, counter, context)

    return choose


def make_policy(config: PolicyConfig) -> Policy:
    """Build the policy function a `[policy]` table describes."""
    if config.order is PolicyKind.RATIO:
        policy = ratio(config.priority_run)
    elif config.order is PolicyKind.AGEING_CAP:
        policy = ageing_cap(config.max_wait_minutes)
    else:
        policy = strict_priority
    if config.appointments_first:
        policy = appointments_first(policy)
    return policy


def people_ahead(waiting: Sequence[Candidate], service: str, lane: Lane) -> int:
    """Count the waiting tickets of a service that go before a new ticket in this lane.

    NOTE: this counts by lane alone: a priority ticket waits behind the priority
    lane of its service, a normal ticket behind both lanes. It ignores which
    counters take which lanes.
    """
    return sum(
        1
        for ticket in waiting
        if ticket.service == service
        and (lane is Lane.NORMAL or ticket.lane is Lane.PRIORITY)
    )
