"""The engine applied directly to a real SQLite file, on a clock the test sets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.contract import Command, CommandKind, ErrorCode, Role, TicketStatus
from broker.engine import Engine, Source
from broker.site import Lane, load_site
from broker.store import Store
from officer_logins import log_in_engine

KIOSK = Source(Role.KIOSK, "kiosk-1")
OPERATOR = Source(Role.OPERATOR, "admin")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    # 09:00 in Lebong (UTC+7).
    return Clock(datetime(2026, 12, 4, 2, 0, tzinfo=UTC))


@pytest.fixture
def engine(tmp_path: Path, clock: Clock) -> Iterator[Engine]:
    store = Store(tmp_path / "antrean.sqlite")
    engine = Engine(load_site(), store, clock=clock)
    # Counter terminals act only while an officer is logged in.
    log_in_engine(engine)
    yield engine
    store.close()


_ids = iter(range(1_000_000))


def issue(engine: Engine, service: str = "A", category: str | None = None) -> str:
    command = Command(
        CommandKind.ISSUE_TICKET, f"t{next(_ids)}", service=service, category=category
    )
    reply = engine.handle(command, KIOSK).reply
    assert reply.ok, reply.message
    return reply.ticket.label


def act(engine: Engine, kind: CommandKind, counter: int = 2, **fields: object):
    command = Command(kind, f"c{next(_ids)}", counter=counter, **fields)
    return engine.handle(command, Source(Role.COUNTER, str(counter)))


def test_numbers_run_per_service(engine: Engine) -> None:
    labels = [
        issue(engine, "A"),
        issue(engine, "B"),
        issue(engine, "A"),
        issue(engine, "A", "lansia"),
    ]

    assert labels == ["A-001", "B-001", "A-002", "A-003"]


def test_priority_lane_goes_first(engine: Engine, clock: Clock) -> None:
    issue(engine, "A")
    clock.advance(seconds=10)
    issue(engine, "A", "ibu_hamil")
    clock.advance(seconds=10)

    outcome = act(engine, CommandKind.NEXT, counter=1)

    assert outcome.reply.ticket.label == "A-002"
    assert outcome.reply.ticket.lane is Lane.PRIORITY
    assert outcome.calls[0].counter == 1


def test_counter_takes_only_its_services_and_lanes(engine: Engine) -> None:
    issue(engine, "C")
    issue(engine, "A", "lansia")

    # Counter 2 takes A and B in the normal lane only.
    outcome = act(engine, CommandKind.NEXT, counter=2)

    assert outcome.reply.error is ErrorCode.NOBODY_WAITING
    assert engine.snapshot().service("C").waiting_normal == 1


def test_arrival_order_within_a_lane(engine: Engine, clock: Clock) -> None:
    for _ in range(3):
        issue(engine, "B")
        clock.advance(seconds=1)

    called = [act(engine, CommandKind.NEXT).reply.ticket.label for _ in range(3)]

    assert called == ["B-001", "B-002", "B-003"]


def test_repeated_command_id_is_applied_once(engine: Engine) -> None:
    issue(engine, "A")
    issue(engine, "A")
    command = Command(CommandKind.NEXT, "same-id", counter=2)

    first = engine.handle(command, OPERATOR)
    second = engine.handle(command, OPERATOR)

    assert first.reply == second.reply
    assert second.repeat
    assert second.calls == ()
    assert engine.snapshot().service("A").waiting_normal == 1


def test_next_finishes_the_current_ticket(engine: Engine) -> None:
    issue(engine, "A")
    issue(engine, "A")
    act(engine, CommandKind.NEXT)

    act(engine, CommandKind.NEXT)

    row = engine.store.ticket("20261204-A001")
    assert row["status"] == TicketStatus.FINISHED
    assert row["finished_at"] is not None


def test_recall_announces_again(engine: Engine) -> None:
    issue(engine, "A")
    act(engine, CommandKind.NEXT)

    outcome = act(engine, CommandKind.RECALL)

    assert outcome.reply.ok
    assert outcome.calls[0].recall
    assert engine.store.ticket("20261204-A001")["calls"] == 2
    assert [call.recall for call in engine.snapshot().recent_calls] == [True, False]


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        (CommandKind.NO_SHOW, TicketStatus.NO_SHOW),
        (CommandKind.FINISH, TicketStatus.FINISHED),
    ],
)
def test_closing_the_current_ticket(
    engine: Engine, kind: CommandKind, status: TicketStatus
) -> None:
    issue(engine, "A")
    act(engine, CommandKind.NEXT)

    outcome = act(engine, kind)

    assert outcome.reply.ok
    assert engine.store.ticket("20261204-A001")["status"] == status
    assert engine.snapshot().counter(2).current is None


@pytest.mark.parametrize(
    "kind", [CommandKind.RECALL, CommandKind.NO_SHOW, CommandKind.FINISH]
)
def test_action_without_current_ticket_is_rejected(
    engine: Engine, kind: CommandKind
) -> None:
    outcome = act(engine, kind)

    assert outcome.reply.error is ErrorCode.NO_CURRENT_TICKET
    assert "press Next first" in outcome.reply.message


def test_transfer_to_another_service_keeps_the_number(engine: Engine) -> None:
    issue(engine, "A")
    act(engine, CommandKind.NEXT)

    outcome = act(engine, CommandKind.TRANSFER, to_service="C")

    assert outcome.reply.ticket.label == "A-001"
    assert outcome.reply.ticket.service == "C"
    assert engine.store.ticket("20261204-A001")["status"] == TicketStatus.TRANSFERRED
    assert act(engine, CommandKind.NEXT, counter=4).reply.ticket.id == "20261204-A001.1"


def test_transfer_to_a_counter_reserves_the_ticket(engine: Engine) -> None:
    issue(engine, "A")
    act(engine, CommandKind.NEXT, counter=2)
    act(engine, CommandKind.TRANSFER, counter=2, to_counter=3)

    assert (
        act(engine, CommandKind.NEXT, counter=2).reply.error is ErrorCode.NOBODY_WAITING
    )
    assert act(engine, CommandKind.NEXT, counter=3).reply.ticket.label == "A-001"


def test_transfer_to_counter_that_lacks_the_service(engine: Engine) -> None:
    issue(engine, "A")
    act(engine, CommandKind.NEXT, counter=2)

    outcome = act(engine, CommandKind.TRANSFER, counter=2, to_counter=4)

    assert outcome.reply.error is ErrorCode.NOT_SERVED
    assert engine.store.ticket("20261204-A001")["status"] == TicketStatus.CALLED


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (
            Command(CommandKind.ISSUE_TICKET, "bad-1", service="Q"),
            ErrorCode.UNKNOWN_SERVICE,
        ),
        (
            Command(CommandKind.ISSUE_TICKET, "bad-2", service="A", category="vip"),
            ErrorCode.UNKNOWN_CATEGORY,
        ),
        (Command(CommandKind.NEXT, "bad-3", counter=9), ErrorCode.UNKNOWN_COUNTER),
    ],
)
def test_rejected_command_changes_no_ticket(
    engine: Engine, command: Command, code: ErrorCode
) -> None:
    issue(engine, "A")
    before = list(engine.store.db.query("SELECT * FROM tickets"))

    outcome = engine.handle(command, OPERATOR)

    assert outcome.reply.error is code
    assert list(engine.store.db.query("SELECT * FROM tickets")) == before
    assert engine.store.stored_reply(command.command_id)["ok"] is False


def test_quota_stops_issuing(engine: Engine) -> None:
    quota = load_site().service("C").daily_quota
    for _ in range(quota):
        issue(engine, "C")

    outcome = engine.handle(
        Command(CommandKind.ISSUE_TICKET, "one-more", service="C"), KIOSK
    )

    assert outcome.reply.error is ErrorCode.QUOTA_REACHED
    assert engine.snapshot().service("C").remaining == 0


@pytest.mark.parametrize("machine_zone", ["UTC", "America/New_York", "Asia/Jakarta"])
def test_numbering_restarts_at_site_midnight(
    engine: Engine, clock: Clock, monkeypatch: pytest.MonkeyPatch, machine_zone: str
) -> None:
    monkeypatch.setenv("TZ", machine_zone)
    time.tzset()
    try:
        clock.now = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # 23:00 in Jakarta
        assert issue(engine, "A") == "A-001"
        assert issue(engine, "A") == "A-002"

        clock.now = datetime(
            2026, 12, 4, 17, 30, tzinfo=UTC
        )  # 00:30 the next day there
        reply = engine.handle(
            Command(CommandKind.ISSUE_TICKET, f"night-{machine_zone}", service="A"),
            KIOSK,
        ).reply
    finally:
        monkeypatch.undo()
        time.tzset()

    assert reply.ticket.label == "A-001"
    assert reply.ticket.id == "20261205-A001"
    assert engine.store.ticket("20261204-A002")["status"] == TicketStatus.VOID


def test_database_failure_changes_nothing(engine: Engine) -> None:
    issue(engine, "A")
    engine.store.db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON tickets BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )

    outcome = engine.handle(
        Command(CommandKind.ISSUE_TICKET, "while-broken", service="A"), KIOSK
    )

    assert outcome.reply.error is ErrorCode.UNAVAILABLE
    assert engine.store.stored_reply("while-broken") is None
    assert engine.store.db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1


@pytest.mark.parametrize(
    ("source", "command"),
    [
        (KIOSK, Command(CommandKind.NEXT, "k-next", counter=2)),
        (Source(Role.COUNTER, "3"), Command(CommandKind.NEXT, "c3-next-2", counter=2)),
        (Source(Role.COUNTER, "3"), Command(CommandKind.ISSUE_TICKET, "c3-issue", service="A")),
        (Source(Role.DISPLAY, "hall"), Command(CommandKind.FINISH, "d-finish", counter=2)),
    ],
)
def test_role_may_not_act_for_another(engine: Engine, source: Source, command: Command) -> None:
    issue(engine, "A")

    outcome = engine.handle(command, source)

    assert outcome.reply.error is ErrorCode.FORBIDDEN
    assert engine.snapshot().service("A").waiting_normal == 1
    assert engine.snapshot().service("A").issued == 1
