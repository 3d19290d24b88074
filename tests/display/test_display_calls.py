"""Calls on the displays against the real office: spoken in order on the hall,
one counter's own screen, and old calls that must not look current."""

from __future__ import annotations

import os
import shutil
import wave
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from display_support import (
    Clients,
    ShiftedClock,
    call_next,
    issue,
    pump,
    recall,
)
from kivy.base import EventLoop

from broker import contract
from broker.client import OfficeClient, new_command_id
from broker.contract import (
    CallEvent,
    Command,
    CommandKind,
    OfficeState,
    Role,
    ServiceLoad,
    WaitRange,
)
from broker.site import load_site
from display.announcer import Announcer, Outcome
from display.controller import MIN_FEATURE_S, DisplayController
from display.counter_screen import CounterScreen
from display.counter_view import wait_text

PLAYBACK_S = 40.0

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


def open_display(
    clients: Clients,
    site: Any,
    clock: ShiftedClock,
    device: str = "hall",
    **options: Any,
) -> DisplayController:
    controller = DisplayController(site, device, now=clock, **options)
    clients.open(
        Role.DISPLAY,
        device,
        on_state=controller.post_state,
        on_call=controller.post_call,
        on_status=controller.post_status,
        on_link=controller.post_link,
    )
    if not pump(lambda: not controller.stale):
        pytest.fail(f"display {device} stayed stale: {controller.stale_reason}")
    return controller


def record_featured(controller: DisplayController) -> list[str]:
    labels: list[str] = []
    controller.bind(featured_label=lambda _c, label: labels.append(label))
    return labels


@needs_espeak
def test_two_quick_calls_shown_and_spoken(
    office: Any,
    clients: Clients,
    kiosk: OfficeClient,
    officer: OfficeClient,
    tmp_path: Path,
) -> None:
    clock = ShiftedClock()
    announcer = Announcer(tmp_path / "speech")
    hall = open_display(clients, office.site, clock, announce=announcer.announce)
    featured = record_featured(hall)
    try:
        first = issue(kiosk, "A")
        second = issue(kiosk, "C")

        # Two counters call within the same second.
        call_next(officer, 2)
        call_next(officer, 4)

        assert pump(lambda: len(announcer.history) + len(announcer.queue) == 2)
        spoken = [item.label for item in [*announcer.history, *announcer.queue]]
        assert spoken == [first.label, second.label]
        assert pump(lambda: featured[-1:] == [first.label])
        assert [call.ticket.label for call in hall.feature_queue] == [second.label]

        clock.advance(seconds=MIN_FEATURE_S)
        hall.tick()
        assert hall.featured_label == second.label
        assert hall.featured_counter == "Loket 4"

        assert pump(lambda: len(announcer.history) == 2, timeout=PLAYBACK_S)
        history = list(announcer.history)
        assert [item.outcome for item in history] == [Outcome.PLAYED] * 2
        assert history[0].text == ("Nomor antrean, A, satu. Silakan menuju loket, dua.")
        assert history[1].text == (
            "Nomor antrean, C, satu. Silakan menuju loket, empat."
        )
        for item in history:
            with wave.open(str(item.wav), "rb") as audio:
                assert audio.getnframes() > 10_000
    finally:
        announcer.stop()


@needs_espeak
def test_recall_is_spoken_again(
    office: Any,
    clients: Clients,
    kiosk: OfficeClient,
    officer: OfficeClient,
    tmp_path: Path,
) -> None:
    announcer = Announcer(tmp_path / "speech")
    open_display(clients, office.site, ShiftedClock(), announce=announcer.announce)
    try:
        issue(kiosk, "B")
        call_next(officer, 3)
        recall(officer, 3)

        assert pump(lambda: len(announcer.history) + len(announcer.queue) == 2)
        texts = [item.text for item in [*announcer.history, *announcer.queue]]
        assert texts[0].startswith("Nomor antrean, B, satu.")
        assert texts[1].startswith("Panggilan ulang. Nomor antrean, B, satu.")
    finally:
        announcer.stop()


def test_display_started_later_announces_nothing_old(
    office: Any,
    clients: Clients,
    kiosk: OfficeClient,
    officer: OfficeClient,
    tmp_path: Path,
) -> None:
    issue(kiosk, "A")
    call_next(officer, 2)
    announced: list[CallEvent] = []

    hall = open_display(clients, office.site, ShiftedClock(), announce=announced.append)

    assert pump(lambda: hall.featured_label == "A-001")
    assert hall.highlight is False
    assert announced == []


# One counter's screen ------------------------------------------------------------


