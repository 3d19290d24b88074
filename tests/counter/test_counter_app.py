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

from broker.client import OfficeClient
from broker.contract import DeviceStatus, Role
from counter.app import UnknownCounterError, parse_counter
from counter.terminal import CounterApp
from officer_logins import add_office_officers, log_in_client

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


@pytest.fixture
def terminal(office, window) -> Iterator[CounterApp]:
    """The terminal of counter 2, shown in the Window and connected."""
    app = _open_app(office, window, 2)
    app.controller.repeat_guard_s = 0.0
    if not pump_until(lambda: app.controller.connected):
        _close_app(app, window)
        raise RuntimeError("counter 2 did not connect to the test office")
    add_office_officers(office.data_dir, (2,))
    log_in_client(app.controller.client, 2)
    yield app
    _close_app(app, window)


def _touch(widget) -> None:
    x, y = widget.to_window(*widget.center)
    touch = UnitTestTouch(x, y)
    touch.touch_down()
    touch.touch_up()


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


def test_keys_for_recall_no_show_finish(office, kiosk, terminal, window):
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
    key(268, "A-002 finished.")  # keypad *
    assert terminal.work_screen.ids.ticket_label.text == "\u2014"


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


def test_priority_badge_on_priority_counter(office, kiosk, window):
    issue(kiosk, "C", category="ibu_hamil")
    app = _open_app(office, window, 1)
    try:
        screen = app.work_screen
        assert pump_until(lambda: app.controller.connected)
        add_office_officers(office.data_dir, (1,))
        log_in_client(app.controller.client, 1)
        assert screen.ids.priority_badge.opacity == 0
        screen.action_button("next").dispatch("on_press")
        assert pump_until(lambda: screen.ids.ticket_label.text == "C-001")
        assert screen.ids.priority_badge.opacity == 1
        assert screen.ids.priority_badge.text == "PRIORITAS \u00b7 Ibu hamil"
    finally:
        _close_app(app, window)


def test_offline_screen_disables_buttons(office, terminal):
    screen = terminal.work_screen
    assert screen.ids.link_badge.text == "Terhubung"
    assert screen.ids.offline_banner.opacity == 0

    office.broker.stop()
    banner = screen.ids.offline_banner
    assert pump_until(lambda: "Tidak terhubung ke server antrean" in banner.text)
    assert banner.opacity == 1
    assert screen.ids.link_badge.text == "OFFLINE"
    for action in ("next", "recall", "no_show", "finish"):
        button = screen.action_button(action)
        assert button.disabled, action
        assert button.hint == "Offline", action

    _touch(screen.action_button("next"))
    pump_frames()
    assert not terminal.controller.busy
    assert screen.ids.feedback.text == ""


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
        assert app.manager.current == "work"
        assert app.controller.counter.number == 3
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
        office.site, Role.OPERATOR, "watcher", on_status=seen.append, data_dir=office.data_dir
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
            [sys.executable, "-c", script, str(office.site.broker.port), str(office.data_dir)],
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
