"""Write 1920x1080 screenshots of the counter screens into docs/screenshots/.

Run from the repository root: .venv/bin/python tests/counter/make_screenshots.py
It starts its own Mosquitto on a free loopback port and an engine in a
temporary directory. An optional argument sets another output directory.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

_SCRATCH = Path(tempfile.mkdtemp(prefix="antrean-screenshots-"))
os.environ.setdefault("KIVY_HOME", str(_SCRATCH / "kivy"))
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from counter.app import configure_window  # noqa: E402

# The offscreen window keeps the size it was created with, so the size is set
# before anything creates it.
configure_window(False, (1920, 1080))

from kivy.base import EventLoop  # noqa: E402

from broker.client import OfficeClient, new_command_id  # noqa: E402
from broker.contract import Command, CommandKind, Role  # noqa: E402
from broker.mosquitto import start_mosquitto  # noqa: E402
from broker.officers import add_officer  # noqa: E402
from broker.service import DATABASE_NAME, EngineService  # noqa: E402
from broker.store import Store  # noqa: E402
from broker.site import Site, load_site  # noqa: E402
from counter.terminal import CounterApp  # noqa: E402

_LOGGER = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parents[2]
WAIT_S = 15.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _pump_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the screen did not reach the expected state")
        EventLoop.idle()
        time.sleep(0.01)


def _settle(frames: int = 20) -> None:
    for _ in range(frames):
        EventLoop.idle()
        time.sleep(0.01)


def _screenshot(window, path: Path) -> None:
    # Kivy appends a counter to the name it is given, so the file is renamed.
    written = Path(window.screenshot(name=str(path.with_suffix("")) + ".png"))
    written.replace(path)
    _LOGGER.info("Wrote %s", path)


def _issue_tickets(site: Site) -> None:
    kiosk = OfficeClient(site, Role.KIOSK, "kiosk-1", data_dir=_SCRATCH / "data")
    kiosk.start()
    kiosk.wait_connected(WAIT_S)
    for service, category in [
        ("A", None),
        ("A", "lansia"),
        ("B", None),
        ("C", None),
        ("A", None),
        ("D", None),
        ("C", "disabilitas"),
    ]:
        command = Command(
            CommandKind.ISSUE_TICKET,
            new_command_id("kiosk-1"),
            service=service,
            category=category,
        )
        kiosk.request(command)
    kiosk.stop()


def _type(controller, text: str) -> None:
    for character in text:
        key = 13 if character == "\n" else ord(character)
        controller.handle_key_down(key, "" if character == "\n" else character)
        controller.handle_key_up(key)


def _capture(site: Site, window, output: Path) -> None:
    picker_app = CounterApp(site, None)
    window.add_widget(picker_app.build())
    _settle()
    _screenshot(window, output / "counter-picker.png")
    window.remove_widget(picker_app.manager)

    app = CounterApp(site, 1, _SCRATCH / "data")
    window.add_widget(app.build())
    controller = app.controller
    _pump_until(lambda: controller.connected and controller.waiting_count > 0)
    _type(controller, "198705\n24")
    _settle()
    _screenshot(window, output / "counter-login.png")

    _type(controller, "68\n")
    _pump_until(lambda: controller.logged_in)
    controller.press("next")
    _pump_until(lambda: controller.ticket_label != "" and not controller.busy)
    kiosk = _publish_paper_low(site)
    _pump_until(lambda: bool(controller.alerts))
    controller.repeat_guard_s = 0.0
    controller.press("start")
    _pump_until(lambda: controller.ticket_serving and not controller.busy)
    _settle()
    _screenshot(window, output / "counter-work.png")
    kiosk.stop()
    app.close()
    window.remove_widget(app.manager)


def _publish_paper_low(site: Site) -> OfficeClient:
    """Connect as kiosk 2 and report its paper low; the caller stops the client."""
    kiosk = OfficeClient(site, Role.KIOSK, "kiosk-2", data_dir=_SCRATCH / "data")
    kiosk.start()
    kiosk.wait_connected(WAIT_S)
    kiosk.publish_status(
        {"printer": "paper_low", "printer_spec": "serial:/dev/ttyUSB0"}
    )
    return kiosk


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    output = Path(argv[1]) if len(argv) > 1 else REPOSITORY / "docs" / "screenshots"
    output.mkdir(parents=True, exist_ok=True)
    site = load_site().with_broker("127.0.0.1", _free_port())
    broker = start_mosquitto(site, _SCRATCH / "data")
    engine = EngineService(site, _SCRATCH / "data")
    try:
        engine.start()
        engine.wait_connected(WAIT_S)
        store = Store(_SCRATCH / "data" / DATABASE_NAME)
        add_officer(store, "198705", "Budi Santoso", "2468", datetime.now(UTC))
        store.close()
        _issue_tickets(site)
        EventLoop.ensure_window()
        _capture(site, EventLoop.window, output)
    finally:
        engine.stop()
        broker.stop()


if __name__ == "__main__":
    main(sys.argv)
