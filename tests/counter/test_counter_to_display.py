"""Each counter action, sent from a counter terminal, and what the hall display and
the counter's own display show for it, all on one real office."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from counter_helpers import issue, log_in, open_controller, pump_until, type_keys

from broker.client import OfficeClient, new_command_id
from broker.contract import CallEvent, Command, CommandKind, Role
from counter.controller import CounterController
from display.controller import DisplayController

KIOSK = "kiosk-1"


class AdvancingClock:
    """The real time plus an offset, so a test can end a featured call's minimum."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def open_display(office: Any, device: str, **options: Any) -> DisplayController:
    controller = DisplayController(
        office.site, device, now=options.pop("now"), **options
    )
    office.client(
        Role.DISPLAY,
        device,
        on_state=controller.post_state,
        on_call=controller.post_call,
        on_status=controller.post_status,
        on_link=controller.post_link,
    )
    if not pump_until(lambda: not controller.stale):
        raise RuntimeError(f"display {device} stayed stale: {controller.stale_reason}")
    return controller


def tile(hall: DisplayController, number: int) -> str:
    return next(row["label"] for row in hall.counters if row["number"] == number)


def waiting_a(hall: DisplayController) -> int:
    return next(row["waiting_normal"] for row in hall.waiting if row["code"] == "A")


@pytest.fixture
def room(office: Any, kiosk: OfficeClient) -> Iterator[dict[str, Any]]:
    """Counter 1's terminal (logged out), the hall display and counter 1's display."""
    clock = AdvancingClock()
    announced: list[CallEvent] = []
    hall = open_display(office, "hall", now=clock, announce=announced.append)
    own = open_display(office, "loket-1", now=clock, counter=1)
    terminal = open_controller(office, 1, logged_in=False)
    yield {
        "terminal": terminal,
        "hall": hall,
        "own": own,
        "clock": clock,
        "announced": announced,
    }
    terminal.stop()


def next_feature(room: dict[str, Any]) -> None:
    """Let the featured call's minimum time pass, so a queued call comes up."""
    room["clock"].offset += timedelta(seconds=5)
    room["hall"].tick()
    room["own"].tick()


def settle(terminal: CounterController) -> None:
    assert pump_until(lambda: not terminal.busy)


def test_every_action_reaches_the_displays(office, kiosk, room):
    terminal: CounterController = room["terminal"]
    hall: DisplayController = room["hall"]
    own: DisplayController = room["own"]
    announced: list[CallEvent] = room["announced"]
    for _ in range(4):
        issue(kiosk, "A")
    assert pump_until(lambda: waiting_a(hall) == 4)

    # Login opens the counter on its own display.
    assert own.counter_view["status_id"] == "Tutup"
    log_in(terminal, 1)
    assert pump_until(lambda: own.counter_view["status_id"] == "Buka")

    # Next: featured, highlighted and announced on the hall, shown above the counter.
    terminal.press("next")
    assert pump_until(lambda: hall.featured_label == "A-001")
    assert hall.featured_counter == "Loket 1 (Prioritas)"
    assert hall.highlight
    assert [call.ticket.label for call in announced] == ["A-001"]
    assert pump_until(lambda: own.counter_view["label"] == "A-001")
    assert own.highlight
    settle(terminal)

    # Recall: featured again as a recall, and announced again.
    terminal.press("recall")
    assert pump_until(lambda: len(announced) == 2)
    assert announced[1].recall
    next_feature(room)
    assert hall.featured_recall
    settle(terminal)

    # Start: no new call, the ticket stays at the counter.
    terminal.press("start")
    settle(terminal)
    assert terminal.ticket_serving
    assert len(announced) == 2
    assert own.counter_view["label"] == "A-001"

    # Finish: the counter's tile and own display are empty.
    terminal.press("finish")
    assert pump_until(lambda: tile(hall, 1) == "")
    assert pump_until(lambda: own.counter_view["label"] == "")
    settle(terminal)

    # Call a chosen ticket out of order: A-003 before A-002.
    terminal.press("call")
    type_keys(terminal, "2\n")
    assert pump_until(lambda: len(announced) == 3)
    assert announced[2].ticket.label == "A-003"
    assert pump_until(lambda: tile(hall, 1) == "A-003")
    settle(terminal)

    # No-show: the tile empties and the ticket is not waiting again.
    terminal.press("no_show")
    assert pump_until(lambda: tile(hall, 1) == "")
    assert waiting_a(hall) == 2
    settle(terminal)

    # Transfer to counter 3: A-002 leaves counter 1 and waits again, reserved.
    terminal.press("next")
    assert pump_until(lambda: tile(hall, 1) == "A-002")
    settle(terminal)
    terminal.press("transfer")
    labels = [row["text"] for row in terminal.chooser.rows]
    terminal.pick(labels.index("Loket 3"))
    assert pump_until(lambda: tile(hall, 1) == "")
    assert pump_until(lambda: waiting_a(hall) == 2)
    settle(terminal)

    # Reprint a ticket its kiosk could not print: it waits again.
    failed = Command(CommandKind.PRINT_FAILED, new_command_id(KIOSK), ticket="A-004")
    assert kiosk.request(failed).ok
    assert pump_until(lambda: waiting_a(hall) == 1)
    terminal.press("reprint")
    assert terminal.chooser.rows[0]["text"] == "A-004"
    terminal.choose("enter")
    assert pump_until(lambda: waiting_a(hall) == 2)
    settle(terminal)

    # Pause with a reason: the counter's display shows it.
    terminal.press("pause")
    type_keys(terminal, "2\n")
    assert pump_until(
        lambda: own.counter_view["status_id"] == "Istirahat sebentar: Sholat"
    )
    settle(terminal)

    # Logout: the counter is closed on its display, and the terminal shows the login.
    terminal.press("logout")
    terminal.choose("enter")
    assert pump_until(lambda: own.counter_view["status_id"] == "Tutup")
    assert pump_until(lambda: not terminal.logged_in)
    assert [call.ticket.label for call in announced] == [
        "A-001",
        "A-001",
        "A-003",
        "A-002",
    ]
