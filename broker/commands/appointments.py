"""Checking in a booked appointment at a kiosk, which issues its ticket."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from broker.commands import Rejected, Result, Source
from broker.commands.tickets import create_ticket
from broker.contract import Command, ErrorCode, Reply
from broker.rows import view_from_row
from broker.site import Lane
from broker.store import timestamp

if TYPE_CHECKING:
    from broker.engine import Engine

_LOGGER = logging.getLogger(__name__)


def check_in(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Issue the ticket of a booked appointment inside the site's check-in window.

    The ticket is numbered with the walk-in tickets of its service but never
    rejected for the daily quota, because the visit was booked in advance.
    """
    code = command.code or ""
    appointment = engine.store.appointment(code)
    if appointment is None:
        raise Rejected(
            ErrorCode.APPOINTMENT_NOT_FOUND,
            f"No appointment has the code {code}; check the code on the booking.",
        )
    if appointment["ticket_id"]:
        used = engine.store.ticket(appointment["ticket_id"])
        label = used["label"] if used else appointment["ticket_id"]
        raise Rejected(
            ErrorCode.APPOINTMENT_USED,
            f"Appointment {code} has already checked in, with ticket {label}.",
        )
    service = engine.site.service(appointment["service"])
    if service is None:
        raise Rejected(
            ErrorCode.UNKNOWN_SERVICE,
            f"Appointment {code} is for service {appointment['service']}, which "
            "this office no longer offers; ask staff.",
        )
    booked = datetime.fromisoformat(appointment["scheduled_at"])
    _check_window(engine, code, booked, now)

    window_end = booked + timedelta(minutes=engine.site.appointments.late_minutes)
    extra = {
        "appointment": code,
        "appointment_start": timestamp(booked),
        "appointment_end": timestamp(window_end),
    }
    row = create_ticket(engine, command, source, now, service, Lane.NORMAL, extra)
    engine.store.update_appointment(
        code, {"checked_in_at": timestamp(now), "ticket_id": row["id"]}
    )
    _LOGGER.info("Appointment %s checked in as %s", code, row["label"])
    reply = Reply(
        command.command_id,
        ok=True,
        message=f"Appointment {code} checked in as {row['label']}.",
        ticket=view_from_row(row),
    )
    return reply, []


def _check_window(engine: Engine, code: str, booked: datetime, now: datetime) -> None:
    window = engine.site.appointments
    opens = booked - timedelta(minutes=window.early_minutes)
    closes = booked + timedelta(minutes=window.late_minutes)
    if now < opens:
        raise Rejected(
            ErrorCode.APPOINTMENT_TOO_EARLY,
            f"Appointment {code} is booked for {_local(engine, booked)}; check in "
            f"from {_local(engine, opens)}.",
        )
    if now > closes:
        raise Rejected(
            ErrorCode.APPOINTMENT_TOO_LATE,
            f"Appointment {code} was booked for {_local(engine, booked)} and "
            f"check-in closed at {_local(engine, closes)}; take a walk-in ticket.",
        )


def _local(engine: Engine, moment: datetime) -> str:
    return f"{moment.astimezone(engine.site.timezone):%Y-%m-%d %H:%M}"
