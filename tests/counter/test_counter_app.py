"""The counter terminal's screens in a real offscreen Kivy window."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from counter_helpers import WAIT_S, issue, pump_frames, pump_until
from kivy.base import EventLoop
from kivy.tests import UnitTestTouch
from officer_logins import OFFICER_PIN, add_office_officers, officer_of

from broker.client import OfficeClient
from broker.contract import DeviceStatus, Role
from counter.app import UnknownCounterError, parse_counter
from counter.terminal import CounterApp

pytestmark = pytest.mark.kivy

KEYPAD_ENTER = 271
ENTER = 13


@pytest.fixture
def window():
    """The process's single Kivy Window, created offscreen on first use."""
    EventLoop.ensure_window()
    return EventLoop.window


def _open_app(office, window, counter_number: int | None) -> CounterApp:
    app = CounterApp(office.site, counter_number, office.data_dir)
    window.add_widget(app.build())
    return app


def _close_app(app: CounterApp, window) -> None:
    app.close()
    window.remove_widget(app.manager)
    pump_frames()


def _type(window, text: str) -> None:
    """Type on the window as a keyboard would; a newline is Enter."""
    for character in text:
        key = ENTER if character == "\n" else ord(character)
        codepoint = None if character == "\n" else character
        window.dispatch("on_key_down", key, 0, codepoint, [])
        window.dispatch("on_key_up", key, 0)


@pytest.fixture
def terminal(office, window) -> Iterator[CounterApp]:
    """The terminal of counter 2, shown in the Window, with its officer logged in."""
    app = _open_app(office, window, 2)
    app.controller.repeat_guard_s = 0.0
    if not pump_until(lambda: app.controller.connected):
        _close_app(app, window)
        raise RuntimeError("counter 2 did not connect to the test office")
    add_office_officers(office.data_dir, (2,))
    _type(window, f"{officer_of(2)}\n{OFFICER_PIN}\n")
    if not pump_until(lambda: app.manager.current == "work"):
        _close_app(app, window)
        raise RuntimeError(f"login failed: {app.controller.feedback}")
    yield app
    _close_app(app, window)


def _touch(widget) -> None:
    x, y = widget.to_window(*widget.center)
    touch = UnitTestTouch(x, y)
    touch.touch_down()
    touch.touch_up()


def test_login_screen_keypad(office, window):
    add_office_officers(office.data_dir, (3,))
    app = _open_app(office, window, 3)
    try:
        screen = app.login_screen
        assert app.manager.current == "login"
        assert pump_until(lambda: app.controller.connected)
        assert screen.ids.link_badge.text == "Terhubung"
        pump_frames()

        _type(window, "petugas")
        for symbol in ("3", "enter", "2", "4", "6", "8"):
            _touch(screen.keypad_key(symbol))
        assert screen.ids.officer_field.value == "petugas3"
        assert screen.ids.pin_field.value == "\u2022" * 4
        assert screen.ids.pin_field.focused
        _touch(screen.keypad_key("enter"))

        assert pump_until(lambda: app.manager.current == "work")
        work = app.work_screen.ids
        assert work.officer_name.text == "Petugas Loket 3"
        assert work.availability_badge.text == "Buka / Open"
        assert "dilayani / served 0" in work.officer_counts.text
    finally:
        _close_app(app, window)


def test_logout_returns_to_login(terminal, window):
    _type(window, "9")
    assert terminal.work_screen.overlay.parent is not None
    _type(window, "\n")

    assert pump_until(lambda: terminal.manager.current == "login")
    assert terminal.work_screen.overlay.parent is None


def test_next_button_updates_ticket_label(kiosk, terminal):
    issue(kiosk, "A")
    screen = terminal.work_screen
    button = screen.action_button("next")
    assert screen.ids.ticket_label.text == "\u2014"

    button.dispatch("on_press")
    assert button.disabled
    assert button.hint == "\u2026"

    assert pump_until(lambda: screen.ids.ticket_label.text == "A-001")
    assert pump_until(lambda: not button.disabled)
    assert screen.ids.ticket_service.text == "Paspor Baru"
    assert screen.ids.feedback.text == "A-001 called to Loket 2."
    assert screen.ids.ticket_called.text.startswith("dipanggil ")
    assert button.hint == "Enter  /  +"
    assert button.title == "Panggil Berikutnya"


