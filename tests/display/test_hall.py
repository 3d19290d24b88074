"""The hall screen in a real offscreen Kivy window, fed by a real office."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from display_support import (
    Clients,
    DisplayUnderTest,
    ShiftedClock,
    call_next,
    connect_display,
    issue,
    pump,
)
from kivy.base import EventLoop
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from broker.client import OfficeClient, new_command_id
from broker.contract import Command, CommandKind
from display.controller import MIN_FEATURE_S
from display.hall import HallScreen, HallWaitingRow

pytestmark = pytest.mark.kivy

SCREENSHOT_PATH = (
    Path(__file__).parents[2] / "docs" / "screenshots" / "display-hall.png"
)


def _frame() -> None:
    EventLoop.idle()


def _texts(root: Widget) -> list[str]:
    return [widget.text for widget in root.walk() if isinstance(widget, Label)]


@pytest.fixture
def window() -> Iterator[Any]:
    """The process's one Kivy window, at the hall screen's design size."""
    EventLoop.ensure_window()
    window = EventLoop.window
    window.size = (1920, 1080)
    yield window


@pytest.fixture
def hall(
    office: Any, clients: Clients, window: Any
) -> Iterator[tuple[HallScreen, DisplayUnderTest]]:
    """A hall screen on the window, connected to the test office."""
    display = connect_display(clients, office.site, ShiftedClock(), step=_frame)
    screen = HallScreen(controller=display.controller)
    window.add_widget(screen)
    display.controller.start_ticking()
    yield screen, display
    display.controller.stop_ticking()
    window.remove_widget(screen)


def test_hall_shows_called_label(
    hall: tuple[HallScreen, DisplayUnderTest],
    kiosk: OfficeClient,
    officer: OfficeClient,
) -> None:
    screen, _ = hall
    ticket = issue(kiosk, "A")

    call_next(officer, 2)

    assert pump(lambda: ticket.label in _texts(screen), step=_frame)
    assert screen.ids.featured_label.text == ticket.label
    assert screen.ids.featured_counter.text == "Loket 2"
    # The counter panel follows the state, which the engine publishes after the call.
    tiles = screen.ids.counter_tiles
    assert pump(lambda: ticket.label in _texts(tiles), step=_frame)
    assert "Loket 2" in _texts(tiles)


def test_hall_flashes_new_call(
    hall: tuple[HallScreen, DisplayUnderTest],
    kiosk: OfficeClient,
    officer: OfficeClient,
) -> None:
    screen, _ = hall
    assert screen.flash == 0.0
    issue(kiosk, "C")

    call_next(officer, 4)

    assert pump(lambda: screen.flash > 0.5, step=_frame)


def test_hall_marks_priority_call(
    hall: tuple[HallScreen, DisplayUnderTest],
    kiosk: OfficeClient,
    officer: OfficeClient,
) -> None:
    screen, _ = hall
    ticket = issue(kiosk, "A", category="disabilitas")

    call_next(officer, 1)

    assert pump(lambda: screen.ids.featured_label.text == ticket.label, step=_frame)
    assert screen.ids.featured_priority.text.startswith("PRIORITAS")
    assert screen.ids.featured_priority.width > 0


def test_hall_shows_waiting_counts(
    hall: tuple[HallScreen, DisplayUnderTest], kiosk: OfficeClient
) -> None:
    screen, _ = hall
    for _ in range(3):
        issue(kiosk, "B")

    def waiting_b() -> int:
        rows = [w for w in screen.walk() if isinstance(w, HallWaitingRow)]
        return next((row.waiting_normal for row in rows if row.code == "B"), -1)

    assert pump(lambda: waiting_b() == 3, step=_frame)
    row = next(w for w in screen.walk() if getattr(w, "code", None) == "B")
    texts = _texts(row)
    assert "3" in texts
    assert "Penggantian Paspor" in texts
    assert "Passport Replacement  \u00b7  sisa 57" in texts


def test_hall_banner_when_broker_lost(
    office: Any, hall: tuple[HallScreen, DisplayUnderTest]
) -> None:
    screen, _ = hall
    banner = screen.ids.stale_banner
    assert pump(lambda: banner.height == 0, step=_frame)
    assert banner.opacity == 0

    office.broker.stop()

    # The engine's last will can show its own reason first, so wait for this one.
    title = screen.ids.stale_title
    assert pump(lambda: "Tidak terhubung ke server antrean" in title.text, step=_frame)
    assert title.text.startswith("Data tidak terkini")
    assert banner.opacity == 1
    assert banner.height > 0
    assert screen.ids.stale_subtitle.text.startswith("Display not up to date")


def test_hall_shows_clock_and_running_text(
    hall: tuple[HallScreen, DisplayUnderTest],
) -> None:
    screen, display = hall
    controller = display.controller

    assert pump(lambda: screen.ids.clock.text == controller.clock_text, step=_frame)
    assert screen.ids.date.text == controller.date_text
    assert screen.ids.running_text.text == controller.site.running_text
    start = screen.ids.running_text.offset
    assert pump(lambda: screen.ids.running_text.offset != start, step=_frame)


@pytest.mark.skipif(
    os.environ.get("ANTREAN_SCREENSHOTS") != "1",
    reason="writes docs/screenshots only when ANTREAN_SCREENSHOTS=1",
)
def test_hall_screenshot(
    hall: tuple[HallScreen, DisplayUnderTest],
    kiosk: OfficeClient,
    officer: OfficeClient,
    window: Any,
) -> None:
    screen, display = hall
    controller = display.controller
    for service, category in [
        ("A", None),
        ("B", None),
        ("A", "lansia"),
        ("C", None),
        ("A", None),
        ("B", None),
        ("D", None),
        ("A", None),
        ("B", None),
        ("C", "ibu_hamil"),
        ("A", None),
        ("B", None),
        ("A", None),
    ]:
        issue(kiosk, service, category)
    # Open counters give every lane a wait estimate, whatever the hour.
    for counter in (1, 2, 3, 4):
        command = Command(CommandKind.OPEN_COUNTER, new_command_id("op"), counter=counter)
        assert officer.request(command).ok
    # Five calls: the first is featured at once and four wait their turn, which
    # the shifted clock runs through in 12 s, before the state counts as old.
    for counter in (2, 3, 4, 2, 1):
        call_next(officer, counter)
    assert pump(lambda: len(controller.feature_queue) == 4, step=_frame)
    for _ in range(4):
        display.clock.advance(MIN_FEATURE_S + 0.05)
        controller.tick()
    assert pump(lambda: screen.flash > 0.9, step=_frame)
    assert controller.stale is False

    # NOTE: SDL's offscreen driver keeps the drawable at the size the window was
    # created with, so Window.screenshot after a resize is cropped. The widget is
    # rendered into its own 1920x1080 framebuffer instead.
    SCREENSHOT_PATH.parent.mkdir(parents=True, exist_ok=True)
    screen.export_to_png(str(SCREENSHOT_PATH))

    assert SCREENSHOT_PATH.stat().st_size > 10_000
