"""Texts and rows the counter screens show, computed from the office state.

Pure functions of the site, the counter and the published OfficeState, so the
controller stays about input and timing and these are tested on their own.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from broker.contract import (
    CounterAvailability,
    CounterState,
    OfficeState,
    TicketView,
    WaitingTicket,
)
from broker.site import Counter, Lane, Site
from counter.chooser import Choice
from counter.keypad import ACTION_TITLES, Action

# Rows of the waiting list on the work screen; the rest is counted below it.
WAITING_ROWS_SHOWN = 7

# Reasons offered when pausing, Indonesian / English; the engine stores the text.
PAUSE_REASONS: tuple[tuple[str, str], ...] = (
    ("Istirahat", "Break"),
    ("Sholat", "Prayer"),
    ("Rapat / tugas lain", "Meeting or other duty"),
    ("Gangguan sistem", "System problem"),
    ("Lainnya", "Other"),
)


def is_eligible(entry: WaitingTicket, counter: Counter) -> bool:
    """Tell whether a counter may call a waiting ticket."""
    if entry.target_counter is not None:
        return entry.target_counter == counter.number
    return entry.service in counter.services and entry.lane in counter.lanes


def count_waiting(state: OfficeState, counter: Counter) -> int:
    """Count the tickets waiting in the services and lanes this counter serves.

    NOTE: a ticket transferred to another counter of the same service is
    counted too, because OfficeState gives totals per service and lane only.
    """
    total = 0
    for code in counter.services:
        load = state.service(code)
        if load is None:
            continue
        if Lane.NORMAL in counter.lanes:
            total += load.waiting_normal
        if Lane.PRIORITY in counter.lanes:
            total += load.waiting_priority
    return total


def waiting_summary(state: OfficeState, counter: Counter) -> str:
    """Return this counter's waiting counts per service and lane.

    For example "A 3 · A prioritas 1 · B 2"; empty lanes are left out.
    """
    parts = []
    for code in counter.services:
        load = state.service(code)
        if load is None:
            continue
        if Lane.NORMAL in counter.lanes and load.waiting_normal:
            parts.append(f"{code} {load.waiting_normal}")
        if Lane.PRIORITY in counter.lanes and load.waiting_priority:
            parts.append(f"{code} prioritas {load.waiting_priority}")
    return " \u00b7 ".join(parts)


def waiting_rows(
    site: Site, state: OfficeState, counter: Counter
) -> list[dict[str, Any]]:
    """Return the first waiting tickets this counter may call, as rows for the list."""
    rows = []
    for entry in state.waiting:
        if not is_eligible(entry, counter):
            continue
        rows.append(_waiting_row(site, entry, state.at))
        if len(rows) == WAITING_ROWS_SHOWN:
            break
    return rows


def _waiting_row(site: Site, entry: WaitingTicket, now: datetime) -> dict[str, Any]:
    service = site.service(entry.service)
    minutes = max(0, int((now - entry.arrived_at).total_seconds() // 60))
    return {
        "label": entry.label,
        "service": service.name_id if service else entry.service,
        "priority": entry.lane is Lane.PRIORITY,
        "waited": f"{minutes} mnt",
    }


def availability_text(counter_state: CounterState | None) -> str:
    """Return the counter's availability as the status bar shows it."""
    if counter_state is None:
        return ""
    availability = counter_state.availability
    if availability is CounterAvailability.OPEN:
        return "Buka / Open"
    if availability is CounterAvailability.PAUSED:
        reason = f": {counter_state.reason}" if counter_state.reason else ""
        return f"Jeda / Paused{reason}"
    return "Tutup / Closed"


def format_called(called_at: datetime | None, site: Site) -> str:
    """Return "dipanggil HH:MM" in the site's time zone, or "" without a time."""
    if called_at is None:
        return ""
    return f"dipanggil {called_at.astimezone(site.timezone):%H:%M}"


def ticket_time_text(ticket: TicketView, site: Site) -> str:
    """Return when a ticket was called, or since when it is served."""
    if ticket.served_at is not None:
        return f"dilayani sejak {ticket.served_at.astimezone(site.timezone):%H:%M}"
    return format_called(ticket.called_at, site)


def format_elapsed(elapsed: timedelta) -> str:
    """Format a duration as "MM:SS", or "H:MM:SS" from one hour on."""
    seconds = max(0, int(elapsed.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{seconds:02d}"
    return f"{minutes:02d}:{seconds:02d}"


# Choices of the actions that open a list ------------------------------------------


def call_choices(site: Site, state: OfficeState, counter: Counter) -> list[Choice]:
    """Return the waiting tickets this counter may call out of order."""
    return [
        _ticket_choice(site, entry, state.at)
        for entry in state.waiting
        if is_eligible(entry, counter)
    ]


def reprint_choices(site: Site, state: OfficeState, counter: Counter) -> list[Choice]:
    """Return tickets to print again: those not printed, then those waiting here."""
    unprinted = [
        Choice(entry.label, "Belum tercetak / Not printed", entry.label)
        for entry in state.unprinted
    ]
    return unprinted + call_choices(site, state, counter)


def transfer_choices(site: Site, ticket: TicketView, counter: Counter) -> list[Choice]:
    """Return where the current ticket may go: another service, or another counter."""
    choices = [
        Choice(
            f"Layanan {service.code}: {service.name_id}",
            f"Service {service.code}: {service.name_en}",
            ("service", service.code),
        )
        for service in site.services
        if service.code != ticket.service
    ]
    for other in site.counters:
        takes = ticket.service in other.services and ticket.lane in other.lanes
        if other.number != counter.number and takes:
            choices.append(
                Choice(other.name, f"Counter {other.number}", ("counter", other.number))
            )
    return choices


def choice_list(
    action: Action,
    site: Site,
    state: OfficeState | None,
    counter: Counter,
    ticket: TicketView | None,
    officer_name: str,
) -> tuple[str, str, list[Choice]]:
    """Return the Indonesian and English titles and the choices of an action's list."""
    title_id, title_en = ACTION_TITLES[action]
    if action is Action.TRANSFER and ticket is not None:
        title_id, title_en = f"Alihkan {ticket.label} ke", f"Transfer {ticket.label} to"
        return title_id, title_en, transfer_choices(site, ticket, counter)
    if action is Action.CALL and state is not None:
        return title_id, title_en, call_choices(site, state, counter)
    if action is Action.REPRINT and state is not None:
        return title_id, title_en, reprint_choices(site, state, counter)
    if action is Action.PAUSE:
        return title_id, title_en, pause_choices()
    if action is Action.LOGOUT:
        return title_id, title_en, [logout_choice(officer_name)]
    return title_id, title_en, []


def logout_choice(officer_name: str) -> Choice:
    """Return the single choice that confirms a logout."""
    return Choice(
        "Ya, keluar / Yes, log out",
        f"{officer_name}: Enter = keluar, - = batal / Enter logs out, - cancels",
        True,
    )


def pause_choices() -> list[Choice]:
    """Return the reasons offered for a pause."""
    return [Choice(text_id, text_en, text_id) for text_id, text_en in PAUSE_REASONS]


def _ticket_choice(site: Site, entry: WaitingTicket, now: datetime) -> Choice:
    row = _waiting_row(site, entry, now)
    lane = "PRIORITAS \u00b7 " if row["priority"] else ""
    return Choice(
        entry.label, f"{lane}{row['service']} \u00b7 {row['waited']}", entry.label
    )
