"""Commands that reach the engine together share one commit, and still act alone.

Each test holds the engine's database lock while its commands arrive, so they
wait in the engine's queue and are applied as one batch when it is released.
"""

from __future__ import annotations

import queue
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

import pytest

from broker.client import OfficeClient, new_command_id
from broker.contract import CallEvent, Command, CommandKind, ErrorCode, Reply, Role
from broker.service import DATABASE_NAME
from tests.conftest import Office

REPLY_TIMEOUT_S = 10.0
QUEUE_TIMEOUT_S = 5.0


def _issue(kiosk: OfficeClient, service: str, command_id: str = "") -> Future[Reply]:
    command = Command(
        CommandKind.ISSUE_TICKET, command_id or new_command_id("t"), service=service
    )
    return kiosk.send(command)


@contextmanager
def _batched(office: Office, kiosk: OfficeClient, waiting: int) -> Iterator[None]:
    """Make the next `waiting` commands sent in the block wait for one batch.

    A first command from `kiosk` takes the engine's attention while the test
    holds its database; the block's commands queue behind it until released.
    """
    engine = office.engine
    with engine._lock:
        received = engine.received
        first = _issue(kiosk, "A")
        _wait_for(lambda: engine.received > received and engine._received.empty())
        yield
        _wait_for(lambda: engine._received.qsize() >= waiting)
    assert first.result(REPLY_TIMEOUT_S).ok


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while not condition():
        assert time.monotonic() < deadline, "the commands never reached the engine"
        time.sleep(0.005)


def _rows(office: Office, sql: str) -> list[tuple]:
    with sqlite3.connect(office.data_dir / DATABASE_NAME) as connection:
        return connection.execute(sql).fetchall()


def test_batch_numbers_tickets_in_order(office: Office) -> None:
    kiosks = [office.client(Role.KIOSK, k.id) for k in office.site.kiosks]
    # Mosquitto keeps at most 20 unacknowledged messages in flight to a client
    # (its max_inflight_messages), so 19 can wait behind the first.
    with _batched(office, kiosks[0], waiting=19):
        futures = [_issue(kiosks[n % 2], "A") for n in range(19)]
    replies = [f.result(REPLY_TIMEOUT_S) for f in futures]

    assert office.engine.batch_sizes[19] == 1
    assert all(reply.ok for reply in replies)
    labels = sorted(reply.ticket.label for reply in replies)
    assert labels == [f"A-{n:03d}" for n in range(2, 21)]
    assert _rows(office, "SELECT COUNT(*) FROM tickets") == [(20,)]
    assert _rows(office, "SELECT COUNT(*) FROM commands") == [(20,)]


@pytest.mark.parametrize("resolution", ["ABORT", "ROLLBACK"])
def test_database_failure_spares_batch(office: Office, resolution: str) -> None:
    # ABORT undoes the failing statement; ROLLBACK undoes the whole transaction,
    # the savepoints of the commands before it included.
    trigger = (
        "CREATE TRIGGER reject_d BEFORE INSERT ON tickets WHEN NEW.service = 'D' "
        f"BEGIN SELECT RAISE({resolution}, 'rejected for the test'); END"
    )
    _rows(office, trigger)
    kiosk = office.client(Role.KIOSK, office.site.kiosks[0].id)
    with _batched(office, kiosk, waiting=3):
        before = _issue(kiosk, "A")
        failing = _issue(kiosk, "D", command_id="rejected-d")
        after = _issue(kiosk, "B")

    assert office.engine.batch_sizes[3] == 1
    assert before.result(REPLY_TIMEOUT_S).ticket.label == "A-002"
    rejected = failing.result(REPLY_TIMEOUT_S)
    assert rejected.error is ErrorCode.UNAVAILABLE
    assert "nothing was changed" in rejected.message
    assert after.result(REPLY_TIMEOUT_S).ticket.label == "B-001"
    tickets = _rows(office, "SELECT label FROM tickets ORDER BY label")
    assert tickets == [("A-001",), ("A-002",), ("B-001",)]
    commands = _rows(office, "SELECT command_id FROM commands WHERE ok = 1")
    assert len(commands) == 3

    # The rejected command left no trace, so sending it again applies it.
    _rows(office, "DROP TRIGGER reject_d")
    again = _issue(kiosk, "D", command_id="rejected-d").result(REPLY_TIMEOUT_S)
    assert again.ok
    assert again.ticket.label == "D-001"


def test_whole_rollback_announces_later_calls(office: Office) -> None:
    # SQLite ends the whole transaction by itself on some errors, such as
    # SQLITE_FULL or SQLITE_IOERR; RAISE(ROLLBACK) does the same. A Next after
    # the failing command must still be applied once and announced. One client
    # sends the three, so they reach the engine in this order.
    calls: queue.SimpleQueue[CallEvent] = queue.SimpleQueue()
    office.client(Role.DISPLAY, "hall", on_call=calls.put)
    kiosk = office.client(Role.KIOSK, office.site.kiosks[0].id)
    operator = office.client(Role.OPERATOR, "admin")
    for _ in range(2):
        assert _issue(kiosk, "B").result(REPLY_TIMEOUT_S).ok
    _rows(
        office,
        "CREATE TRIGGER reject_d BEFORE INSERT ON tickets WHEN NEW.service = 'D' "
        "BEGIN SELECT RAISE(ROLLBACK, 'rejected for the test'); END",
    )
    with _batched(office, kiosk, waiting=3):
        before = operator.send(_next(2))
        failing = _issue(operator, "D")
        after = operator.send(_next(3))

    assert office.engine.batch_sizes[3] == 1
    assert before.result(REPLY_TIMEOUT_S).ok
    assert not failing.result(REPLY_TIMEOUT_S).ok
    assert after.result(REPLY_TIMEOUT_S).ok
    announced = set()
    deadline = time.monotonic() + QUEUE_TIMEOUT_S
    while len(announced) < 2 and time.monotonic() < deadline:
        try:
            announced.add(calls.get(timeout=0.1).counter)
        except queue.Empty:
            pass
    assert 2 in announced
    assert 3 in announced
    assert _rows(office, "SELECT COUNT(*) FROM events WHERE kind = 'call'") == [(2,)]


def _next(counter: int) -> Command:
    return Command(CommandKind.NEXT, new_command_id("n"), counter=counter)
