"""Counter availability, calling a chosen ticket, cancelling, and wait estimates at issue."""

from __future__ import annotations

import json

import pytest

from broker import contract
from broker.contract import (
    CommandKind,
    ContractError,
    CounterAvailability,
    ErrorCode,
    TicketStatus,
)
from broker.site import load_site
from tests.broker.test_policy import KIOSK, OFFICER, Office


@pytest.fixture
def office(tmp_path) -> Office:
    office = Office(load_site(), tmp_path / "antrean.sqlite")
    yield office
    office.store.close()


def availability(office: Office, number: int) -> tuple[CounterAvailability, str]:
    state = office.engine.snapshot().counter(number)
    return state.availability, state.reason


def test_counter_without_session_follows_its_calls(office: Office) -> None:
    office.issue("A")
    assert availability(office, 2)[0] is CounterAvailability.CLOSED

    office.next(2)
    open_after_call = availability(office, 2)[0]
    office.clock.at(minutes=31)

    assert open_after_call is CounterAvailability.OPEN
    assert availability(office, 2)[0] is CounterAvailability.CLOSED


def test_pause_keeps_reason_and_open_clears_it(office: Office) -> None:
    office.send(CommandKind.OPEN_COUNTER, 3)
    reply = office.send(CommandKind.PAUSE_COUNTER, 3, reason="istirahat siang")
    paused = availability(office, 3)

    office.send(CommandKind.OPEN_COUNTER, 3)

    assert reply.ok
    assert paused == (CounterAvailability.PAUSED, "istirahat siang")
    assert availability(office, 3) == (CounterAvailability.OPEN, "")
    rows = office.store.session_rows("2026-12-04")
    assert [row["state"] for row in rows] == ["open", "paused", "open"]


def test_closed_counter_stays_closed_despite_recent_calls(office: Office) -> None:
    office.issue("A")
    office.next(2)

    office.send(CommandKind.CLOSE_COUNTER, 2)

    assert availability(office, 2)[0] is CounterAvailability.CLOSED


def test_call_at_paused_counter_opens_it(office: Office) -> None:
    office.issue("A")
    office.send(CommandKind.PAUSE_COUNTER, 2, reason="rapat")

    assert office.next(2) == "A-001"
    assert availability(office, 2)[0] is CounterAvailability.OPEN


def test_call_chosen_ticket_out_of_order(office: Office) -> None:
    office.issue("A")
    office.issue("A")
    office.issue("A")
    office.next(2)

    reply = office.send(CommandKind.CALL, 2, ticket="A-003")

    assert reply.ok
    assert reply.ticket.label == "A-003"
    assert office.store.ticket("20261204-A001")["status"] == TicketStatus.FINISHED
    assert office.next(3) == "A-002"


@pytest.mark.parametrize(
    ("ticket", "counter", "code"),
    [
        ("A-009", 2, ErrorCode.UNKNOWN_TICKET),
        ("C-001", 2, ErrorCode.NOT_SERVED),
        ("A-001", 9, ErrorCode.UNKNOWN_COUNTER),
    ],
)
def test_call_chosen_ticket_rejected(
    office: Office, ticket: str, counter: int, code: ErrorCode
) -> None:
    office.issue("A")
    office.issue("C")

    reply = office.send(CommandKind.CALL, counter, ticket=ticket)

    assert reply.error is code
    assert ticket in reply.message or str(counter) in reply.message
    assert office.engine.snapshot().service("A").waiting_normal == 1


def test_cancel_removes_a_waiting_ticket(office: Office) -> None:
    office.issue("B")
    office.issue("B")

    reply = office.engine.handle(
        contract.Command(CommandKind.CANCEL, "cancel-1", ticket="B-001"),
        OFFICER,
    ).reply

    assert reply.ok
    assert office.store.ticket("20261204-B001")["status"] == TicketStatus.VOID
    assert office.next(2) == "B-002"


def test_issue_stores_estimate_and_baselines(office: Office) -> None:
    for number in (1, 2, 3):
        office.send(CommandKind.OPEN_COUNTER, number)
    for _ in range(6):
        office.issue("A")

    row = office.store.ticket("20261204-A006")
    view = office.engine.snapshot()

    # Counters 1 to 3 take A at about 15 minutes a visit, so A-006 starts when
    # the first three finish; the queue baseline spreads five people over three.
    assert row["people_ahead"] == 5
    assert row["baseline_queue"] == pytest.approx(5 * 15 / 3, rel=0.1)
    assert row["baseline_last"] == 0
    assert 12 <= row["estimate"] <= 17
    assert row["estimate_min"] <= row["estimate"] <= row["estimate_max"]
    assert view.service("A").wait_normal.minutes >= row["estimate"]
    assert view.service("C").wait_normal is not None


def test_issue_reply_carries_printed_range(office: Office) -> None:
    office.send(CommandKind.OPEN_COUNTER, 2)
    office.issue("B")
    reply = office.engine.handle(
        contract.Command(CommandKind.ISSUE_TICKET, "second", service="B"),
        KIOSK,
    ).reply

    estimate = reply.ticket.estimate
    decoded = contract.decode_reply(contract.encode(reply)).ticket.estimate

    assert estimate.low <= estimate.minutes <= estimate.high
    assert estimate.high > 0
    assert decoded == estimate


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ({"type": "call", "id": "x", "counter": 2}, "needs the field 'ticket'"),
        ({"type": "call", "id": "x", "counter": 2, "ticket": "A1"}, "like A-001"),
        (
            {"type": "cancel", "id": "x", "ticket": "A-001", "reason": "r" * 121},
            "1 to 120",
        ),
        ({"type": "pause_counter", "id": "x"}, "needs the field 'counter'"),
        (
            {"type": "open_counter", "id": "x", "counter": 2, "reason": "x"},
            "takes no field",
        ),
    ],
)
def test_new_commands_are_validated(payload: dict, words: str) -> None:
    with pytest.raises(ContractError, match=words):
        contract.decode_command(json.dumps(payload).encode())


def test_state_round_trip_keeps_availability(office: Office) -> None:
    office.send(CommandKind.PAUSE_COUNTER, 4, reason="printer rusak")
    state = office.engine.snapshot()

    decoded = contract.decode_state(contract.encode(state))

    assert decoded.counter(4).availability is CounterAvailability.PAUSED
    assert decoded.counter(4).reason == "printer rusak"
    assert decoded.services == state.services
