"""The display's entry point: choosing the display, window settings, and run()."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from display_support import Clients, pump

from broker.contract import DeviceStatus, Role
from broker.site import Display, load_site
from display.app import DisplaySetupError, choose_display, window_settings

REPOSITORY = Path(__file__).parents[2]


def test_first_display_by_default() -> None:
    site = load_site()

    display = choose_display(site, None)

    assert display.id == "hall"
    assert display.layout == "hall"


def test_display_chosen_by_id() -> None:
    wall = Display(id="wall", name="Layar dinding", layout="hall", counter=None)
    site = dataclasses.replace(load_site(), displays=(*load_site().displays, wall))

    assert choose_display(site, "wall") is wall


def test_unknown_display_rejected() -> None:
    with pytest.raises(DisplaySetupError, match="'lobby' is not defined.*hall"):
        choose_display(load_site(), "lobby")


def test_site_without_display_rejected() -> None:
    site = dataclasses.replace(load_site(), displays=())

    with pytest.raises(DisplaySetupError, match=r"\[\[displays\]\]"):
        choose_display(site, None)


def test_fullscreen_settings() -> None:
    settings = window_settings(fullscreen=True, size=(1280, 720))

    assert ("graphics", "fullscreen", "auto") in settings
    assert ("graphics", "show_cursor", "0") in settings
    assert all(key != "width" for _, key, _ in settings)


def test_window_size_settings() -> None:
    settings = window_settings(fullscreen=False, size=(1366, 768))

    assert ("graphics", "width", "1366") in settings
    assert ("graphics", "height", "768") in settings
    assert all(key != "fullscreen" for _, key, _ in settings)


@pytest.mark.parametrize("size", [(0, 1080), (1920, -1)])
def test_invalid_window_size_rejected(size: tuple[int, int]) -> None:
    with pytest.raises(DisplaySetupError, match="is invalid"):
        window_settings(fullscreen=False, size=size)


_RUN_SCRIPT = """
import sys
from pathlib import Path
from broker.site import load_site
from display.app import run

site = load_site().with_broker("127.0.0.1", int(sys.argv[1]))
run(site, Path(sys.argv[2]), sys.argv[3] or None, False, (960, 540))
"""


@pytest.mark.parametrize(
    ("device", "display_id"), [("", "hall"), ("loket-1", "loket-1")]
)
def test_run_connects_and_stops_client(
    office: Any, clients: Clients, tmp_path: Path, device: str, display_id: str
) -> None:
    statuses: list[DeviceStatus] = []
    clients.open(Role.OPERATOR, "watcher", on_status=statuses.append)

    def display_status(online: bool, screen: str | None = None) -> bool:
        return any(
            s.role is Role.DISPLAY
            and s.device == display_id
            and s.online is online
            and s.detail.get("screen") == screen
            for s in statuses
        )

    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _RUN_SCRIPT,
            str(office.site.broker.port),
            str(office.data_dir),
            device,
        ],
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert pump(lambda: display_status(True, "running"), timeout=30.0)
        assert process.poll() is None

        # Ctrl+C ends the Kivy loop, and run() must still publish the offline status.
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15.0)
        assert pump(lambda: display_status(False), timeout=10.0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()
