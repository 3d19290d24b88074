"""CounterController against a real Mosquitto and engine, without a window."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from counter_helpers import (
    commands_of_kind,
    issue,
    open_controller,
    pump_frames,
    pump_until,
    ticket_row,
)

from broker.client import OfficeClient
from broker.contract import (
    CommandKind,
    CounterState,
    OfficeState,
    Role,
    ServiceLoad,
    TicketStatus,
    TicketView,
)
from broker.mosquitto import start_mosquitto
from broker.site import Lane, load_site
from counter.controller import (
    ACTIONS,
    FEEDBACK_OFFLINE,
    KEYMAP,
    STATUS_CONNECTED,
    STATUS_NO_BROKER,
    STATUS_NO_ENGINE,
    CounterController,
    action_for_key,
    count_waiting,
    format_called,
    parse_action,
)


def test_controller_reports_connection(counter2):
    assert counter2.connected
    assert counter2.status_text == STATUS_CONNECTED
    assert counter2.counter_name == "Loket 2"
    assert counter2.ticket_label == ""
    assert counter2.action_hints["next"] == "Enter  /  +"


def test_waiting_count_follows_state(office, kiosk, counter2):
    issue(kiosk, "A")
    issue(kiosk, "B")
    issue(kiosk, "C")
    issue(kiosk, "A", category="lansia")

    # Counter 2 takes A and B in the normal lane only.
    assert pump_until(lambda: counter2.waiting_count == 2)
    counter1 = open_controller(office, 1)
    try:
        assert pump_until(lambda: counter1.waiting_count == 4)
    finally:
        counter1.stop()


def test_next_calls_first_ticket(office, kiosk, counter2):
    issue(kiosk, "A")
    issue(kiosk, "A")
    assert pump_until(lambda: counter2.waiting_count == 2)

    assert counter2.press("next") is True
    assert counter2.busy
    assert counter2.pending_action == "next"
    assert counter2.feedback == "Panggil Berikutnya \u2026"
    assert counter2.action_hints["next"] == "\u2026"

    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)
    assert counter2.pending_action == ""
    assert counter2.feedback == "A-001 called to Loket 2."
    assert counter2.feedback_kind == "ok"
    assert counter2.ticket_service == "Paspor Baru"
    assert counter2.ticket_priority is False
    assert pump_until(lambda: counter2.waiting_count == 1)

    called_at = datetime.fromisoformat(ticket_row(office, "A-001")["called_at"])
    local = called_at.astimezone(office.site.timezone)
    assert counter2.ticket_called == f"dipanggil {local:%H:%M}"
    assert re.fullmatch(r"dipanggil \d\d:\d\d", counter2.ticket_called)


def test_recall_calls_same_ticket_again(office, kiosk, counter2):
    issue(kiosk, "A")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    assert counter2.press(CommandKind.RECALL) is True
    assert pump_until(lambda: counter2.feedback == "A-001 called again.")
    assert counter2.ticket_label == "A-001"
    assert ticket_row(office, "A-001")["calls"] == 2


def test_no_show_clears_current_ticket(office, kiosk, counter2):
    issue(kiosk, "B")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "B-001")
    assert pump_until(lambda: not counter2.busy)

    assert counter2.press("no_show") is True
    assert pump_until(lambda: counter2.feedback == "B-001 marked as not present.")
    assert counter2.ticket_label == ""
    assert counter2.ticket_called == ""
    assert ticket_row(office, "B-001")["status"] == TicketStatus.NO_SHOW.value


def test_finish_clears_current_ticket(office, kiosk, counter2):
    issue(kiosk, "A")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    assert counter2.press("finish") is True
    assert pump_until(lambda: counter2.feedback == "A-001 finished.")
    assert counter2.ticket_label == ""
    assert counter2.feedback_kind == "ok"
    assert ticket_row(office, "A-001")["status"] == TicketStatus.FINISHED.value


def test_next_nobody_waiting_message(counter2):
    assert counter2.press("next") is True
    assert pump_until(lambda: counter2.feedback == "Nobody is waiting for Loket 2.")
    assert counter2.feedback_kind == "warning"
    assert counter2.ticket_label == ""
    assert not counter2.busy


def test_next_on_empty_queue_finishes(office, kiosk, counter2):
    issue(kiosk, "A")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    counter2.press("next")
    assert pump_until(lambda: counter2.feedback == "Nobody is waiting for Loket 2.")
    assert counter2.ticket_label == ""
    assert ticket_row(office, "A-001")["status"] == TicketStatus.FINISHED.value


def test_finish_without_ticket_message(counter2):
    counter2.press("finish")
    expected = "Loket 2 has no ticket called; press Next first."
    assert pump_until(lambda: counter2.feedback == expected)
    assert counter2.feedback_kind == "warning"


def test_priority_ticket_is_flagged(office, kiosk):
    issue(kiosk, "A")
    issue(kiosk, "A", category="lansia")
    counter1 = open_controller(office, 1)
    try:
        counter1.press("next")
        # The priority lane goes first although A-001 arrived earlier.
        assert pump_until(lambda: counter1.ticket_label == "A-002")
        assert counter1.ticket_priority is True
        assert counter1.ticket_category == "Lansia (60 tahun ke atas)"
    finally:
        counter1.stop()


def test_press_while_pending_sends_nothing(office, kiosk, counter2):
    issue(kiosk, "A")
    issue(kiosk, "A")
    assert counter2.press("next") is True
    assert counter2.press("next") is False
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)
    pump_frames()
    assert commands_of_kind(office, CommandKind.NEXT) == 1


def test_repeat_guard_ignores_second_press(office, kiosk, counter2):
    issue(kiosk, "A")
    issue(kiosk, "A")
    counter2.repeat_guard_s = 3600.0
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    assert counter2.press("next") is False
    assert counter2.feedback == "A-001 called to Loket 2."
    # Another action is not held back by the guard of Next.
    assert counter2.press("recall") is True
    assert pump_until(lambda: counter2.feedback == "A-001 called again.")

    counter2.repeat_guard_s = 0.0
    assert counter2.press("next") is True
    assert pump_until(lambda: counter2.ticket_label == "A-002")


def test_unknown_action_raises(counter2):
    counter2.feedback = "unchanged"
    with pytest.raises(ValueError, match="Use one of next, recall, no_show, finish"):
        counter2.press("transfer")
    assert counter2.feedback == "unchanged"
    assert not counter2.busy


def test_offline_broker_sends_nothing(office, kiosk, counter2):
    issue(kiosk, "A")
    office.broker.stop()
    # The engine's will may arrive first, so the engine-offline text can show
    # for a moment before the link drops.
    assert pump_until(lambda: counter2.status_text == STATUS_NO_BROKER)
    assert not counter2.connected
    assert all(counter2.action_hints[kind.value] == "Offline" for kind in ACTIONS)

    assert counter2.press("next") is False
    assert counter2.feedback == FEEDBACK_OFFLINE
    assert counter2.feedback_kind == "error"
    assert not counter2.busy
    assert commands_of_kind(office, CommandKind.NEXT) == 0


def test_reconnects_after_broker_restart(office, kiosk, counter2):
    issue(kiosk, "A")
    office.broker.stop()
    assert pump_until(lambda: not counter2.connected)

    restarted = start_mosquitto(office.site, office.data_dir)
    try:
        assert pump_until(lambda: counter2.connected, timeout=20.0)
        assert counter2.status_text == STATUS_CONNECTED
        assert counter2.press("next") is True
        assert pump_until(lambda: counter2.ticket_label == "A-001")
    finally:
        counter2.stop()
        restarted.stop()


def test_stopped_engine_shows_offline(office, counter2):
    office.engine.stop()
    assert pump_until(lambda: not counter2.connected)
    assert counter2.status_text == STATUS_NO_ENGINE
    assert counter2.press("finish") is False
    assert counter2.feedback == FEEDBACK_OFFLINE


def test_unanswered_command_reports_no_reply(office, counter2):
    office.engine.stop()
    assert pump_until(lambda: not counter2.connected)
    # A client with the engine's login says "online" but applies no command,
    # so the command is sent and its reply never comes.
    publisher = OfficeClient(
        office.site, Role.ENGINE, office.site.id, data_dir=office.data_dir
    )
    publisher.start()
    try:
        assert publisher.wait_connected(10)
        assert pump_until(lambda: counter2.connected)

        assert counter2.press("next") is True
        assert pump_until(lambda: not counter2.busy, timeout=15.0)
        assert counter2.feedback_kind == "error"
        assert counter2.feedback.startswith("Tidak ada jawaban dari server antrean.")
        assert "No reply from the engine" in counter2.feedback
    finally:
        publisher.stop()


def test_keys_map_to_actions():
    expected = {
        13: CommandKind.NEXT,
        271: CommandKind.NEXT,
        43: CommandKind.NEXT,
        270: CommandKind.NEXT,
        46: CommandKind.RECALL,
        266: CommandKind.RECALL,
        45: CommandKind.NO_SHOW,
        269: CommandKind.NO_SHOW,
        42: CommandKind.FINISH,
        268: CommandKind.FINISH,
    }
    for key, kind in expected.items():
        assert action_for_key(key) is kind, key
    assert set(KEYMAP) == set(expected)
    assert action_for_key(ord("a")) is None
    assert action_for_key(256) is None  # keypad 0


def test_held_key_acts_once(office, kiosk, counter2):
    issue(kiosk, "A")
    issue(kiosk, "A")
    assert counter2.handle_key_down(271) is True
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    # Auto-repeat: another key-down without a key-up is consumed and sends nothing.
    assert counter2.handle_key_down(271) is True
    assert not counter2.busy

    assert counter2.handle_key_up(271) is True
    assert counter2.handle_key_down(271) is True
    assert counter2.busy
    assert pump_until(lambda: counter2.ticket_label == "A-002")


def test_unmapped_key_is_not_consumed(counter2):
    assert counter2.handle_key_down(ord("x")) is False
    assert counter2.handle_key_up(ord("x")) is False
    assert not counter2.busy


def _state(site_id: str, at: datetime, label: str | None) -> OfficeState:
    current = None
    if label is not None:
        current = TicketView(
            id=f"x-{label}",
            label=label,
            service="B",
            lane=Lane.NORMAL,
            status=TicketStatus.CALLED,
            issued_at=at,
            counter=2,
            called_at=at,
        )
    return OfficeState(
        site=site_id,
        at=at,
        day=at.date().isoformat(),
        counters=(CounterState(2, "Loket 2", current),),
        services=(ServiceLoad("B", 3, 1, 10, 60),),
    )


def test_late_state_is_ignored():
    site = load_site()
    controller = CounterController(site, site.counter(2))
    now = datetime(2024, 5, 6, 2, 0, tzinfo=UTC)

    controller.receive_state(_state(site.id, now, "B-002"))
    assert pump_until(lambda: controller.ticket_label == "B-002")
    assert controller.ticket_service == "Penggantian Paspor"
    assert controller.ticket_called == "dipanggil 09:00"
    assert controller.waiting_count == 3

    controller.receive_state(_state(site.id, now - timedelta(seconds=1), "B-001"))
    controller.receive_state(_state("other-site", now + timedelta(seconds=1), None))
    pump_frames()
    assert controller.ticket_label == "B-002"

    # Far older than the newest: the engine's clock was set back.
    controller.receive_state(_state(site.id, now - timedelta(hours=1), None))
    assert pump_until(lambda: controller.ticket_label == "")


def test_count_waiting_by_lane():
    site = load_site()
    state = OfficeState(
        site=site.id,
        at=datetime(2024, 5, 6, 2, 0, tzinfo=UTC),
        day="2024-05-06",
        services=(
            ServiceLoad("A", 2, 1, 3, 60),
            ServiceLoad("B", 1, 0, 1, 60),
            ServiceLoad("C", 4, 2, 6, 100),
            ServiceLoad("D", 0, 5, 5, 80),
        ),
    )
    assert count_waiting(state, site.counter(1)) == 15
    assert count_waiting(state, site.counter(2)) == 3
    assert count_waiting(state, site.counter(4)) == 11
    priority_only = replace(site.counter(4), lanes=(Lane.PRIORITY,))
    assert count_waiting(state, priority_only) == 7


def test_called_time_uses_site_zone():
    site = load_site()
    assert format_called(datetime(2024, 5, 6, 2, 5, tzinfo=UTC), site) == (
        "dipanggil 09:05"
    )
    assert format_called(None, site) == ""


def test_parse_action_values_and_kinds():
    assert parse_action("no_show") is CommandKind.NO_SHOW
    assert parse_action(CommandKind.FINISH) is CommandKind.FINISH
    with pytest.raises(ValueError, match="'issue_ticket' is not a counter action"):
        parse_action("issue_ticket")
