"""Queue policies, through the engine on a clock the test sets and as plain functions."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broker.contract import Command, CommandKind, Role
from broker.engine import Engine, Source
from broker.policy import (
    Appointment,
    Candidate,
    PolicyContext,
    WaitingQueue,
    make_policy,
)
from broker.site import (
    Lane,
    PolicyConfig,
    PolicyKind,
    Site,
    SiteError,
    TransferOrder,
    bundled_site_path,
    parse_site,
)
from broker.store import Store, timestamp

KIOSK = Source(Role.KIOSK, "kiosk-1")
# Drives every counter of the site, as the operator login may.
OFFICER = Source(Role.OPERATOR, "officer")
# 09:00 in Lebong (UTC+7).
START = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def at(self, **delta: float) -> None:
        self.now = START + timedelta(**delta)


def site_with(
    policy: dict[str, Any] | None = None, counters: list[dict[str, Any]] | None = None
) -> Site:
    data = tomllib.loads(bundled_site_path().read_text(encoding="utf-8"))
    if policy is not None:
        data["policy"] = policy
    if counters is not None:
        data["counters"] = counters
    return parse_site(data, "test.toml")


ONE_COUNTER = [{"number": 1, "name": "Loket 1", "services": ["A", "B", "C", "D"]}]


class Office:
    """An engine on a real SQLite file with helpers that send commands."""

    def __init__(self, site: Site, path: Path) -> None:
        self.clock = Clock()
        self.store = Store(path)
        self.engine = Engine(site, self.store, clock=self.clock)
        self.ids = iter(range(1_000_000))

    def issue(self, service: str = "A", category: str | None = None) -> str:
        command = Command(
            CommandKind.ISSUE_TICKET,
            f"t{next(self.ids)}",
            service=service,
            category=category,
        )
        reply = self.engine.handle(command, KIOSK).reply
        assert reply.ok, reply.message
        return reply.ticket.label

    def send(self, kind: CommandKind, counter: int = 1, **fields: Any) -> Any:
        command = Command(kind, f"c{next(self.ids)}", counter=counter, **fields)
        return self.engine.handle(command, OFFICER).reply

    def next(self, counter: int = 1) -> str | None:
        reply = self.send(CommandKind.NEXT, counter)
        return reply.ticket.label if reply.ok else None


@pytest.fixture
def make_office(tmp_path: Path) -> Iterator[Any]:
    offices: list[Office] = []

    def make(site: Site) -> Office:
        office = Office(site, tmp_path / f"office-{len(offices)}.sqlite")
        offices.append(office)
        return office

    yield make
    for office in offices:
        office.store.close()


def test_strict_priority_calls_the_priority_ticket(make_office) -> None:
    office = make_office(site_with())
    clock = office.clock
    clock.at(hours=-1)
    for _ in range(19):
        office.issue("A")
    for _ in range(19):
        assert office.next(2) is not None
    office.send(CommandKind.FINISH, 2)
    clock.at(seconds=0)
    assert office.issue("A") == "A-020"
    clock.at(seconds=10)
    priority = office.issue("A", "lansia")

    clock.at(seconds=20)
    called = office.next(1)

    assert priority == "A-021"
    assert called == "A-021"


def _ageing_day(office: Office) -> tuple[float | None, list[float]]:
    """Run one counter for an hour: 4-minute services, a priority arrival every 3 minutes.

    Return the minute A-001 was called (None if never) and the estimates of its
    remaining wait before each call.
    """
    office.clock.at(minutes=0)
    assert office.issue("A") == "A-001"
    normal_id = "20261204-A001"
    arrivals = [3.0 * n + 0.01 for n in range(20)]
    calls = [4.0 * n + 0.02 for n in range(16)]
    events = sorted([(t, "arrive") for t in arrivals] + [(t, "call") for t in calls])
    estimates: list[float] = []
    for minute, kind in events:
        office.clock.at(minutes=minute)
        if kind == "arrive":
            office.issue("A", "lansia")
            continue
        estimate = office.engine.estimate_waiting(normal_id)
        if estimate is None:
            continue
        estimates.append(estimate.minutes)
        if office.next(1) == "A-001":
            return minute, estimates
    return None, estimates


def test_ageing_cap_calls_normal_ticket_after_cap(make_office) -> None:
    site = site_with({"order": "ageing_cap", "max_wait_minutes": 20}, ONE_COUNTER)
    office = make_office(site)

    called_at, estimates = _ageing_day(office)

    # Calls come at 0.02, 4.02, …; 20.02 is the first after A-001 passes 20 minutes.
    assert called_at == pytest.approx(20.02)
    assert len(estimates) == 6
    assert all(math.isfinite(minutes) for minutes in estimates)
    assert max(estimates) <= 20 + 4 + 4


def test_strict_priority_starves_normal_ticket(make_office) -> None:
    office = make_office(site_with({"order": "strict_priority"}, ONE_COUNTER))

    called_at, estimates = _ageing_day(office)

    assert called_at is None
    assert not math.isfinite(estimates[-1])


def test_ratio_lets_normal_ticket_through(make_office) -> None:
    office = make_office(site_with({"order": "ratio", "priority_run": 2}, ONE_COUNTER))
    for index in range(6):
        office.clock.at(seconds=index)
        office.issue("A", "lansia" if index < 4 else None)

    called = [office.next(1) for _ in range(6)]

    assert called == ["A-001", "A-002", "A-005", "A-003", "A-004", "A-006"]


def test_ratio_counts_runs_per_counter(make_office) -> None:
    counters = [
        {"number": 1, "name": "Loket 1", "services": ["A"]},
        {
            "number": 2,
            "name": "Loket 2",
            "services": ["A"],
            "policy": {"order": "ratio", "priority_run": 1},
        },
    ]
    office = make_office(site_with({"order": "strict_priority"}, counters))
    for index in range(4):
        office.clock.at(seconds=index)
        office.issue("A", "lansia" if index < 3 else None)

    first = office.next(2)
    strict = office.next(1)
    ratio = office.next(2)

    assert (first, strict, ratio) == ("A-001", "A-002", "A-004")


@pytest.mark.parametrize(
    ("transfers", "expected"),
    [("keep_arrival", "A-001"), ("back_of_queue", "C-001")],
)
def test_transfer_keeps_or_loses_its_place(
    make_office, transfers: str, expected: str
) -> None:
    office = make_office(site_with({"transfers": transfers}))
    office.issue("A")
    office.next(2)
    office.clock.at(minutes=5)
    office.issue("C")
    office.clock.at(minutes=10)
    assert office.send(CommandKind.TRANSFER, 2, to_service="C").ok

    assert office.next(4) == expected


def _candidate(name: str, lane: Lane, minute: float, **fields: Any) -> Candidate:
    stamp = timestamp(START + timedelta(minutes=minute))
    return Candidate(
        name, "A", lane, stamp, int(minute * 100), issued_at=stamp, **fields
    )


def _window(start: float, end: float, checked_in: bool = True) -> Appointment:
    return Appointment(
        timestamp(START + timedelta(minutes=start)),
        timestamp(START + timedelta(minutes=end)),
        checked_in,
    )


@pytest.mark.parametrize(
    ("appointment", "expected"),
    [
        (_window(-5, 10), "booked"),
        (_window(5, 20), "elderly"),
        (_window(-20, -1), "elderly"),
        (_window(-5, 10, checked_in=False), "elderly"),
    ],
)
def test_appointment_first_inside_window(
    appointment: Appointment, expected: str
) -> None:
    site = site_with()
    policy = make_policy(PolicyConfig(appointments_first=True))
    waiting = WaitingQueue(
        [
            _candidate("elderly", Lane.PRIORITY, -3),
            _candidate("booked", Lane.NORMAL, -1, appointment=appointment),
        ]
    )

    chosen = policy(waiting, site.counter(1), PolicyContext(START))

    assert chosen.ticket_id == expected


def test_policy_ignores_order_of_input() -> None:
    site = site_with()
    policy = make_policy(PolicyConfig(order=PolicyKind.AGEING_CAP, max_wait_minutes=10))
    tickets = [
        _candidate("old-normal", Lane.NORMAL, -15),
        _candidate("late-priority", Lane.PRIORITY, -2),
        _candidate("early-priority", Lane.PRIORITY, -20),
    ]
    context = PolicyContext(START)

    choices = {
        policy(WaitingQueue(order), site.counter(1), context).ticket_id
        for order in (tickets, tickets[::-1], tickets[1:] + tickets[:1])
    }

    assert choices == {"early-priority"}


def test_waiting_queue_orders_transfers_by_setting() -> None:
    moved = Candidate(
        "moved",
        "A",
        Lane.NORMAL,
        timestamp(START),
        5,
        issued_at=timestamp(START - timedelta(hours=1)),
    )
    fresh = _candidate("fresh", Lane.NORMAL, -10)
    site = site_with()

    keep = WaitingQueue([fresh, moved], TransferOrder.KEEP_ARRIVAL)
    back = WaitingQueue([fresh, moved], TransferOrder.BACK_OF_QUEUE)

    assert keep.oldest(site.counter(2), Lane.NORMAL).ticket_id == "moved"
    assert back.oldest(site.counter(2), Lane.NORMAL).ticket_id == "fresh"
    assert [c.ticket_id for c in keep] == ["moved", "fresh"]


def test_bundled_site_keeps_strict_priority() -> None:
    site = site_with()

    assert site.policy.order is PolicyKind.STRICT_PRIORITY
    assert all(site.policy_of(c) == site.policy for c in site.counters)


def test_counter_policy_overrides_site_keys() -> None:
    counters = [
        {
            "number": 1,
            "name": "Loket 1",
            "services": ["A"],
            "policy": {"priority_run": 5},
        }
    ]

    site = site_with({"order": "ratio", "priority_run": 2}, counters)

    assert site.policy_of(site.counter(1)).order is PolicyKind.RATIO
    assert site.policy_of(site.counter(1)).priority_run == 5


@pytest.mark.parametrize(
    ("policy", "counter_policy", "key", "words"),
    [
        ({"order": "fifo"}, None, "policy.order", "Use one of"),
        ({"priority_run": 0}, None, "policy.priority_run", "out of range"),
        ({"max_wait_minutes": "20"}, None, "policy.max_wait_minutes", "a number"),
        ({"transfers": "front"}, None, "policy.transfers", "keep_arrival"),
        ({"appointments_first": 1}, None, "policy.appointments_first", "true or false"),
        ({}, {"transfers": "keep_arrival"}, "counters[0].policy.transfers", "[policy]"),
        ({}, "ratio", "counters[0].policy", "must be a table"),
    ],
)
def test_invalid_policy_names_key_and_fix(
    policy: dict[str, Any], counter_policy: Any, key: str, words: str
) -> None:
    counter: dict[str, Any] = {"number": 1, "name": "Loket 1", "services": ["A"]}
    if counter_policy is not None:
        counter["policy"] = counter_policy

    with pytest.raises(SiteError) as caught:
        site_with(policy, [counter])

    assert caught.value.key == key
    assert words in str(caught.value)
