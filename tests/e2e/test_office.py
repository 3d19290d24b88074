"""A whole office in one run: a touch on the kiosk, a printed ticket, Next on a
counter, the call on the hall display; and `antrean up` with its three windows."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kivy.base import EventLoop
from kivy.tests import UnitTestTouch
from kivy.uix.boxlayout import BoxLayout

from broker.client import OfficeClient
from broker.contract import DeviceStatus, Role
from broker.security import credentials_path, username_for
from counter.terminal import CounterApp
from display.controller import DisplayController
from display.hall import HallScreen
from kiosk.controller import KioskController, ScreenName
from kiosk.root import KioskRoot
from officer_logins import add_office_officers, log_in_client
from tests.conftest import Office, free_port, write_site_file

pytestmark = pytest.mark.kivy

DEADLINE_S = 20.0


def frames_until(condition: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        EventLoop.idle()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def touch(widget) -> None:
    x, y = widget.to_window(*widget.center)
    event = UnitTestTouch(x, y)
    event.touch_down()
    event.touch_up()


def label_texts(root) -> list[str]:
    return [str(getattr(widget, "text", "")) for widget in root.walk()]


@pytest.fixture
def hall_room(office: Office) -> Iterator[tuple[KioskRoot, CounterApp, HallScreen]]:
    """The three apps side by side in the one window, each on its own client."""
    EventLoop.ensure_window()
    window = EventLoop.window
    kiosk = KioskController(office.site, office.site.kiosks[0], office.data_dir)
    counter = CounterApp(office.site, 2, office.data_dir)
    display = DisplayController(office.site, "hall")
    display_client = OfficeClient(
        office.site,
        Role.DISPLAY,
        "hall",
        on_state=display.post_state,
        on_call=display.post_call,
        on_status=display.post_status,
        on_link=display.post_link,
        data_dir=office.data_dir,
    )
    room = BoxLayout(orientation="horizontal")
    kiosk_root = KioskRoot(controller=kiosk)
    hall = HallScreen(controller=display)
    room.add_widget(kiosk_root)
    room.add_widget(counter.build())
    room.add_widget(hall)
    window.add_widget(room)
    kiosk.start()
    display_client.start()
    display.start_ticking()
    try:
        ready = frames_until(
            lambda: kiosk.online and counter.controller.connected and display.connected
        )
        assert ready, "the three apps did not connect to the test office"
        add_office_officers(office.data_dir, (2,))
        log_in_client(counter.controller.client, 2)
        assert frames_until(lambda: counter.controller.logged_in)
        yield kiosk_root, counter, hall
    finally:
        display.stop_ticking()
        display_client.stop()
        counter.close()
        kiosk.stop()
        window.remove_widget(room)


def test_touch_to_print_to_call_to_display(office: Office, hall_room) -> None:
    kiosk_root, counter, hall = hall_room
    service_a = kiosk_root.screen(ScreenName.HOME).ids.services.buttons["A"]
    assert frames_until(lambda: service_a.width > 0)

    touch(service_a)

    tickets = office.data_dir / "tickets"
    assert frames_until(lambda: any(tickets.glob("*.escpos")))
    printed = [path.read_bytes() for path in tickets.glob("*.escpos")]
    assert len(printed) == 1
    assert b"A-001" in printed[0]
    assert frames_until(lambda: counter.controller.waiting_count == 1)

    counter.work_screen.action_button("next").dispatch("on_press")

    assert frames_until(lambda: counter.work_screen.ids.ticket_label.text == "A-001")
    assert frames_until(lambda: hall.controller.featured_label == "A-001")
    assert hall.controller.featured_counter == "Loket 2"
    assert frames_until(lambda: "A-001" in label_texts(hall))
    # The count comes with the state the engine publishes after its reply.
    assert frames_until(lambda: counter.controller.waiting_count == 0)


def test_antrean_up_opens_three_windows(tmp_path: Path) -> None:
    site_file = write_site_file(tmp_path, free_port())
    environment = {**os.environ, "SDL_VIDEODRIVER": "offscreen", "SDL_AUDIODRIVER": "dummy"}
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "up", "--site", str(site_file), "--data-dir", str(tmp_path / "data")],
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    from broker.site import load_site

    site = load_site(site_file)
    # antrean up writes every device's credentials before it starts the broker.
    operator_login = credentials_path(tmp_path / "data", username_for(Role.OPERATOR, "watcher"))
    deadline = time.monotonic() + 30
    while not operator_login.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    online: queue.Queue[DeviceStatus] = queue.Queue()
    seen: dict[tuple[Role, str], bool] = {}
    watcher = OfficeClient(
        site, Role.OPERATOR, "watcher", on_status=online.put, data_dir=tmp_path / "data"
    )
    watcher.start()
    try:
        deadline = time.monotonic() + 60
        wanted = {(Role.KIOSK, "kiosk-1"), (Role.DISPLAY, "hall"), (Role.ENGINE, "lebong")}
        while time.monotonic() < deadline and not all(seen.get(key) for key in wanted):
            try:
                status = online.get(timeout=0.5)
            except queue.Empty:
                continue
            seen[(status.role, status.device)] = status.online
        assert all(seen.get(key) for key in wanted), f"online devices: {seen}"
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        watcher.stop()

    assert process.returncode == 0, stderr
    assert "Started the kiosk window" in stderr
    assert "Started the counter window" in stderr
    assert "Started the display window" in stderr
    assert "Traceback" not in stderr
