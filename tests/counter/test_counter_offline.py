"""A counter terminal across a lost connection: every press is applied exactly once
or reported as failed, with the real Mosquitto stopped and started again."""

from __future__ import annotations

import sqlite3

from counter_helpers import commands_of_kind, issue, pump_until, ticket_row

from broker.contract import CommandKind, TicketStatus
from broker.mosquitto import start_mosquitto
from broker.service import DATABASE_NAME
from counter.controller import STATUS_CONNECTED, STATUS_NO_BROKER
from counter.outbox import OFFLINE_QUEUE_S, Delivery

RECONNECT_S = 30.0


def call_events(office, label: str) -> int:
    """Count the call events of a ticket in the engine's database."""
    path = office.data_dir / DATABASE_NAME
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM events JOIN tickets ON tickets.id = events.ticket_id "
            "WHERE events.kind = 'call' AND tickets.label = ?",
            [label],
        ).fetchone()
    return int(row[0])


def test_next_pressed_offline_is_sent_after_restart(office, kiosk, counter2):
    issue(kiosk, "A")
    issue(kiosk, "A")
    office.broker.stop()
    assert pump_until(lambda: counter2.status_text == STATUS_NO_BROKER)

    assert counter2.press("next") is True
    assert counter2.busy
    assert counter2.queued
    assert counter2.feedback_kind == "warning"
    assert counter2.feedback.startswith("Offline: Panggil Berikutnya dikirim")
    # A second press while the first waits is refused, not queued behind it.
    assert counter2.press("next") is False
    assert counter2.outbox.pending.delivery is Delivery.QUEUED

    restarted = start_mosquitto(office.site, office.data_dir)
    try:
        assert pump_until(lambda: counter2.ticket_label == "A-001", timeout=RECONNECT_S)
        assert counter2.status_text == STATUS_CONNECTED
        assert pump_until(lambda: not counter2.busy)
        assert not counter2.queued
        assert counter2.feedback == "A-001 called to Loket 2."
        assert commands_of_kind(office, CommandKind.NEXT) == 1
        assert call_events(office, "A-001") == 1
        assert ticket_row(office, "A-002")["status"] == TicketStatus.WAITING.value
    finally:
        counter2.stop()
        restarted.stop()


def test_next_without_reply_is_resent_once(office, kiosk, counter2):
    """The engine applies Next while the broker is down, so its reply is lost.

    The terminal sends the same command id again after the restart and gets the
    stored reply: A-001 is called once, and A-002 stays waiting.
    """
    issue(kiosk, "A")
    issue(kiosk, "A")
    counter2.reply_timeout_s = 2.0
    engine_lock = office.engine._lock
    engine_lock.acquire()
    try:
        assert counter2.press("next") is True
        assert pump_until(lambda: counter2.outbox.pending.delivery is Delivery.SENT)
        office.broker.stop()
    finally:
        # The held command is applied now, and its reply has no broker to go to.
        engine_lock.release()
    assert pump_until(lambda: commands_of_kind(office, CommandKind.NEXT) == 1)
    assert pump_until(
        lambda: counter2.outbox.pending.delivery is Delivery.IN_DOUBT, timeout=15.0
    )
    assert counter2.busy
    assert "dikirim ulang" in counter2.feedback

    restarted = start_mosquitto(office.site, office.data_dir)
    try:
        assert pump_until(lambda: counter2.ticket_label == "A-001", timeout=RECONNECT_S)
        assert pump_until(lambda: not counter2.busy)
        assert counter2.outbox.pending is None
        assert counter2.feedback == "A-001 called to Loket 2."
        assert commands_of_kind(office, CommandKind.NEXT) == 1
        assert call_events(office, "A-001") == 1
        assert ticket_row(office, "A-002")["status"] == TicketStatus.WAITING.value
    finally:
        counter2.stop()
        restarted.stop()


def test_queued_press_is_given_up_and_reported(office, kiosk, counter2):
    issue(kiosk, "A")
    ticks = [1000.0]
    counter2._monotonic = lambda: ticks[0]
    office.broker.stop()
    assert pump_until(lambda: not counter2.connected)

    assert counter2.press("finish") is True
    ticks[0] += OFFLINE_QUEUE_S + 1
    counter2.tick()

    assert not counter2.busy
    assert counter2.outbox.pending is None
    assert counter2.feedback_kind == "error"
    assert counter2.feedback.startswith("Selesai TIDAK terkirim")
    assert "NOT sent" in counter2.feedback

    restarted = start_mosquitto(office.site, office.data_dir)
    try:
        assert pump_until(lambda: counter2.connected, timeout=RECONNECT_S)
        # A later command's reply comes after anything sent before it.
        assert counter2.press("next") is True
        assert pump_until(lambda: counter2.ticket_label == "A-001")
        assert commands_of_kind(office, CommandKind.FINISH) == 0
    finally:
        counter2.stop()
        restarted.stop()


def test_stopped_engine_queues_press(office, kiosk, counter2):
    issue(kiosk, "B")
    office.engine.stop()
    assert pump_until(lambda: not counter2.connected)

    assert counter2.press("next") is True

    assert counter2.queued
    assert counter2.outbox.pending.delivery is Delivery.QUEUED
    assert commands_of_kind(office, CommandKind.NEXT) == 0
