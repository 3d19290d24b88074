"""Appointments: the CSV import, check-in at a kiosk, and not-printed tickets with
their reprint, applied to a real SQLite file on a clock the test sets."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.appointments import AppointmentImportError, import_appointments
from broker.contract import Command, CommandKind, ErrorCode, Role, TicketStatus
from broker.engine import Engine, Source
from broker.policy import appointments_first, strict_priority
from broker.site import SiteError, load_site, parse_site
from broker.store import Store
from tests.conftest import free_port, write_site_file

KIOSK = Source(Role.KIOSK, "kiosk-1")
OTHER_KIOSK = Source(Role.KIOSK, "kiosk-2")
OPERATOR = Source(Role.OPERATOR, "admin")
HEADER = "code,name,service,date,time\n"


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    # 09:00 in Lebong (UTC+7) on Friday 4 December 2026.
    return Clock(datetime(2026, 12, 4, 2, 0, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "antrean.sqlite")
    yield opened
    opened.close()


@pytest.fixture
def engine(store: Store, clock: Clock) -> Engine:
    return Engine(load_site(), store, clock=clock)


def write_csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "appointments.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def book(engine: Engine, tmp_path: Path, rows: str) -> None:
    import_appointments(
        write_csv(tmp_path, rows), engine.site, engine.store, engine.clock()
    )


_ids = iter(range(1_000_000))


def send(engine: Engine, source: Source, kind: CommandKind, **fields: object):
    return engine.handle(Command(kind, f"x{next(_ids)}", **fields), source)


# --- import ---


def test_import_stores_rows(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "ab12cd,Budi Santoso,A,2026-12-04,09:30\nXY99,Siti,c,2026-12-05,13:00\n",
    )

    summary = import_appointments(path, engine.site, engine.store, engine.clock())

    assert (summary.added, summary.replaced) == (2, 0)
    assert summary.days == ("2026-12-04", "2026-12-05")
    row = engine.store.appointment("AB12CD")
    assert row["service"] == "A"
    assert row["scheduled_at"] == "2026-12-04T02:30:00.000000+00:00"
    assert engine.store.appointment("XY99")["service"] == "C"


def test_import_semicolons_and_bom(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes(
        "\ufeffCode;Name;Service;Date;Time\nQQ11;Ani;B;2026-12-04;10:00\n".encode()
    )

    import_appointments(path, engine.site, engine.store, engine.clock())

    assert engine.store.appointment("QQ11")["name"] == "Ani"


def test_import_names_each_bad_row(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path,
        "GOOD1,Budi,A,2026-12-04,09:30\n"
        "x!,Budi,A,2026-12-04,09:30\n"
        "BAD2,,A,2026-12-04,09:30\n"
        "BAD3,Budi,Z,2026-12-04,09:30\n"
        "BAD4,Budi,A,04/12/2026,09:30\n"
        "BAD5,Budi,A,2026-12-04,9.30\n"
        "GOOD1,Budi,A,2026-12-04,09:30\n"
        "BAD6,Budi,A,2026-12-04,09:30,extra\n",
    )

    with pytest.raises(AppointmentImportError) as caught:
        import_appointments(path, engine.site, engine.store, engine.clock())

    message = str(caught.value)
    assert "7 invalid rows, nothing was imported" in message
    assert "line 3: code 'x!' is not 4 to 16 letters or digits" in message
    assert "line 4: name must be 1 to 80 characters long" in message
    assert "line 5: service 'Z' is not one of A, B, C, D" in message
    assert "line 6: date '04/12/2026' is not a date like 2026-12-04" in message
    assert "line 7: time '9.30' is not a time like 09:30" in message
    assert "line 8: code GOOD1 is used twice" in message
    assert "line 9: has more fields than the header" in message
    assert engine.store.appointment("GOOD1") is None


def test_import_rejects_wrong_header(engine: Engine, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path, "A1B2,Budi,A,2026-12-04\n", header="code,name,service,day\n"
    )

    with pytest.raises(AppointmentImportError) as caught:
        import_appointments(path, engine.site, engine.store, engine.clock())

    assert "missing ['date', 'time'], unknown ['day']" in str(caught.value)


def test_import_keeps_checked_in_rows(engine: Engine, tmp_path: Path) -> None:
    book(engine, tmp_path, "AB12,Budi,A,2026-12-04,09:30\n")
    assert send(engine, KIOSK, CommandKind.CHECK_IN, code="AB12").reply.ok

    with pytest.raises(AppointmentImportError, match="AB12 already checked in"):
        book(engine, tmp_path, "AB12,Budi,B,2026-12-04,11:00\n")

    assert engine.store.appointment("AB12")["service"] == "A"


def test_import_replaces_open_rows(engine: Engine, tmp_path: Path) -> None:
    book(engine, tmp_path, "AB12,Budi,A,2026-12-04,09:30\n")
    summary = import_appointments(
        write_csv(tmp_path, "AB12,Budi,B,2026-12-04,11:00\n"),
        engine.site,
        engine.store,
        engine.clock(),
    )

    assert (summary.added, summary.replaced) == (0, 1)
    assert engine.store.appointment("AB12")["time"] == "11:00"


def test_cli_import(tmp_path: Path) -> None:
    site_file = write_site_file(tmp_path, free_port())
    path = write_csv(tmp_path, "AB12,Budi,A,2026-12-04,09:30\n")
    data_dir = tmp_path / "data"

    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker",
            "appointments",
            "import",
            str(path),
            "--site",
            str(site_file),
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker",
            "appointments",
            "import",
            str(write_csv(tmp_path, "AB12,Budi,A,2026-12-04,25:00\n")),
            "--site",
            str(site_file),
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert ok.returncode == 0, ok.stderr
    assert "Imported 1 appointments (1 new, 0 replaced) for 2026-12-04." in ok.stdout
    assert bad.returncode == 1
    assert "line 2: time '25:00' is not a time like 09:30" in bad.stderr


# --- check-in ---


def test_check_in_issues_appointment_ticket(engine: Engine, tmp_path: Path) -> None:
    book(engine, tmp_path, "AB12,Budi,A,2026-12-04,09:20\n")

    reply = send(engine, KIOSK, CommandKind.CHECK_IN, code="AB12").reply

    assert reply.ok, reply.message
    assert reply.ticket.label == "A-001"
    assert reply.ticket.appointment_at == datetime(2026, 12, 4, 2, 20, tzinfo=UTC)
    row = engine.store.appointment("AB12")
    assert row["ticket_id"] == reply.ticket.id
    assert engine.snapshot().service("A").waiting_normal == 1


@pytest.mark.parametrize(
    ("booked", "code"),
    [
        ("09:31", ErrorCode.APPOINTMENT_TOO_EARLY),
        ("09:30", None),
        ("08:00", None),
        ("07:59", ErrorCode.APPOINTMENT_TOO_LATE),
    ],
)
def test_check_in_window_edges(
    engine: Engine, tmp_path: Path, booked: str, code: ErrorCode | None
) -> None:
    # The clock reads 09:00; the window is 30 minutes early to 60 minutes late.
    book(engine, tmp_path, f"AB12,Budi,A,2026-12-04,{booked}\n")

    reply = send(engine, KIOSK, CommandKind.CHECK_IN, code="AB12").reply

    assert reply.error is code, reply.message


def test_check_in_other_day_rejected(engine: Engine, tmp_path: Path) -> None:
    book(engine, tmp_path, "AB12,Budi,A,2026-12-05,09:00\n")

    reply = send(engine, KIOSK, CommandKind.CHECK_IN, code="AB12").reply

    assert reply.error is ErrorCode.APPOINTMENT_TOO_EARLY
    assert "check in from 2026-12-05 08:30" in reply.message


def test_check_in_twice_rejected(engine: Engine, tmp_path: Path) -> None:
    book(engine, tmp_path, "AB12,Budi,A,2026-12-04,09:00\n")
    first = send(engine, KIOSK, CommandKind.CHECK_IN, code="AB12").reply

    again = send(engine, OTHER_KIOSK, CommandKind.CHECK_IN, code="AB12").reply

    assert first.ok
    assert again.error is ErrorCode.APPOINTMENT_USED
    assert "with ticket A-001" in again.message
    assert engine.snapshot().service("A").issued == 1


def test_unknown_code_rejected(engine: Engine) -> None:
    reply = send(engine, KIOSK, CommandKind.CHECK_IN, code="NOPE1234").reply

    assert reply.error is ErrorCode.APPOINTMENT_NOT_FOUND
    assert "NOPE1234" in reply.message


def test_check_in_ignores_quota(engine: Engine, tmp_path: Path) -> None:
    for _ in range(60):
        assert send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A").reply.ok
    book(engine, tmp_path, "AB12,Budi,A,2026-12-04,09:00\n")

    reply = send(engine, KIOSK, CommandKind.CHECK_IN, code="AB12").reply

    assert reply.ok, reply.message
    assert reply.ticket.label == "A-061"


def test_appointment_goes_first_in_window(
    engine: Engine, tmp_path: Path, clock: Clock
) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")
    book(engine, tmp_path, "AB12,Budi,A,2026-12-04,09:10\n")
    clock.advance(minutes=1)
    send(engine, KIOSK, CommandKind.CHECK_IN, code="AB12")
    policy = appointments_first(strict_priority)
    late = Engine(engine.site, engine.store, clock=clock, policy=policy)

    clock.advance(minutes=5)
    before_booked = send(late, OPERATOR, CommandKind.NEXT, counter=2).reply
    clock.advance(minutes=10)
    in_window = send(late, OPERATOR, CommandKind.NEXT, counter=3).reply

    assert before_booked.ticket.label == "A-001"
    assert in_window.ticket.label == "A-002"


def test_appointment_first_passes_earlier_walk_in(
    engine: Engine, tmp_path: Path, clock: Clock
) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")
    book(engine, tmp_path, "AB12,Budi,A,2026-12-04,09:00\n")
    clock.advance(minutes=1)
    send(engine, KIOSK, CommandKind.CHECK_IN, code="AB12")
    policy = appointments_first(strict_priority)
    ordered = Engine(engine.site, engine.store, clock=clock, policy=policy)

    reply = send(ordered, OPERATOR, CommandKind.NEXT, counter=2).reply

    assert reply.ticket.label == "A-002"


def test_kiosk_may_check_in(engine: Engine) -> None:
    reply = send(engine, KIOSK, CommandKind.CHECK_IN, code="NOPE1234").reply

    assert reply.error is not ErrorCode.FORBIDDEN


# --- not printed and reprint ---


def test_print_failed_leaves_waiting_count(engine: Engine) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="B")
    assert engine.snapshot().service("B").waiting_normal == 1

    reply = send(
        engine, KIOSK, CommandKind.PRINT_FAILED, ticket="B-001", reason="paper_out"
    ).reply

    assert reply.ok, reply.message
    assert reply.ticket.status is TicketStatus.NOT_PRINTED
    load = engine.snapshot().service("B")
    assert load.waiting_normal == 0
    assert load.issued == 1
    assert engine.store.ticket("20261204-B001")["status"] == "not_printed"
    event = engine.store.db.execute(
        "SELECT data FROM events WHERE kind = 'print_failed'"
    ).fetchone()
    assert event == ('{"reason": "paper_out"}',)


def test_not_printed_ticket_never_called(engine: Engine) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")
    send(engine, KIOSK, CommandKind.PRINT_FAILED, ticket="A-001")

    reply = send(engine, OPERATOR, CommandKind.NEXT, counter=2).reply

    assert reply.error is ErrorCode.NOBODY_WAITING


def test_print_failed_only_from_issuing_kiosk(engine: Engine) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")

    reply = send(engine, OTHER_KIOSK, CommandKind.PRINT_FAILED, ticket="A-001").reply

    assert reply.error is ErrorCode.FORBIDDEN
    assert "issued by kiosk-1, not kiosk-2" in reply.message
    assert engine.snapshot().service("A").waiting_normal == 1


def test_print_failed_repeat_is_harmless(engine: Engine) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")
    first = send(engine, KIOSK, CommandKind.PRINT_FAILED, ticket="A-001").reply

    second = send(engine, KIOSK, CommandKind.PRINT_FAILED, ticket="A-001").reply

    assert first.ok
    assert second.ok
    assert "already out of the queue" in second.message


def test_reprint_restores_place_and_asks_kiosk(engine: Engine, clock: Clock) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")
    clock.advance(minutes=1)
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")
    send(engine, KIOSK, CommandKind.PRINT_FAILED, ticket="A-001")
    clock.advance(minutes=5)

    outcome = send(engine, OPERATOR, CommandKind.REPRINT, ticket="A-001", counter=2)

    assert outcome.reply.ok, outcome.reply.message
    assert outcome.reply.ticket.status is TicketStatus.WAITING
    [(kiosk, request)] = outcome.prints
    assert kiosk == "kiosk-1"
    assert request.ticket.label == "A-001"
    assert request.counter == 2
    assert request.counter_name == "Loket 2"
    assert request.command_id == outcome.reply.command_id
    called = send(engine, OPERATOR, CommandKind.NEXT, counter=2).reply
    assert called.ticket.label == "A-001"


def test_reprint_of_waiting_ticket_prints_again(engine: Engine) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="C")

    outcome = send(engine, OPERATOR, CommandKind.REPRINT, ticket="C-001", counter=4)

    assert outcome.reply.ok
    assert len(outcome.prints) == 1
    assert engine.snapshot().service("C").waiting_normal == 1


@pytest.mark.parametrize(
    ("setup", "code", "text"),
    [
        ("called", ErrorCode.NOT_REPRINTABLE, "is called"),
        ("operator", ErrorCode.NOT_REPRINTABLE, "not issued at a kiosk"),
        ("none", ErrorCode.UNKNOWN_TICKET, "No ticket A-001 was issued today"),
    ],
)
def test_reprint_rejected(
    engine: Engine, setup: str, code: ErrorCode, text: str
) -> None:
    if setup == "called":
        send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")
        send(engine, OPERATOR, CommandKind.NEXT, counter=2)
    elif setup == "operator":
        send(engine, OPERATOR, CommandKind.ISSUE_TICKET, service="A")

    outcome = send(engine, OPERATOR, CommandKind.REPRINT, ticket="A-001", counter=2)

    assert outcome.reply.error is code
    assert text in outcome.reply.message
    assert outcome.prints == ()


def test_reprint_for_another_counter_forbidden(engine: Engine) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")
    counter_three = Source(Role.COUNTER, "3")

    outcome = send(
        engine, counter_three, CommandKind.REPRINT, ticket="A-001", counter=2
    )

    assert outcome.reply.error is ErrorCode.FORBIDDEN
    assert outcome.prints == ()


def test_kiosk_may_not_reprint(engine: Engine) -> None:
    send(engine, KIOSK, CommandKind.ISSUE_TICKET, service="A")

    outcome = send(engine, KIOSK, CommandKind.REPRINT, ticket="A-001", counter=2)

    assert outcome.reply.error is ErrorCode.FORBIDDEN


# --- site file ---


def test_site_window_defaults_and_bounds() -> None:
    site = load_site()
    assert (site.appointments.early_minutes, site.appointments.late_minutes) == (30, 60)

    data = {
        "site": {"id": "x", "name": "X"},
        "services": [
            {
                "code": "A",
                "name_id": "A",
                "name_en": "A",
                "minutes": 5,
                "daily_quota": 5,
            }
        ],
        "counters": [{"number": 1, "name": "L1", "services": ["A"]}],
        "appointments": {"early_minutes": 300},
    }
    with pytest.raises(SiteError) as caught:
        parse_site(data, "x.toml")

    assert "appointments.early_minutes: 300 is out of range" in str(caught.value)
    assert "Use a value from 0 to 240" in str(caught.value)


def test_print_topic_acl() -> None:
    from broker.security import acl_text

    rules = acl_text(load_site()).split("\n\n")
    engine_rules = next(r for r in rules if "user engine-lebong" in r)
    kiosk_rules = next(r for r in rules if "user kiosk-kiosk-1" in r)
    other_rules = next(r for r in rules if "user kiosk-kiosk-2" in r)

    assert "topic write antrean/lebong/print/#" in engine_rules
    assert "topic read antrean/lebong/print/kiosk-1" in kiosk_rules
    assert "print/kiosk-1" not in other_rules