def test_counter_display_follows_its_counter(
    office: Any, clients: Clients, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    own = open_display(clients, office.site, ShiftedClock(), "loket-1", counter=1)
    assert own.counter_view["name"] == "Loket 1 (Prioritas)"
    assert own.counter_view["label"] == ""
    issue(kiosk, "A")
    issue(kiosk, "A", category="lansia")

    call_next(officer, 2)
    assert pump(lambda: len(own.counters) == 4)
    assert pump(lambda: own.counters[1]["label"] == "A-001")
    assert own.featured_label == ""
    assert own.highlight is False

    call_next(officer, 1)
    assert pump(lambda: own.counter_view["label"] == "A-002")
    assert own.counter_view["priority"] is True
    assert pump(lambda: own.featured_label == "A-002")
    assert own.highlight is True

    pause = Command(
        CommandKind.PAUSE_COUNTER, new_command_id("op"), counter=1, reason="Sholat"
    )
    assert officer.request(pause).ok
    assert pump(lambda: own.counter_view["status_id"] == "Istirahat sebentar: Sholat")
    assert own.counter_view["available"] is False


def test_counter_screen_renders(
    office: Any, clients: Clients, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    own = open_display(clients, office.site, ShiftedClock(), "loket-1", counter=1)
    EventLoop.ensure_window()
    window = EventLoop.window
    screen = CounterScreen(controller=own)
    window.add_widget(screen)
    try:
        issue(kiosk, "D")
        call_next(officer, 1)

        assert pump(
            lambda: screen.ids.ticket_label.text == "D-001", step=EventLoop.idle
        )
        assert screen.ids.counter_name.text == "Loket 1 (Prioritas)"
        assert pump(lambda: screen.flash > 0.3, step=EventLoop.idle)
        assert screen.ids.priority_badge.text == ""
    finally:
        window.remove_widget(screen)


# Old calls ---------------------------------------------------------------------


def test_retained_old_call_never_current(
    office: Any, clients: Clients, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    """A call event left retained on the broker, as by a faulty client, comes
    to every new display at once. It is not featured, flashed or announced."""
    issue(kiosk, "A")
    called = call_next(officer, 2)
    finish = Command(CommandKind.FINISH, new_command_id("op"), counter=2)
    assert officer.request(finish).ok
    # Only the engine's login may write calls, so the stale message is
    # published with it, retained, an hour old.
    stale_call = CallEvent(
        99_000, called.called_at - timedelta(hours=1), called, 2, "Loket 2"
    )
    engine_login = clients.open(Role.ENGINE, office.site.id)
    topics = contract.Topics(office.site.id)
    engine_login.publish(topics.calls, contract.encode(stale_call), retain=True)
    announced: list[CallEvent] = []

    hall = open_display(clients, office.site, ShiftedClock(), announce=announced.append)
    assert pump(lambda: any(row["label"] == "A-001" for row in hall.history))

    # A-001 was finished, so even today's last call is not shown as current.
    assert hall.featured_call is None
    assert hall.highlight is False
    assert hall.feature_queue == []
    assert announced == []
    engine_login.publish(topics.calls, b"", retain=True)


# Waiting rows ------------------------------------------------------------------


def test_wait_text_forms() -> None:
    assert wait_text(None, 3) == ""
    assert wait_text(WaitRange(15, 10, 20), 4) == "10\u201320 mnt"
    assert wait_text(WaitRange(5, 5, 5), 1) == "\u00b15 mnt"
    assert wait_text(WaitRange(0, 0, 0), 0) == "langsung"


def test_waiting_rows_carry_estimates_and_quota() -> None:
    site = load_site()
    clock = ShiftedClock()
    controller = DisplayController(site, "hall", now=clock)
    now = clock()
    state = OfficeState(
        site.id,
        now,
        now.astimezone(site.timezone).date().isoformat(),
        services=(
            ServiceLoad("A", 4, 1, 60, 60, WaitRange(20, 15, 30), WaitRange(5, 2, 8)),
            ServiceLoad("B", 0, 0, 12, 60),
        ),
    )

    controller.apply_state(state)

    row_a, row_b = controller.waiting
    assert row_a["wait_normal"] == "15\u201330 mnt"
    assert row_a["wait_priority"] == "2\u20138 mnt"
    assert row_a["remaining"] == 0
    assert row_b["wait_normal"] == ""
    assert row_b["remaining"] == 48


COUNTER_SCREENSHOT = (
    Path(__file__).parents[2] / "docs" / "screenshots" / "display-counter.png"
)


@pytest.mark.skipif(
    os.environ.get("ANTREAN_SCREENSHOTS") != "1",
    reason="writes docs/screenshots only when ANTREAN_SCREENSHOTS=1",
)
def test_counter_screen_screenshot(
    office: Any, clients: Clients, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    own = open_display(clients, office.site, ShiftedClock(), "loket-1", counter=1)
    EventLoop.ensure_window()
    screen = CounterScreen(controller=own, size=(1920, 1080), size_hint=(None, None))
    EventLoop.window.add_widget(screen)
    try:
        issue(kiosk, "A", category="lansia")
        call_next(officer, 1)
        assert pump(
            lambda: screen.ids.ticket_label.text == "A-001", step=EventLoop.idle
        )
        assert pump(lambda: screen.flash > 0.9, step=EventLoop.idle)

        # The widget renders into its own framebuffer, at the design size.
        screen.export_to_png(str(COUNTER_SCREENSHOT))
        assert COUNTER_SCREENSHOT.stat().st_size > 10_000
    finally:
        EventLoop.window.remove_widget(screen)
