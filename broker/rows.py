"""Conversions from rows of the tickets and events tables to contract values."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from broker.contract import CallEvent, TicketStatus, TicketView, WaitRange
from broker.policy import Appointment, Candidate
from broker.site import Lane


def candidate_from_row(row: dict[str, Any], order: int) -> Candidate:
    """Return a waiting ticket as a policy sees it; `order` breaks ties in arrival."""
    return Candidate(
        ticket_id=row["id"],
        service=row["service"],
        lane=Lane(row["lane"]),
        arrived_at=row["arrived_at"],
        order=order,
        target_counter=row.get("target_counter"),
        issued_at=row.get("issued_at") or "",
        appointment=appointment_from_row(row),
    )


def appointment_from_row(row: dict[str, Any]) -> Appointment | None:
    """Return the window of a checked-in appointment ticket, or None for a walk-in."""
    return appointment_window(row.get("appointment_start"), row.get("appointment_end"))


def appointment_window(start: str | None, end: str | None) -> Appointment | None:
    """Return a ticket's appointment from its window columns, or None for a walk-in."""
    if not start or not end:
        return None
    # Only a check-in makes an appointment ticket, so every one is checked in.
    return Appointment(start=start, end=end, checked_in=True)


def candidates_from_rows(rows: list[dict[str, Any]]) -> list[Candidate]:
    """Return waiting tickets, already in arrival order, as candidates."""
    return [candidate_from_row(row, index) for index, row in enumerate(rows)]


def candidates_from_policy_rows(rows: list[tuple[Any, ...]]) -> list[Candidate]:
    """Return the tuples of Store.waiting_for_policy, in arrival order, as candidates."""
    return [
        Candidate(
            ticket_id=ticket_id,
            service=service,
            lane=Lane(lane),
            arrived_at=arrived_at,
            order=order,
            target_counter=target_counter,
            issued_at=issued_at or "",
            appointment=appointment_window(start, end),
        )
        for order, (
            ticket_id,
            service,
            lane,
            arrived_at,
            target_counter,
            issued_at,
            start,
            end,
        ) in enumerate(rows)
    ]


def view_from_row(row: dict[str, Any]) -> TicketView:
    """Return a ticket row as clients see it."""
    called_at = row.get("called_at")
    return TicketView(
        id=row["id"],
        label=row["label"],
        service=row["service"],
        lane=Lane(row["lane"]),
        status=TicketStatus(row["status"]),
        issued_at=datetime.fromisoformat(row["issued_at"]),
        category=row.get("category"),
        counter=row.get("counter"),
        called_at=datetime.fromisoformat(called_at) if called_at else None,
        people_ahead=int(row.get("people_ahead") or 0),
        estimate=wait_range_from_row(row),
        appointment_at=_optional_time(row.get("appointment_start")),
        served_at=(
            datetime.fromisoformat(row["served_at"]) if row.get("served_at") else None
        ),
    )


def _optional_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def wait_range_from_row(row: dict[str, Any]) -> WaitRange | None:
    """Return the wait estimate stored with a ticket, or None if it has none."""
    if row.get("estimate") is None or row.get("estimate_max") is None:
        return None
    return WaitRange(
        minutes=round(row["estimate"]),
        low=int(row["estimate_min"]),
        high=int(row["estimate_max"]),
    )


def call_from_row(row: dict[str, Any]) -> CallEvent:
    """Return a call event from a row of Store.recent_calls."""
    data = json.loads(row["call_data"] or "{}")
    return CallEvent(
        seq=row["call_seq"],
        at=datetime.fromisoformat(row["call_at"]),
        ticket=view_from_row(row),
        counter=row["call_counter"],
        counter_name=data.get("counter_name", ""),
        recall=bool(data.get("recall")),
    )
