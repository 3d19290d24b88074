"""CounterController against a real Mosquitto and engine, without a window."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from counter_helpers import (
    commands_of_kind,
    issue,
    open_controller,
    pump_frames,
    pump_until,
    ticket_row,
    type_keys,
)
from officer_logins import OFFICER_PIN

from broker.client import new_command_id
from broker.contract import (
    Command,
    CommandKind,
    CounterState,
    OfficeState,
    Role,
    ServiceLoad,
    TicketStatus,
    TicketView,
)
from broker.site import Lane, load_site
from counter.controller import STATUS_CONNECTED, CounterController

KEYPAD_ENTER = 271


# Login -------------------------------------------------------------------------


def test_login_by_keypad(office):
    controller = open_controller(office, 2, logged_in=False)
    try:
        assert controller.connected
        assert controller.status_text == STATUS_CONNECTED
        assert not controller.logged_in
        assert controller.press("next") is False
        assert controller.feedback == "Masuk dulu. / Log in first."

        type_keys(controller, "petugas2")
        assert controller.login.officer == "petugas2"
        type_keys(controller, "\n24")
        assert controller.login.field == "pin"
        assert controller.login.pin_mask == "\u2022\u2022"
        type_keys(controller, "68\n")

        assert pump_until(lambda: controller.logged_in)
        assert controller.officer_id == "petugas2"
        assert controller.officer_name == "Petugas Loket 2"
        assert controller.availability == "open"
        assert controller.availability_text == "Buka / Open"
        assert controller.login.pin == ""
    finally:
        controller.stop()


def test_login_wrong_pin_stays_out(office):
    controller = open_controller(office, 2, logged_in=False)
    try:
        type_keys(controller, "petugas2\n1111\n")

        assert pump_until(lambda: controller.feedback.startswith("Officer id or PIN"))
        assert controller.feedback_kind == "error"
        assert not controller.logged_in
        assert controller.login.field == "pin"
        assert controller.login.pin == ""
        assert controller.login.officer == "petugas2"
    finally:
        controller.stop()


def test_login_offline_is_refused(office):
    controller = open_controller(office, 2, logged_in=False)
    try:
        office.engine.stop()
        assert pump_until(lambda: not controller.connected)

        type_keys(controller, f"petugas2\n{OFFICER_PIN}\n")

        assert controller.feedback.startswith("Offline: masuk butuh server antrean.")
        assert controller.login.pin == ""
        assert not controller.busy
    finally:
        controller.stop()


def test_logout_by_key_and_enter(office, kiosk, counter2):
    type_keys(counter2, "9")
    assert counter2.chooser.open
    assert counter2.chooser.rows[0]["text"] == "Ya, keluar / Yes, log out"

    counter2.handle_key_down(KEYPAD_ENTER)
    counter2.handle_key_up(KEYPAD_ENTER)

    assert pump_until(lambda: not counter2.logged_in)
    assert counter2.availability == "closed"
    assert not counter2.chooser.open


def test_logout_with_ticket_is_refused(office, kiosk, counter2):
    issue(kiosk, "A")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    counter2.press("logout")
    counter2.choose("enter")

    assert pump_until(lambda: "A-001 is still at Loket 2" in counter2.feedback)
    assert counter2.feedback_kind == "warning"
    assert counter2.logged_in


# Actions -------------------------------------------------------------------------


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
    assert re.fullmatch(r"\d\d:\d\d", counter2.ticket_elapsed)
    assert ticket_row(office, "A-001")["officer"] == "petugas2"


def test_recall_calls_same_ticket_again(office, kiosk, counter2):
    issue(kiosk, "A")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    assert counter2.press("recall") is True
    assert pump_until(lambda: counter2.feedback == "A-001 called again.")
    assert counter2.ticket_label == "A-001"
    assert ticket_row(office, "A-001")["calls"] == 2


def test_no_show_clears_and_counts(office, kiosk, counter2):
    issue(kiosk, "B")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "B-001")
    assert pump_until(lambda: not counter2.busy)

    assert counter2.press("no_show") is True
    assert pump_until(lambda: counter2.feedback == "B-001 marked as not present.")
    assert counter2.ticket_label == ""
    assert counter2.ticket_called == ""
    assert ticket_row(office, "B-001")["status"] == TicketStatus.NO_SHOW.value
    assert pump_until(lambda: counter2.no_show_count == 1)
    assert counter2.served_count == 0


def test_start_then_finish_counts_served(office, kiosk, counter2):
    issue(kiosk, "A")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    assert counter2.handle_key_down(ord("0"), "0") is True
    assert pump_until(lambda: counter2.feedback == "Serving A-001.")
    assert counter2.ticket_serving
    assert counter2.ticket_called.startswith("dilayani sejak ")
    assert ticket_row(office, "A-001")["status"] == TicketStatus.SERVING.value
    counter2.handle_key_up(ord("0"))

    counter2.press("finish")
    assert pump_until(lambda: counter2.feedback == "A-001 finished.")
    assert counter2.ticket_label == ""
    row = ticket_row(office, "A-001")
    assert row["status"] == TicketStatus.FINISHED.value
    assert row["served_at"] > row["called_at"]
    assert pump_until(lambda: counter2.served_count == 1)


def test_call_chosen_ticket_from_list(office, kiosk, counter2):
    for _ in range(3):
        issue(kiosk, "B")
    assert pump_until(lambda: len(counter2.waiting_rows) == 3)
    assert [row["label"] for row in counter2.waiting_rows] == [
        "B-001",
        "B-002",
        "B-003",
    ]

    type_keys(counter2, "1")
    assert counter2.chooser.open
    assert counter2.chooser.title == "Panggil Nomor"
    assert [row["text"] for row in counter2.chooser.rows] == ["B-001", "B-002", "B-003"]
    type_keys(counter2, "3\n")

    assert pump_until(lambda: counter2.ticket_label == "B-003")
    assert not counter2.chooser.open
    assert ticket_row(office, "B-001")["status"] == TicketStatus.WAITING.value
    assert pump_until(lambda: counter2.waiting_count == 2)


def test_transfer_to_counter_by_list(office, kiosk, counter2):
    issue(kiosk, "A")
    counter2.press("next")
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)
    counter3 = open_controller(office, 3)
    try:
        counter2.press("transfer")
        texts = [row["text"] for row in counter2.chooser.rows]
        assert counter2.chooser.title == "Alihkan A-001 ke"
        assert "Loket 3" in texts
        assert "Loket 2" not in texts
        assert texts[0] == "Layanan B: Penggantian Paspor"
        counter2.pick(texts.index("Loket 3"))

        assert pump_until(lambda: counter2.feedback == "A-001 transferred to Loket 3.")
        assert counter2.ticket_label == ""
        assert pump_until(
            lambda: [r["label"] for r in counter3.waiting_rows] == ["A-001"]
        )
        assert counter2.waiting_rows == []
    finally:
        counter3.stop()


def test_transfer_without_ticket_warns(counter2):
    assert counter2.press("transfer") is False
    assert not counter2.chooser.open
    assert counter2.feedback == "Tidak ada nomor dipanggil. / No ticket is called."


def test_pause_with_reason_then_resume(office, counter2):
    counter2.press("pause")
    assert counter2.chooser.open
    assert counter2.chooser.rows[0]["text"] == "Istirahat"
    type_keys(counter2, "1\n")

    assert pump_until(lambda: counter2.availability == "paused")
    assert counter2.availability_text == "Jeda / Paused: Istirahat"

    counter2.press("pause")
    assert not counter2.chooser.open
    assert pump_until(lambda: counter2.availability == "open")


def test_reprint_lists_unprinted_ticket(office, kiosk, counter2):
    ticket = issue(kiosk, "A")
    # The state follows each reply, so the wait below starts from this one.
    assert pump_until(lambda: counter2.waiting_count == 1)
    failed = Command(
        CommandKind.PRINT_FAILED, new_command_id("kiosk-1"), ticket=ticket.label
    )
    assert kiosk.request(failed).ok

    assert pump_until(lambda: counter2.waiting_count == 0)
    counter2.press("reprint")
    assert counter2.chooser.rows[0]["text"] == "A-001"
    assert counter2.chooser.rows[0]["detail"] == "Belum tercetak / Not printed"
    counter2.choose("enter")

    assert pump_until(lambda: "A-001 is in the queue" in counter2.feedback)
    assert ticket_row(office, "A-001")["status"] == TicketStatus.WAITING.value
    assert commands_of_kind(office, CommandKind.REPRINT) == 1


def test_empty_list_warns(counter2):
    assert counter2.press("call") is False
    assert counter2.feedback == "Tidak ada pilihan. / Nothing to choose from."


def test_chooser_cancel_sends_nothing(office, kiosk, counter2):
    issue(kiosk, "A")
    assert pump_until(lambda: counter2.waiting_count == 1)
    type_keys(counter2, "1")
    assert counter2.chooser.open

    type_keys(counter2, "-")

    assert not counter2.chooser.open
    pump_frames()
    assert commands_of_kind(office, CommandKind.CALL) == 0
    assert commands_of_kind(office, CommandKind.NO_SHOW) == 0


def test_next_nobody_waiting_message(counter2):
    assert counter2.press("next") is True
    assert pump_until(lambda: counter2.feedback == "Nobody is waiting for Loket 2.")
    assert counter2.feedback_kind == "warning"
    assert counter2.ticket_label == ""
    assert not counter2.busy


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
        assert pump_until(
            lambda: counter1.waiting_summary == "A 1 \u00b7 A prioritas 1"
        )
        counter1.press("next")
        # The priority lane goes first although A-001 arrived earlier.
        assert pump_until(lambda: counter1.ticket_label == "A-002")
        assert counter1.ticket_priority is True
        assert counter1.ticket_category == "Lansia (60 tahun ke atas)"
    finally:
        counter1.stop()


# Presses while busy, repeats and held keys ------------------------------------------


def test_press_while_pending_sends_nothing(office, kiosk, counter2):
    issue(kiosk, "A")
    issue(kiosk, "A")
    assert counter2.press("next") is True
    assert counter2.press("next") is False
    assert counter2.feedback.startswith("Tunggu: Panggil Berikutnya belum selesai.")
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


def test_held_key_acts_once(office, kiosk, counter2):
    issue(kiosk, "A")
    issue(kiosk, "A")
    assert counter2.handle_key_down(KEYPAD_ENTER) is True
    assert pump_until(lambda: counter2.ticket_label == "A-001")
    assert pump_until(lambda: not counter2.busy)

    # Auto-repeat: another key-down without a key-up is consumed and sends nothing.
    assert counter2.handle_key_down(KEYPAD_ENTER) is True
    assert not counter2.busy

    assert counter2.handle_key_up(KEYPAD_ENTER) is True
    assert counter2.handle_key_down(KEYPAD_ENTER) is True
    assert counter2.busy
    assert pump_until(lambda: counter2.ticket_label == "A-002")


def test_unmapped_key_is_not_consumed(counter2):
    assert counter2.handle_key_down(ord("x"), "x") is False
    assert counter2.handle_key_up(ord("x")) is False
    assert not counter2.busy


def test_unknown_action_raises(counter2):
    counter2.feedback = "unchanged"
    with pytest.raises(ValueError, match="'issue_ticket' is not a counter action"):
        counter2.press("issue_ticket")
    assert counter2.feedback == "unchanged"
    assert not counter2.busy


# Staff alerts ----------------------------------------------------------------------


def test_alerts_from_kiosk_and_display(office, kiosk, counter2):
    kiosk.publish_status({"printer": "paper_low", "printer_spec": "file:"})
    assert pump_until(lambda: len(counter2.alerts) == 1)
    assert counter2.alerts[0] == {
        "level": "warning",
        "text_id": "Kiosk pintu masuk: kertas hampir habis",
        "text_en": "Kiosk pintu masuk: paper is low",
    }

    kiosk.publish_status({"printer": "paper_out"})
    assert pump_until(lambda: counter2.alerts[0]["level"] == "error")
    assert counter2.alerts[0]["text_en"] == "Kiosk pintu masuk: out of paper"

    display = office.client(Role.DISPLAY, "hall")
    display.stop()
    assert pump_until(lambda: len(counter2.alerts) == 2)
    assert counter2.alerts[1]["text_en"] == "Layar ruang tunggu: offline"

    kiosk.publish_status({"printer": "online"})
    assert pump_until(lambda: len(counter2.alerts) == 1)
    assert counter2.alerts[0]["level"] == "warning"


# States pushed by hand ------------------------------------------------------------


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
            called_at=at - timedelta(minutes=2, seconds=5),
        )
    return OfficeState(
        site=site_id,
        at=at,
        day=at.date().isoformat(),
        counters=(CounterState(2, "Loket 2", current, officer="budi"),),
        services=(ServiceLoad("B", 3, 1, 10, 60),),
    )


def test_late_state_is_ignored():
    site = load_site()
    controller = CounterController(site, site.counter(2))
    now = datetime(2024, 5, 6, 2, 0, tzinfo=UTC)

    controller.receive_state(_state(site.id, now, "B-002"))
    assert pump_until(lambda: controller.ticket_label == "B-002")
    assert controller.ticket_service == "Penggantian Paspor"
    assert controller.ticket_called == "dipanggil 08:57"
    assert controller.waiting_count == 3
    assert controller.logged_in

    controller.receive_state(_state(site.id, now - timedelta(seconds=1), "B-001"))
    controller.receive_state(_state("other-site", now + timedelta(seconds=1), None))
    pump_frames()
    assert controller.ticket_label == "B-002"

    # Far older than the newest: the engine's clock was set back.
    controller.receive_state(_state(site.id, now - timedelta(hours=1), None))
    assert pump_until(lambda: controller.ticket_label == "")


def test_elapsed_counts_on_engine_time():
    site = load_site()
    ticks = [100.0]
    controller = CounterController(site, site.counter(2), monotonic=lambda: ticks[0])
    # The terminal's own wall clock plays no part: only the state's stamp and
    # the monotonic time since it arrived.
    controller.receive_state(
        _state(site.id, datetime(2024, 5, 6, 2, 0, tzinfo=UTC), "B-002")
    )
    assert pump_until(lambda: controller.ticket_label == "B-002")
    assert controller.ticket_elapsed == "02:05"

    ticks[0] += 60.0
    controller.tick()
    assert controller.ticket_elapsed == "03:05"