def test_keypad_and_enter_keys_call_next(kiosk, terminal, window):
    issue(kiosk, "A")
    issue(kiosk, "B")
    label = terminal.work_screen.ids.ticket_label

    window.dispatch("on_key_down", KEYPAD_ENTER, 0, None, [])
    window.dispatch("on_key_up", KEYPAD_ENTER, 0)
    assert pump_until(lambda: label.text == "A-001")
    assert pump_until(lambda: not terminal.controller.busy)

    window.dispatch("on_key_down", ENTER, 0, None, [])
    window.dispatch("on_key_up", ENTER, 0)
    assert pump_until(lambda: label.text == "B-001")


def test_keys_for_every_direct_action(office, kiosk, terminal, window):
    issue(kiosk, "A")
    issue(kiosk, "A")
    feedback = terminal.work_screen.ids.feedback

    def key(code: int, expected: str) -> None:
        window.dispatch("on_key_down", code, 0, None, [])
        window.dispatch("on_key_up", code, 0)
        assert pump_until(lambda: feedback.text == expected), feedback.text

    key(270, "A-001 called to Loket 2.")  # keypad +
    key(266, "A-001 called again.")  # keypad .
    key(45, "A-001 marked as not present.")  # -
    key(43, "A-002 called to Loket 2.")  # +
    key(256, "Serving A-002.")  # keypad 0
    key(268, "A-002 finished.")  # keypad *
    assert terminal.work_screen.ids.ticket_label.text == "\u2014"
    assert pump_until(
        lambda: terminal.work_screen.ids.officer_counts.text.endswith(
            "dilayani / served 1  \u00b7  tidak hadir / no-show 1"
        )
    )


def test_chooser_overlay_by_touch(office, kiosk, terminal, window):
    for _ in range(2):
        issue(kiosk, "B")
    screen = terminal.work_screen
    assert pump_until(lambda: len(screen.ids.waiting_rows.children) == 2)

    _type(window, "1")
    overlay = screen.overlay
    assert overlay.parent is screen
    rows = list(reversed(overlay.ids.choice_rows.children))
    assert [row.text for row in rows] == ["B-001", "B-002"]
    pump_frames()
    # A touch on a button behind the overlay does nothing.
    _touch(screen.action_button("finish"))
    assert not terminal.controller.busy
    _touch(rows[1])

    assert pump_until(lambda: screen.ids.ticket_label.text == "B-002")
    assert overlay.parent is None


def test_touch_on_next_button_calls_ticket(kiosk, terminal):
    issue(kiosk, "B")
    screen = terminal.work_screen
    pump_frames()
    _touch(screen.action_button("next"))
    assert pump_until(lambda: screen.ids.ticket_label.text == "B-001")


def test_waiting_count_is_shown(kiosk, terminal):
    issue(kiosk, "A")
    issue(kiosk, "B")
    issue(kiosk, "D")
    waiting = terminal.work_screen.ids.waiting_count
    assert pump_until(lambda: waiting.text == "2")
    rows = terminal.work_screen.ids.waiting_rows.children
    assert [row.label for row in reversed(rows)] == ["A-001", "B-001"]


def test_alert_row_for_kiosk_printer(kiosk, terminal):
    screen = terminal.work_screen
    assert screen.ids.alerts_empty.opacity == 1

    kiosk.publish_status({"printer": "paper_out"})

    assert pump_until(lambda: len(screen.ids.alert_rows.children) == 1)
    row = screen.ids.alert_rows.children[0]
    assert row.level == "error"
    assert row.text_id == "Kiosk pintu masuk: kertas habis"
    assert screen.ids.alerts_empty.opacity == 0


