"""Texts the displays show that are computed from the state alone: a counter
screen's own counter, and the estimated wait of a lane."""

from __future__ import annotations

from typing import Any

from broker.contract import CounterAvailability, OfficeState, WaitRange
from broker.site import Lane, Site

# Indonesian first, English beneath, as on every line of the screens.
AVAILABILITY_TEXTS: dict[CounterAvailability, tuple[str, str]] = {
    CounterAvailability.OPEN: ("Buka", "Open"),
    CounterAvailability.PAUSED: ("Istirahat sebentar", "Paused"),
    CounterAvailability.CLOSED: ("Tutup", "Closed"),
}


def wait_text(wait: WaitRange | None, waiting: int) -> str:
    """Return a lane's estimated wait as "10-20 mnt", or "" when none is known."""
    if wait is None:
        return ""
    if wait.high <= 0 and waiting == 0:
        return "langsung"
    if wait.low == wait.high:
        return f"\u00b1{wait.high} mnt"
    return f"{wait.low}\u2013{wait.high} mnt"


def counter_view(site: Site, state: OfficeState | None, number: int) -> dict[str, Any]:
    """Return what a counter's own screen shows: its name, ticket and availability."""
    counter = site.counter(number)
    name = counter.name if counter else f"Loket {number}"
    view: dict[str, Any] = {
        "number": number,
        "name": name,
        "label": "",
        "priority": False,
        "available": False,
        "status_id": "",
        "status_en": "",
    }
    counter_state = state.counter(number) if state else None
    if counter_state is None:
        return view
    current = counter_state.current
    text_id, text_en = AVAILABILITY_TEXTS[counter_state.availability]
    if (
        counter_state.reason
        and counter_state.availability is CounterAvailability.PAUSED
    ):
        text_id = f"{text_id}: {counter_state.reason}"
    view.update(
        label=current.label if current else "",
        priority=bool(current and current.lane is Lane.PRIORITY),
        available=counter_state.availability is CounterAvailability.OPEN,
        status_id=text_id,
        status_en=text_en,
    )
    return view
