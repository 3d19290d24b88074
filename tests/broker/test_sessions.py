"""Officer PINs, counter logins, START and the waiting list, on real SQLite."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from officer_logins import OFFICER_PIN, add_officers, login_command, officer_of

from broker import contract, officers
from broker.commands import Source
from broker.contract import (
    MAX_PAYLOAD_BYTES,
    Command,
    CommandKind,
    ContractError,
    CounterAvailability,
    ErrorCode,
    Role,
    TicketStatus,
)
from broker.engine import Engine
from broker.officers_cli import PinEntryError, read_pin
from broker.site import Lane, load_site
from broker.state import WAITING_LISTED_MAX, WAITING_LISTED_PER_LANE
from broker.store import Store

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
    add_officers(store)
    yield Engine(load_site(), store, clock=clock)
    store.close()


_ids = iter(range(1_000_000))


def counter_source(number: int) -> Source:
    return Source(Role.COUNTER, str(number))


def send(engine: Engine, kind: CommandKind, counter: int = 2, **fields: object):
    command = Command(kind, f"s{next(_ids)}", counter=counter, **fields)
    return engine.handle(command, counter_source(counter)).reply


def log_in(
    engine: Engine, counter: int, officer: str | None = None, pin: str = OFFICER_PIN
):
    command = Command(
        CommandKind.LOGIN,
        f"l{next(_ids)}",
        counter=counter,
        officer=officer or officer_of(counter),
        pin=pin,
    )
    return engine.handle(command, counter_source(counter)).reply


def issue(engine: Engine, service: str = "A", category: str | None = None) -> str:
    command = Command(
        CommandKind.ISSUE_TICKET, f"t{next(_ids)}", service=service, category=category
    )
    reply = engine.handle(command, KIOSK).reply
    assert reply.ok, reply.message
    return reply.ticket.label


def ticket(engine: Engine, label: str) -> dict:
    rows = list(
        engine.store.db.query(
            "SELECT * FROM tickets WHERE label = ? ORDER BY visit DESC LIMIT 1", [label]
        )
    )
    return rows[0]


# PIN hashes ------------------------------------------------------------------


def test_pin_hash_is_salted_scrypt() -> None:
    first = officers.hash_pin("4321")
    second = officers.hash_pin("4321")

    assert first.startswith("scrypt$16384$8$1$")
    assert first != second
    assert "4321" not in first
    assert officers.verify_pin("4321", first)
    assert officers.verify_pin("4321", second)
    assert not officers.verify_pin("4322", first)


def test_unreadable_pin_hash_verifies_false() -> None:
    assert not officers.verify_pin("4321", "md5$abc")
    assert not officers.verify_pin("4321", "scrypt$16384$8$1$zz$00")


def test_officer_input_checks() -> None:
    with pytest.raises(officers.OfficerError, match="letters or digits"):
        officers.check_officer_id("budi.s")
    with pytest.raises(officers.OfficerError, match="4 to 8 digits") as raised:
        officers.check_pin("12a4")
    assert "12a4" not in str(raised.value)
    assert officers.check_name("  Budi   Santoso ") == "Budi Santoso"


def test_login_pin_never_reaches_logs(engine: Engine) -> None:
    command = login_command(2)

    assert "2468" not in repr(command)
    engine.handle(command, counter_source(2))
    payloads = [
        row[0] for row in engine.store.db.execute("SELECT payload FROM commands")
    ]
    assert payloads
    assert all("2468" not in payload for payload in payloads)
    assert all('"pin"' not in payload for payload in payloads)


def test_pin_field_is_validated_without_echo() -> None:
    payload = b'{"type":"login","id":"x1","counter":2,"officer":"budi","pin":"12"}'

    with pytest.raises(ContractError, match="4 to 8 digits") as raised:
        contract.decode_command(payload)
    assert "'12'" not in str(raised.value)


# The officers command ------------------------------------------------------------


def antrean(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_officers_add_and_list(tmp_path: Path) -> None:
    where = ["--data-dir", str(tmp_path)]

    added = antrean(
        "officers",
        "add",
        "198705",
        "--name",
        "Budi Santoso",
        "--pin-stdin",
        *where,
        stdin="97531\n",
    )
    again = antrean(
        "officers",
        "add",
        "198705",
        "--name",
        "Budi",
        "--pin-stdin",
        *where,
        stdin="97531\n",
    )
    listed = antrean("officers", "list", *where)

    assert added.returncode == 0, added.stderr
    assert again.returncode == 1
    assert "--replace" in again.stderr
    assert "198705  Budi Santoso  (not logged in)" in listed.stdout
    database = (tmp_path / "antrean.sqlite").read_bytes()
    assert b"97531" not in database
    with sqlite3.connect(tmp_path / "antrean.sqlite") as connection:
        stored = connection.execute("SELECT pin_hash FROM officers").fetchone()[0]
    assert officers.verify_pin("97531", stored)


def test_officers_add_rejects_bad_pin(tmp_path: Path) -> None:
    result = antrean(
        "officers",
        "add",
        "budi",
        "--name",
        "Budi",
        "--pin-stdin",
        "--data-dir",
        str(tmp_path),
        stdin="12\n",
    )

    assert result.returncode == 1
    assert "Use 4 to 8 digits" in result.stderr


def test_officers_list_without_database(tmp_path: Path) -> None:
    result = antrean("officers", "list", "--data-dir", str(tmp_path))

    assert result.returncode == 1
    assert "no database" in result.stderr


def test_read_pin_asks_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    typed = iter(["1357", "1358"])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(typed))

    with pytest.raises(PinEntryError, match="differ"):
        read_pin(False)
    assert read_pin(True, io.StringIO("8642\n")) == "8642"


def test_replace_sets_new_pin(engine: Engine) -> None:
    now = datetime.now(UTC)
    officers.add_officer(engine.store, "budi", "Budi", "1111", now)
    officers.add_officer(engine.store, "budi", "Budi S", "2222", now, replace=True)

    assert not log_in(engine, 2, "budi", "1111").ok
    assert log_in(engine, 2, "budi", "2222").ok
    assert [o.name for o in officers.list_officers(engine.store) if o.id == "budi"] == [
        "Budi S"
    ]


# Logins --------------------------------------------------------------------------


def test_login_opens_counter_and_logout_closes_it(engine: Engine) -> None:
    reply = log_in(engine, 2)

    assert reply.ok, reply.message
    assert reply.message == "Petugas Loket 2 logged in at Loket 2."
    counter = engine.snapshot().counter(2)
    assert counter.officer == "petugas2"
    assert counter.officer_name == "Petugas Loket 2"
    assert counter.availability is CounterAvailability.OPEN

    logout = send(engine, CommandKind.LOGOUT)
    assert logout.ok, logout.message
    counter = engine.snapshot().counter(2)
    assert counter.officer == ""
    assert counter.availability is CounterAvailability.CLOSED


def test_wrong_pin_and_unknown_officer_fail_alike(engine: Engine) -> None:
    wrong_pin = log_in(engine, 2, pin="1111")
    unknown = log_in(engine, 2, officer="nobody")

    assert wrong_pin.error is ErrorCode.LOGIN_FAILED
    assert unknown.error is ErrorCode.LOGIN_FAILED
    assert wrong_pin.message == unknown.message
    assert engine.snapshot().counter(2).officer == ""


def test_login_locks_after_wrong_pins(engine: Engine, clock: Clock) -> None:
    for _ in range(officers.LOGIN_FAILURE_LIMIT):
        assert log_in(engine, 2, pin="0000").error is ErrorCode.LOGIN_FAILED

    locked = log_in(engine, 2)
    elsewhere = log_in(engine, 3, officer="petugas2")
    assert locked.error is ErrorCode.LOGIN_LOCKED
    assert elsewhere.error is ErrorCode.LOGIN_LOCKED

    clock.advance(minutes=officers.LOGIN_LOCK_MINUTES + 1)
    assert log_in(engine, 2).ok


def test_counter_commands_need_login(engine: Engine) -> None:
    issue(engine, "A")

    rejected = send(engine, CommandKind.NEXT)
    by_operator = engine.handle(
        Command(CommandKind.NEXT, "op-next", counter=3), OPERATOR
    ).reply

    assert rejected.error is ErrorCode.NOT_LOGGED_IN
    assert rejected.message.startswith("No officer is logged in at Loket 2.")
    assert by_operator.ok, by_operator.message
    assert log_in(engine, 2).ok
    assert send(engine, CommandKind.NEXT).error is ErrorCode.NOBODY_WAITING


def test_officer_has_one_counter(engine: Engine) -> None:
    assert log_in(engine, 2, officer="petugas2").ok

    other = log_in(engine, 3, officer="petugas2")

    assert other.error is ErrorCode.LOGGED_IN_ELSEWHERE
    assert (
        other.message == "Petugas Loket 2 is logged in at Loket 2. Log out there first."
    )


def test_login_takes_over_counter(engine: Engine) -> None:
    assert log_in(engine, 2, officer="petugas2").ok

    takeover = log_in(engine, 2, officer="petugas3")

    assert takeover.ok
    assert engine.snapshot().counter(2).officer == "petugas3"
    ended = engine.store.db.execute(
        "SELECT ended_by FROM officer_logins WHERE officer = 'petugas2'"
    ).fetchone()
    assert ended == ("login:petugas3",)
    # petugas2 is free to log in elsewhere now.
    assert log_in(engine, 4, officer="petugas2").ok


def test_logout_waits_for_current_ticket(engine: Engine) -> None:
    issue(engine, "A")
    log_in(engine, 2)
    send(engine, CommandKind.NEXT)

    refused = send(engine, CommandKind.LOGOUT)
    send(engine, CommandKind.FINISH)
    accepted = send(engine, CommandKind.LOGOUT)

    assert refused.error is ErrorCode.TICKET_AT_COUNTER
    assert "A-001 is still at Loket 2" in refused.message
    assert accepted.ok


def test_login_ends_with_the_day(engine: Engine, clock: Clock) -> None:
    issue(engine, "A")
    log_in(engine, 2)

    clock.advance(days=1)
    issue(engine, "A")

    assert send(engine, CommandKind.NEXT).error is ErrorCode.NOT_LOGGED_IN


def test_ticket_records_officer_and_counts(engine: Engine) -> None:
    for _ in range(3):
        issue(engine, "A")
    log_in(engine, 2)

    send(engine, CommandKind.NEXT)
    send(engine, CommandKind.NO_SHOW)
    send(engine, CommandKind.NEXT)
    send(engine, CommandKind.NEXT)  # finishes A-002 and calls A-003

    assert ticket(engine, "A-001")["officer"] == "petugas2"
    assert ticket(engine, "A-002")["officer"] == "petugas2"
    counter = engine.snapshot().counter(2)
    assert counter.served == 1
    assert counter.no_shows == 1
    assert engine.snapshot().counter(3).served == 0


def test_finish_after_takeover_credits_new_officer(engine: Engine) -> None:
    issue(engine, "A")
    log_in(engine, 2, officer="petugas2")
    send(engine, CommandKind.NEXT)

    log_in(engine, 2, officer="petugas3")
    send(engine, CommandKind.FINISH)

    assert ticket(engine, "A-001")["officer"] == "petugas3"
    assert engine.snapshot().counter(2).served == 1


# Start of service ------------------------------------------------------------------


def test_start_marks_service_time(engine: Engine, clock: Clock) -> None:
    issue(engine, "A")
    log_in(engine, 2)
    send(engine, CommandKind.NEXT)
    clock.advance(minutes=2)

    started = send(engine, CommandKind.START)
    clock.advance(minutes=9)
    again = send(engine, CommandKind.START)
    send(engine, CommandKind.FINISH)

    assert started.ok, started.message
    assert started.ticket.status is TicketStatus.SERVING
    assert started.ticket.served_at == clock.now - timedelta(minutes=9)
    assert again.error is ErrorCode.ALREADY_STARTED
    assert again.message == "A-001 is already being served, since 09:02."
    row = ticket(engine, "A-001")
    assert row["status"] == TicketStatus.FINISHED.value
    assert row["served_at"] != row["called_at"]
    assert datetime.fromisoformat(row["served_at"]) == clock.now - timedelta(minutes=9)


def test_start_shows_in_state(engine: Engine) -> None:
    issue(engine, "B")
    log_in(engine, 2)
    send(engine, CommandKind.NEXT)
    send(engine, CommandKind.START)

    current = engine.snapshot().counter(2).current

    assert current.status is TicketStatus.SERVING
    assert current.served_at is not None
    assert (
        contract.decode_state(contract.encode(engine.snapshot()))
        .counter(2)
        .current.served_at
        == current.served_at
    )


def test_start_without_ticket_rejected(engine: Engine) -> None:
    log_in(engine, 2)

    assert send(engine, CommandKind.START).error is ErrorCode.NO_CURRENT_TICKET


def test_finish_without_start_counts_from_call(engine: Engine) -> None:
    issue(engine, "A")
    log_in(engine, 2)
    send(engine, CommandKind.NEXT)
    send(engine, CommandKind.FINISH)

    row = ticket(engine, "A-001")
    assert row["served_at"] == row["called_at"]


# The waiting list in the state ------------------------------------------------


def test_waiting_list_in_arrival_order(engine: Engine, clock: Clock) -> None:
    for service, category in [("A", None), ("B", None), ("A", "lansia"), ("A", None)]:
        issue(engine, service, category)
        clock.advance(seconds=5)

    waiting = engine.snapshot().waiting

    assert [t.label for t in waiting] == ["A-001", "B-001", "A-002", "A-003"]
    assert waiting[2].lane is Lane.PRIORITY
    assert waiting[2].category == "lansia"
    assert waiting[0].arrived_at.microsecond == 0


def test_waiting_list_is_bounded(engine: Engine, clock: Clock) -> None:
    for service in "ABCD":
        for category in (None, "lansia"):
            for _ in range(WAITING_LISTED_PER_LANE + 3):
                issue(engine, service, category)
                clock.advance(seconds=1)
    state = engine.snapshot()

    assert len(state.waiting) == WAITING_LISTED_MAX
    per_lane = {}
    for entry in state.waiting:
        key = (entry.service, entry.lane)
        per_lane[key] = per_lane.get(key, 0) + 1
    assert len(per_lane) == 8
    assert max(per_lane.values()) <= WAITING_LISTED_PER_LANE
    # The cut is even: no lane keeps two more tickets than another.
    assert max(per_lane.values()) - min(per_lane.values()) <= 1
    assert state.service("A").waiting_normal == WAITING_LISTED_PER_LANE + 3


def test_full_state_fits_payload_limit(engine: Engine, clock: Clock) -> None:
    # Every lane over its bound, four counters serving and a full call history.
    for service in "ABCD":
        for category in (None, "ibu_hamil"):
            for _ in range(WAITING_LISTED_PER_LANE + 2):
                issue(engine, service, category)
    for number in (1, 2, 3, 4):
        log_in(engine, number)
    for _ in range(3):
        for number in (1, 2, 3, 4):
            send(engine, CommandKind.NEXT, counter=number)
            send(engine, CommandKind.RECALL, counter=number)

    payload = contract.encode(engine.snapshot())

    assert len(payload) < MAX_PAYLOAD_BYTES
    assert len(contract.decode_state(payload).waiting) == WAITING_LISTED_MAX


def test_transfer_reservation_in_waiting_list(engine: Engine) -> None:
    issue(engine, "A")
    log_in(engine, 2)
    send(engine, CommandKind.NEXT)

    send(engine, CommandKind.TRANSFER, to_counter=3)

    (entry,) = engine.snapshot().waiting
    assert entry.label == "A-001"
    assert entry.target_counter == 3


def test_pause_reason_in_state(engine: Engine) -> None:
    log_in(engine, 2)

    reply = send(engine, CommandKind.PAUSE_COUNTER, reason="Istirahat")

    assert reply.ok
    counter = engine.snapshot().counter(2)
    assert counter.availability is CounterAvailability.PAUSED
    assert counter.reason == "Istirahat"


def test_waiting_list_cuts_each_lane(engine: Engine) -> None:
    for _ in range(WAITING_LISTED_PER_LANE + 4):
        issue(engine, "C")
    issue(engine, "D")

    labels = [entry.label for entry in engine.snapshot().waiting]

    assert labels == [f"C-{n:03d}" for n in range(1, WAITING_LISTED_PER_LANE + 1)] + [
        "D-001"
    ]


def test_unprinted_tickets_in_state(engine: Engine) -> None:
    issue(engine, "A")
    issue(engine, "B")
    failed = Command(CommandKind.PRINT_FAILED, "pf-1", ticket="B-001", reason="jam")
    assert engine.handle(failed, KIOSK).reply.ok

    state = engine.snapshot()

    assert [entry.label for entry in state.unprinted] == ["B-001"]
    assert [entry.label for entry in state.waiting] == ["A-001"]
    decoded = contract.decode_state(contract.encode(state))
    assert decoded.unprinted == state.unprinted