def test_priority_badge_on_priority_counter(office, kiosk, window):
    issue(kiosk, "C", category="ibu_hamil")
    add_office_officers(office.data_dir, (1,))
    app = _open_app(office, window, 1)
    try:
        screen = app.work_screen
        assert pump_until(lambda: app.controller.connected)
        _type(window, f"{officer_of(1)}\n{OFFICER_PIN}\n")
        assert pump_until(lambda: app.manager.current == "work")
        assert screen.ids.priority_badge.opacity == 0
        screen.action_button("next").dispatch("on_press")
        assert pump_until(lambda: screen.ids.ticket_label.text == "C-001")
        assert screen.ids.priority_badge.opacity == 1
        assert screen.ids.priority_badge.text == "PRIORITAS \u00b7 Ibu hamil"
    finally:
        _close_app(app, window)


def test_offline_screen_queues_presses(office, kiosk, terminal):
    issue(kiosk, "A")
    screen = terminal.work_screen
    assert screen.ids.link_badge.text == "Terhubung"
    assert screen.ids.offline_banner.opacity == 0

    office.broker.stop()
    banner = screen.ids.offline_banner
    assert pump_until(lambda: "Tidak terhubung ke server antrean" in banner.text)
    assert banner.opacity == 1
    assert screen.ids.link_badge.text == "OFFLINE"
    assert not screen.action_button("next").disabled

    _touch(screen.action_button("next"))
    pump_frames()
    assert terminal.controller.queued
    assert screen.action_button("next").disabled
    assert screen.ids.feedback.text.startswith("Offline: Panggil Berikutnya")


def test_picker_opens_chosen_counter(office, window):
    app = _open_app(office, window, None)
    try:
        picker = app.manager.get_screen("picker")
        assert [choice.number for choice in picker.choices] == [1, 2, 3, 4]
        assert picker.choices[0].name_text == "Loket 1 (Prioritas)"
        assert picker.choices[3].services_text == (
            "Pengambilan Paspor \u00b7 Informasi dan Pengaduan"
        )
        assert app.controller is None
        pump_frames()

        _touch(picker.choices[2])
        assert app.manager.current == "login"
        assert app.controller.counter.number == 3
        assert app.login_screen.ids.counter_name.text == "Loket 3"
        assert app.work_screen.ids.counter_name.text == "Loket 3"
        assert pump_until(lambda: app.controller.connected)
    finally:
        _close_app(app, window)


def test_parse_counter_checks_device():
    from broker.site import load_site

    site = load_site()
    assert parse_counter(site, None) is None
    assert parse_counter(site, "2") == 2
    assert parse_counter(site, " 4 ") == 4
    for device in ("9", "0", "loket-2", ""):
        with pytest.raises(UnknownCounterError, match="Use one of the counter numbers"):
            parse_counter(site, device)


def test_run_connects_and_stops_counter(office, tmp_path):
    seen: list[DeviceStatus] = []
    watcher = OfficeClient(
        office.site,
        Role.OPERATOR,
        "watcher",
        on_status=seen.append,
        data_dir=office.data_dir,
    )
    watcher.start()

    def counter3_presence() -> list[bool]:
        return [s.online for s in seen if s.role is Role.COUNTER and s.device == "3"]

    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from broker.site import load_site\n"
        "from counter.app import run\n"
        "site = load_site().with_broker('127.0.0.1', int(sys.argv[1]))\n"
        "run(site, Path(sys.argv[2]), '3', False, (1024, 600))\n"
    )
    env = dict(os.environ, KIVY_HOME=str(tmp_path / "kivy"))
    log_path = tmp_path / "counter.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                str(office.site.broker.port),
                str(office.data_dir),
            ],
            cwd=Path(__file__).resolve().parents[2],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        assert watcher.wait_connected(WAIT_S)
        online = pump_until(lambda: True in counter3_presence(), timeout=30.0)
        assert online, log_path.read_text(errors="replace")[-2000:]
        assert process.poll() is None

        # SIGTERM closes the app, and its client publishes the offline status.
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert pump_until(lambda: counter3_presence()[-1] is False, timeout=5.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        watcher.stop()
