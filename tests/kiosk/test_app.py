"""The kiosk's widgets in a real offscreen Kivy window, driven by touches."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kiosk_support import add_appointment
from kivy.base import EventLoop
from kivy.tests import UnitTestTouch

from kiosk import controller as controller_module
from kiosk import messages
from kiosk.controller import KioskController, ScreenName
from kiosk.i18n import translate
from kiosk.root import KioskRoot

pytestmark = pytest.mark.kivy

DEADLINE_S = 15.0
SCREENSHOT_DIR = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def run_frames_until(
    condition: Callable[[], bool], timeout: float = DEADLINE_S
) -> bool:
    """Advance Kivy frames until the condition holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        EventLoop.idle()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def run_frames_for(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        EventLoop.idle()
        time.sleep(0.01)


def touch(widget) -> None:
    """Press and release a real touch at the centre of a widget."""
    x, y = widget.to_window(*widget.center)
    event = UnitTestTouch(x, y)
    event.touch_down()
    event.touch_up()


def ticket_files(data_dir: Path) -> list[Path]:
    directory = data_dir / "tickets"
    return sorted(directory.glob("*.escpos")) if directory.is_dir() else []


@pytest.fixture
def window():
    EventLoop.ensure_window()
    return EventLoop.window


@pytest.fixture
def kiosk_root(office, window) -> Iterator[KioskRoot]:
    controller = KioskController(office.site, office.site.kiosks[0], office.data_dir)
    controller.start()
    root = KioskRoot(controller=controller)
    window.add_widget(root)
    home = root.screen(ScreenName.HOME)
    button = home.ids.services.buttons["A"]
    ready = run_frames_until(
        lambda: controller.online and button.remaining == 60 and button.width > 0
    )
    try:
        if not ready:
            raise RuntimeError("the kiosk did not show the office state")
        yield root
    finally:
        window.remove_widget(root)
        controller.stop()


def service_button(root: KioskRoot, screen: ScreenName, code: str):
    return root.screen(screen).ids.services.buttons[code]


def test_touch_service_shows_ticket(kiosk_root, office):
    controller = kiosk_root.controller

    touch(service_button(kiosk_root, ScreenName.HOME, "A"))

    ticket_screen = kiosk_root.screen(ScreenName.TICKET)
    assert run_frames_until(lambda: ticket_screen.ids.label.text == "A-001")
    assert kiosk_root.ids.screens.current == ScreenName.TICKET
    assert not controller.busy
    files = ticket_files(office.data_dir)
    assert len(files) == 1
    assert b"A-001" in files[0].read_bytes()


def test_double_touch_gives_one_ticket(kiosk_root, office):
    controller = kiosk_root.controller
    button = service_button(kiosk_root, ScreenName.HOME, "A")
    x, y = button.to_window(*button.center)

    first = UnitTestTouch(x, y)
    first.touch_down()
    first.touch_up()
    run_frames_for(0.15)
    second = UnitTestTouch(x, y)
    second.touch_down()
    second.touch_up()

    assert run_frames_until(lambda: controller.screen == ScreenName.TICKET)
    assert run_frames_until(lambda: controller.remaining.get("A") == 59)
    assert controller.ticket_label == "A-001"
    files = ticket_files(office.data_dir)
    assert len(files) == 1
    assert b"A-001" in files[0].read_bytes()


def test_remaining_shown_on_button(kiosk_root):
    button = service_button(kiosk_root, ScreenName.HOME, "C")
    assert button.remaining_text == "Sisa 100"

    kiosk_root.controller.issue("C")

    assert run_frames_until(lambda: button.remaining_text == "Sisa 99")
    kiosk_root.controller.set_language("en")
    assert button.remaining_text == "99 left"


def test_priority_path_by_touch(kiosk_root, office):
    controller = kiosk_root.controller
    home = kiosk_root.screen(ScreenName.HOME)

    touch(home.ids.priority)
    assert run_frames_until(
        lambda: kiosk_root.ids.screens.current == ScreenName.CATEGORIES
    )
    categories = kiosk_root.screen(ScreenName.CATEGORIES)
    assert run_frames_until(
        lambda: categories.ids.categories.buttons["lansia"].width > 0
    )
    touch(categories.ids.categories.buttons["lansia"])
    assert run_frames_until(
        lambda: kiosk_root.ids.screens.current == ScreenName.PRIORITY_SERVICES
    )
    button = service_button(kiosk_root, ScreenName.PRIORITY_SERVICES, "B")
    assert run_frames_until(lambda: button.width > 0)
    touch(button)

    assert run_frames_until(lambda: controller.screen == ScreenName.TICKET)
    assert controller.ticket_label == "B-001"
    assert controller.ticket_priority
    assert b"PRIORITAS" in ticket_files(office.data_dir)[0].read_bytes()


def test_back_buttons_by_touch(kiosk_root):
    screens = kiosk_root.ids.screens
    kiosk_root.controller.open_priority()
    kiosk_root.controller.choose_category("disabilitas")
    assert run_frames_until(lambda: screens.current == ScreenName.PRIORITY_SERVICES)

    touch(kiosk_root.screen(ScreenName.PRIORITY_SERVICES).ids.back)
    assert run_frames_until(lambda: screens.current == ScreenName.CATEGORIES)
    touch(kiosk_root.screen(ScreenName.CATEGORIES).ids.back)

    assert run_frames_until(lambda: screens.current == ScreenName.HOME)
    assert kiosk_root.controller.category == ""


def test_touch_leaves_ticket_screen(kiosk_root, office):
    controller = kiosk_root.controller
    controller.issue("D")
    assert run_frames_until(lambda: controller.screen == ScreenName.TICKET)
    ticket_screen = kiosk_root.screen(ScreenName.TICKET)

    def touch_and_check() -> bool:
        touch(ticket_screen)
        return kiosk_root.ids.screens.current == ScreenName.HOME

    assert run_frames_until(touch_and_check)
    assert controller.screen == ScreenName.HOME
    assert len(ticket_files(office.data_dir)) == 1


def test_unknown_service_notice_shown(kiosk_root, office):
    controller = kiosk_root.controller
    controller.issue("Z")

    notice = kiosk_root.screen(ScreenName.NOTICE)
    assert run_frames_until(lambda: kiosk_root.ids.screens.current == "notice")
    assert run_frames_until(
        lambda: notice.ids.message.text == "Layanan ini tidak tersedia di kantor ini."
    )
    assert ticket_files(office.data_dir) == []


def test_status_bar_shows_offline(kiosk_root, office):
    office.broker.stop()

    connection = kiosk_root.ids.connection
    offline_text = kiosk_root.screen(ScreenName.HOME).ids.offline_text
    assert run_frames_until(
        lambda: connection.text == translate(messages.DISCONNECTED, "id")
    )
    assert offline_text.text == translate(messages.OFFLINE_BANNER, "id")


def test_two_providers_one_touch_one_ticket(kiosk_root, office):
    controller = kiosk_root.controller
    button = service_button(kiosk_root, ScreenName.HOME, "B")
    x, y = button.to_window(*button.center)
    # One physical tap reported by a mouse and a touch provider: same place,
    # same moment, two touch events.
    first = UnitTestTouch(x, y)
    second = UnitTestTouch(x, y)
    first.touch_down()
    second.touch_down()
    first.touch_up()
    second.touch_up()

    assert run_frames_until(lambda: controller.screen == ScreenName.TICKET)
    assert run_frames_until(lambda: controller.remaining.get("B") == 59)
    run_frames_for(0.5)
    assert controller.remaining.get("B") == 59
    assert controller.ticket_label == "B-001"
    assert len(ticket_files(office.data_dir)) == 1


def test_language_button_switches_texts(kiosk_root):
    controller = kiosk_root.controller
    home = kiosk_root.screen(ScreenName.HOME)
    button = service_button(kiosk_root, ScreenName.HOME, "A")
    assert home.ids.check_in.title == "Saya punya janji temu"

    touch(home.ids.language)

    assert run_frames_until(lambda: controller.language == "en")
    assert run_frames_until(lambda: home.ids.check_in.title == "I have an appointment")
    assert button.remaining_text == "60 left"
    assert home.ids.language.title == "Bahasa Indonesia"
    assert kiosk_root.ids.connection.text == messages.CONNECTED
    touch(home.ids.language)
    assert run_frames_until(lambda: home.ids.check_in.title == "Saya punya janji temu")


def test_idle_returns_home_in_indonesian(kiosk_root, monkeypatch):
    # Long enough that a loaded machine still shows the category screen first.
    monkeypatch.setattr(controller_module, "IDLE_S", 3.0)
    controller = kiosk_root.controller
    home = kiosk_root.screen(ScreenName.HOME)
    touch(home.ids.language)
    touch(home.ids.priority)
    assert run_frames_until(lambda: controller.screen == ScreenName.CATEGORIES)
    assert controller.language == "en"

    assert run_frames_until(lambda: controller.language == "id")
    assert run_frames_until(lambda: kiosk_root.ids.screens.current == ScreenName.HOME)
    assert home.ids.check_in.title == "Saya punya janji temu"


def test_check_in_by_keypad(kiosk_root, office):
    add_appointment(office, "BK2026")
    controller = kiosk_root.controller
    touch(kiosk_root.screen(ScreenName.HOME).ids.check_in)
    screen = kiosk_root.screen(ScreenName.CHECK_IN)
    assert run_frames_until(
        lambda: kiosk_root.ids.screens.current == ScreenName.CHECK_IN
    )
    keys = screen.ids.keypad.keys
    assert run_frames_until(lambda: keys["B"].width > 0)

    for character in "BK20269":
        touch(keys[character])
    touch(screen.ids.erase)
    assert run_frames_until(lambda: screen.ids.code.text == "BK2026")
    touch(screen.ids.submit)

    assert run_frames_until(lambda: controller.screen == ScreenName.TICKET)
    assert controller.ticket_label == "A-001"
    assert controller.ticket_appointment
    appointment = kiosk_root.screen(ScreenName.TICKET).ids.appointment
    assert run_frames_until(lambda: appointment.text.startswith("Janji temu pukul"))
    assert b"JANJI TEMU" in ticket_files(office.data_dir)[0].read_bytes()


def test_scanner_checks_in_from_home(kiosk_root, office, window):
    add_appointment(office, "SCAN1234", service="C")
    controller = kiosk_root.controller

    # A barcode scanner types like a keyboard and ends with Enter.
    for character in "scan1234":
        window.dispatch("on_textinput", character)
    assert controller.screen == ScreenName.CHECK_IN
    assert controller.code == "SCAN1234"
    window.dispatch("on_key_down", 13, 40, None, [])

    assert run_frames_until(lambda: controller.screen == ScreenName.TICKET)
    assert controller.ticket_label == "C-001"
    assert len(ticket_files(office.data_dir)) == 1


def test_scanned_unknown_code_explained(kiosk_root, office, window):
    controller = kiosk_root.controller
    for character in "NOPE0000\r":
        window.dispatch("on_textinput", character)
    window.dispatch("on_key_down", 271, 88, None, [])

    notice = kiosk_root.screen(ScreenName.NOTICE)
    assert run_frames_until(lambda: controller.screen == ScreenName.NOTICE)
    assert run_frames_until(
        lambda: notice.ids.message.text
        == "Kode janji temu tidak ditemukan. Periksa kodenya lalu coba lagi."
    )
    assert ticket_files(office.data_dir) == []


@pytest.mark.skipif(
    os.environ.get("ANTREAN_SCREENSHOTS") != "1",
    reason="writes docs/screenshots only when ANTREAN_SCREENSHOTS=1",
)
def test_write_screenshots(kiosk_root, office):
    # The offscreen window keeps the size it was created with, so the root is
    # sized on its own and rendered through an Fbo (Widget.export_to_png).
    controller = kiosk_root.controller
    kiosk_root.size_hint = (None, None)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)

    def shoot(name: str) -> None:
        sizes = (("landscape", (1920, 1080)), ("portrait", (1080, 1920)))
        for orientation, size in sizes:
            kiosk_root.size = size
            run_frames_for(0.4)
            path = SCREENSHOT_DIR / f"kiosk-{name}-{orientation}.png"
            kiosk_root.export_to_png(str(path))
            assert path.stat().st_size > 0

    for service in ("C", "B", "A", "A"):
        controller.issue(service)
        assert run_frames_until(lambda: controller.screen == ScreenName.TICKET)
        assert run_frames_until(controller.dismiss)
    assert run_frames_until(lambda: controller.remaining.get("A") == 58)
    shoot("home")
    controller.set_language("en")
    shoot("home-english")
    controller.set_language("id")

    controller.open_priority()
    shoot("priority")
    controller.choose_category("lansia")
    shoot("priority-service")

    add_appointment(office, "BK2026")
    controller.open_check_in()
    controller.type_code("BK2026")
    shoot("check-in")

    controller.screen = ScreenName.WAIT.value
    shoot("wait")

    controller.go_home()
    controller.issue("A")
    assert run_frames_until(lambda: controller.screen == ScreenName.TICKET)
    shoot("ticket")

    controller._show_print_failure(controller.last_ticket)
    shoot("notice")


RUN_SCRIPT = """
import sys
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock

from broker.site import load_site
from kiosk.app import run

site = load_site().with_broker("127.0.0.1", int(sys.argv[1]))
started = Clock.get_time()


def stop_when_online(_dt):
    app = App.get_running_app()
    if app is None:
        return
    if app.controller.online and app.controller.remaining.get("A") == 60:
        print("online", app.root.ids.screens.current, flush=True)
        app.stop()
    elif Clock.get_time() - started > 20:
        print("offline", flush=True)
        app.stop()


Clock.schedule_interval(stop_when_online, 0.1)
run(site, Path(sys.argv[2]), None, False, (960, 540))
print("stopped", flush=True)
"""


def test_run_shows_home_and_stops(office, tmp_path):
    # run() creates its own Window and App, so it runs in a child process.
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    result = subprocess.run(
        [sys.executable, "-c", RUN_SCRIPT, str(office.site.broker.port), str(office.data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr[-2000:]
    assert "online home" in result.stdout
    assert "stopped" in result.stdout
