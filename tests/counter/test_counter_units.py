"""The counter terminal's parts that need no office: keymap, lists, login form,
outbox, alerts and the texts computed from a state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from broker.contract import (
    Command,
    CommandKind,
    CounterAvailability,
    CounterState,
    DeviceStatus,
    OfficeState,
    Role,
    ServiceLoad,
    TicketStatus,
    TicketView,
    WaitingTicket,
)
from broker.site import Lane, load_site
from counter import views
from counter.alerts import AlertBoard, AlertLevel, alert_for
from counter.chooser import PAGE_SIZE, Choice, Chooser
from counter.keypad import (
    DIRECT_COMMANDS,
    WORK_KEYS,
    Action,
    action_for_symbol,
    key_names,
    key_symbol,
    parse_action,
)
from counter.login import LoginForm
from counter.outbox import OFFLINE_QUEUE_S, RESEND_AFTER_S, Delivery, Outbox, OutboxBusy

SITE = load_site()
NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)  # 10:00 in Lebong


# Keypad ------------------------------------------------------------------------


def test_keypad_and_keyboard_keys_match():
    pairs = [(13, 271), (43, 270), (45, 269), (42, 268), (47, 267), (46, 266)]
    for keyboard, keypad in pairs:
        assert key_symbol(keyboard) == key_symbol(keypad), keyboard
    for digit in range(10):
        assert key_symbol(48 + digit) == str(digit)
        assert key_symbol(256 + digit) == str(digit)
    assert key_symbol(ord("a")) is None


def test_every_action_has_a_key():
    assert set(WORK_KEYS.values()) == set(Action)
    assert action_for_symbol("enter") is Action.NEXT
    assert action_for_symbol("0") is Action.START
    assert action_for_symbol("/") is Action.TRANSFER
    assert action_for_symbol("9") is Action.LOGOUT
    assert action_for_symbol("5") is None
    assert key_names(Action.NEXT) == "Enter  /  +"
    assert key_names(Action.RECALL) == ".  (titik)"


def test_direct_actions_send_commands():
    assert DIRECT_COMMANDS[Action.START] is CommandKind.START
    assert Action.TRANSFER not in DIRECT_COMMANDS
    assert parse_action("no_show") is Action.NO_SHOW
    with pytest.raises(ValueError, match="Use one of next, recall"):
        parse_action("issue_ticket")


# Chooser ------------------------------------------------------------------------


def test_chooser_pick_and_confirm():
    chooser = Chooser()
    chooser.show("call", "Panggil", "Call", [Choice(f"A-00{n}", "", n) for n in (1, 2)])

    assert chooser.open
    assert chooser.picked == -1
    assert chooser.press("enter") is None
    assert chooser.open
    chooser.press("2")
    assert [row["picked"] for row in chooser.rows] == [False, True]
    assert chooser.press("enter") == 2
    assert not chooser.open


def test_chooser_single_choice_preselected():
    chooser = Chooser()
    chooser.show("logout", "Keluar", "Log out", [Choice("Ya", "", True)])

    assert chooser.press("enter") is True


def test_chooser_pages_and_cancel():
    chooser = Chooser()
    choices = [Choice(str(n), "", n) for n in range(PAGE_SIZE + 3)]
    chooser.show("call", "", "", choices)

    assert chooser.pages == 2
    assert len(chooser.rows) == PAGE_SIZE
    chooser.press("+")
    assert [row["text"] for row in chooser.rows] == ["9", "10", "11"]
    chooser.press("5")  # past the end of this page: ignored
    assert chooser.picked == -1
    chooser.press("2")
    assert chooser.press("enter") == 10

    chooser.show("call", "", "", choices)
    chooser.press("-")
    assert not chooser.open
    assert chooser.rows == []


# Login form ----------------------------------------------------------------------


def test_login_form_typing():
    form = LoginForm()
    for symbol, text in [("", "b"), ("", "u"), ("1", "1"), (".", ""), ("2", "2")]:
        assert form.type(symbol, text) is False
    assert form.officer == "bu2"

    assert form.type("enter") is False
    assert form.field == "pin"
    for digit in "123456789":
        form.type(digit)
    assert form.pin == "12345678"
    assert form.pin_mask == "\u2022" * 8
    assert form.type("", "x") is False
    assert form.pin == "12345678"
    assert form.type("enter") is True
    assert form.ready()


def test_login_form_clear_and_back():
    form = LoginForm()
    form.type("7")
    form.type("+")
    form.type("4")

    form.type("-")
    assert form.pin == ""
    assert form.field == "pin"
    form.type("-")
    assert form.field == "officer"
    form.type("escape")
    assert form.officer == ""


def test_login_form_rejects_short_pin():
    form = LoginForm()
    form.type("1")
    form.type("enter")
    form.type("1")
    form.type("2")

    assert form.type("enter") is True
    assert not form.ready()


# Outbox ---------------------------------------------------------------------------


def _command(kind: CommandKind = CommandKind.NEXT) -> Command:
    return Command(kind, "c-1", counter=2)


def test_outbox_keeps_one_command():
    outbox = Outbox()
    outbox.add(_command(), "Next", 0.0)

    with pytest.raises(OutboxBusy):
        outbox.add(_command(CommandKind.FINISH), "Finish", 1.0)
    assert outbox.due(0.0)
    outbox.mark_sent()
    assert not outbox.due(100.0)
    assert outbox.resolve("other") is None
    assert outbox.resolve("c-1").title == "Next"
    assert outbox.pending is None


def test_outbox_resends_in_doubt():
    outbox = Outbox()
    outbox.add(_command(), "Next", 0.0)
    outbox.mark_sent()

    outbox.mark_no_reply(10.0)
    assert outbox.pending.delivery is Delivery.IN_DOUBT
    assert not outbox.due(10.0)
    assert outbox.due(10.0 + RESEND_AFTER_S)
    # A command in doubt is never given up, however long it waits.
    assert outbox.expire(10.0 + 10 * OFFLINE_QUEUE_S) is None
    outbox.mark_unsent()
    assert outbox.pending.delivery is Delivery.IN_DOUBT
    assert outbox.pending.command.command_id == "c-1"


def test_outbox_expires_unsent_only():
    outbox = Outbox()
    outbox.add(_command(), "Next", 0.0)
    outbox.mark_unsent()
    assert outbox.pending.delivery is Delivery.QUEUED

    assert outbox.expire(OFFLINE_QUEUE_S - 1) is None
    assert outbox.expire(OFFLINE_QUEUE_S).title == "Next"
    assert outbox.pending is None


# Alerts ----------------------------------------------------------------------------


def _status(role: Role, device: str, online: bool = True, **detail) -> DeviceStatus:
    return DeviceStatus(role, device, online, NOW, detail)


def test_printer_alerts():
    low = alert_for(SITE, _status(Role.KIOSK, "kiosk-2", printer="paper_low"))
    error = alert_for(
        SITE, _status(Role.KIOSK, "kiosk-1", printer="error", printer_error="no port")
    )

    assert low.level is AlertLevel.WARNING
    assert low.text_id == "Kiosk ruang tunggu: kertas hampir habis"
    assert error.level is AlertLevel.ERROR
    assert error.text_en == "Kiosk pintu masuk: printer error: no port"
    assert alert_for(SITE, _status(Role.KIOSK, "kiosk-1", printer="online")) is None
    assert alert_for(SITE, _status(Role.KIOSK, "kiosk-1", printer="unknown")) is None


def test_offline_devices_alert():
    kiosk = alert_for(SITE, _status(Role.KIOSK, "kiosk-1", online=False))
    display = alert_for(SITE, _status(Role.DISPLAY, "hall", online=False))

    assert kiosk.level is AlertLevel.ERROR
    assert kiosk.text_en == "Kiosk pintu masuk: offline"
    assert display.level is AlertLevel.WARNING
    assert alert_for(SITE, _status(Role.DISPLAY, "hall")) is None
    assert alert_for(SITE, _status(Role.COUNTER, "3", online=False)) is None


def test_alert_board_orders_and_clears():
    board = AlertBoard(SITE)
    assert board.apply(_status(Role.DISPLAY, "hall", online=False))
    assert board.apply(_status(Role.KIOSK, "kiosk-2", printer="paper_out"))
    assert not board.apply(_status(Role.KIOSK, "kiosk-2", printer="paper_out"))

    assert [a.level for a in board.alerts()] == [AlertLevel.ERROR, AlertLevel.WARNING]
    assert board.apply(_status(Role.KIOSK, "kiosk-2", printer="online"))
    assert [a.device for a in board.alerts()] == ["display/hall"]
    assert not board.apply(_status(Role.KIOSK, "kiosk-1", printer="online"))


# Views --------------------------------------------------------------------------------


def _entry(
    label: str, service: str, lane: Lane = Lane.NORMAL, **fields
) -> WaitingTicket:
    return WaitingTicket(label, service, lane, NOW - timedelta(minutes=12), **fields)


def _state(**fields) -> OfficeState:
    return OfficeState(SITE.id, NOW, "2026-12-04", **fields)


def test_waiting_rows_follow_counter():
    state = _state(
        waiting=(
            _entry("A-001", "A"),
            _entry("C-001", "C"),
            _entry("A-002", "A", Lane.PRIORITY, category="lansia"),
            _entry("B-001", "B", target_counter=3),
            _entry("B-002", "B"),
        )
    )

    rows = views.waiting_rows(SITE, state, SITE.counter(2))
    labels = [row["label"] for row in rows]

    assert labels == ["A-001", "B-002"]
    assert rows[0] == {
        "label": "A-001",
        "service": "Paspor Baru",
        "priority": False,
        "waited": "12 mnt",
    }
    counter1 = [r["label"] for r in views.waiting_rows(SITE, state, SITE.counter(1))]
    assert counter1 == ["A-001", "C-001", "A-002", "B-002"]
    counter3 = [r["label"] for r in views.waiting_rows(SITE, state, SITE.counter(3))]
    assert counter3 == ["A-001", "B-001", "B-002"]


def test_waiting_rows_are_bounded():
    entries = tuple(_entry(f"A-{n:03d}", "A") for n in range(1, 20))

    rows = views.waiting_rows(SITE, _state(waiting=entries), SITE.counter(2))

    assert len(rows) == views.WAITING_ROWS_SHOWN


def test_count_waiting_by_lane():
    state = _state(
        services=(
            ServiceLoad("A", 2, 1, 3, 60),
            ServiceLoad("B", 1, 0, 1, 60),
            ServiceLoad("C", 4, 2, 6, 100),
            ServiceLoad("D", 0, 5, 5, 80),
        ),
    )
    assert views.count_waiting(state, SITE.counter(1)) == 15
    assert views.count_waiting(state, SITE.counter(2)) == 3
    assert views.count_waiting(state, SITE.counter(4)) == 11
    priority_only = replace(SITE.counter(4), lanes=(Lane.PRIORITY,))
    assert views.count_waiting(state, priority_only) == 7
    assert views.waiting_summary(state, SITE.counter(2)) == "A 2 \u00b7 B 1"
    assert views.waiting_summary(state, SITE.counter(4)) == (
        "C 4 \u00b7 C prioritas 2 \u00b7 D prioritas 5"
    )


def test_availability_text():
    def text(availability, reason=""):
        return views.availability_text(
            CounterState(2, "Loket 2", None, availability, reason)
        )

    assert text(CounterAvailability.OPEN) == "Buka / Open"
    assert text(CounterAvailability.PAUSED, "Sholat") == "Jeda / Paused: Sholat"
    assert text(CounterAvailability.PAUSED) == "Jeda / Paused"
    assert text(CounterAvailability.CLOSED) == "Tutup / Closed"
    assert views.availability_text(None) == ""


def test_times_use_site_zone():
    assert views.format_called(datetime(2024, 5, 6, 2, 5, tzinfo=UTC), SITE) == (
        "dipanggil 09:05"
    )
    assert views.format_called(None, SITE) == ""
    ticket = TicketView(
        "t",
        "A-001",
        "A",
        Lane.NORMAL,
        TicketStatus.SERVING,
        NOW,
        called_at=NOW,
        served_at=NOW + timedelta(minutes=3),
    )
    assert views.ticket_time_text(ticket, SITE) == "dilayani sejak 10:03"


def test_format_elapsed():
    assert views.format_elapsed(timedelta(seconds=65)) == "01:05"
    assert views.format_elapsed(timedelta(hours=1, minutes=2, seconds=3)) == "1:02:03"
    assert views.format_elapsed(timedelta(seconds=-5)) == "00:00"


def test_transfer_choices_skip_own_counter():
    ticket = TicketView("t", "A-001", "A", Lane.NORMAL, TicketStatus.CALLED, NOW)

    choices = views.transfer_choices(SITE, ticket, SITE.counter(2))

    values = [choice.value for choice in choices]
    assert ("service", "A") not in values
    assert values[:3] == [("service", "B"), ("service", "C"), ("service", "D")]
    assert ("counter", 1) in values
    assert ("counter", 3) in values
    assert ("counter", 2) not in values
    # Counter 4 takes neither service A nor, for this ticket, its lane.
    assert ("counter", 4) not in values
