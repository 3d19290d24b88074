"""Commands on tickets themselves: issuing one at a kiosk, withdrawing one, and
taking one out of the queue when its kiosk could not print it until a reprint."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from broker.commands import Rejected, Result, Source
from broker.contract import (
    Command,
    ErrorCode,
    PrintRequest,
    Reply,
    Role,
    TicketStatus,
)
from broker.policy import people_ahead
from broker.rows import candidates_from_policy_rows, view_from_row
from broker.site import Lane, Service
from broker.store import timestamp

if TYPE_CHECKING:
    from broker.engine import Engine

_LOGGER = logging.getLogger(__name__)


def issue_ticket(
    engine: Engine, command: Command, source: Source, now: datetime
) -> Result:
    """Issue the next number of a service, in the priority lane when a category is given."""
    site = engine.site
    service = site.service(command.service or "")
    if service is None:
        codes = ", ".join(s.code for s in site.services)
        raise Rejected(
            ErrorCode.UNKNOWN_SERVICE,
            f"Service {command.service!r} does not exist here; use one of {codes}.",
        )
    lane = Lane.NORMAL
    if command.category is not None:
        if site.category(command.category) is None:
            keys = ", ".join(c.key for c in site.priority_categories)
            raise Rejected(
                ErrorCode.UNKNOWN_CATEGORY,
                f"Priority category {command.category!r} does not exist; use one of {keys}.",
            )
        lane = Lane.PRIORITY

    day = engine.local_day(now).isoformat()
    if engine.store.next_number(day, service.code) > service.daily_quota:
        raise Rejected(
            ErrorCode.QUOTA_REACHED,
            f"Today's {service.daily_quota} tickets for {service.name_en} are all "
            "issued; please come back on the next working day.",
        )
    row = create_ticket(engine, command, source, now, service, lane)
    reply = Reply(
        command.command_id,
        ok=True,
        message=f"Ticket {row['label']} issued.",
        ticket=view_from_row(row),
    )
    return reply, []


def create_ticket(
    engine: Engine,
    command: Command,
    source: Source,
    now: datetime,
    service: Service,
    lane: Lane,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Insert the next number of a service as a waiting ticket and return its row.

    `extra` holds more columns, such as an appointment's window. The caller
    checks the quota.
    """
    day = engine.local_day(now).isoformat()
    number = engine.store.next_number(day, service.code)
    waiting = candidates_from_policy_rows(engine.store.waiting_for_policy(day))
    label = f"{service.code}-{number:03d}"
    stamp = timestamp(now)
    row = {
        "id": f"{day.replace('-', '')}-{service.code}{number:03d}",
        "day": day,
        "service": service.code,
        "lane": lane.value,
        "category": command.category,
        "number": number,
        "label": label,
        "visit": 0,
        "status": TicketStatus.WAITING.value,
        "issued_at": stamp,
        "arrived_at": stamp,
        "kiosk": source.device if source.role is Role.KIOSK else None,
        "people_ahead": people_ahead(waiting, service.code, lane),
        **(extra or {}),
    }
    row.update(engine.state.issue_estimates(now, waiting, row))
    engine.store.insert_ticket(row)
    engine.event(now, "issue", row["id"], None, command)
    return row


def cancel(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Withdraw a waiting ticket whose applicant left or asked to cancel."""
    row = engine.waiting_by_label(command.ticket or "", now)
    changes = {"status": TicketStatus.VOID.value, "finished_at": timestamp(now)}
    engine.store.update_ticket(row["id"], changes)
    data = json.dumps({"reason": command.reason}) if command.reason else None
    engine.event(now, "cancel", row["id"], None, command, data)
    reply = Reply(
        command.command_id,
        ok=True,
        message=f"{row['label']} cancelled.",
        ticket=view_from_row({**row, **changes}),
    )
    return reply, []


def print_failed(
    engine: Engine, command: Command, source: Source, now: datetime
) -> Result:
    """Take a ticket its kiosk could not print out of the queue until a reprint.

    The ticket keeps its number and its place in the store; it no longer
    counts as waiting, so nobody calls a number whose applicant holds no paper.
    """
    row = _today_ticket(engine, command.ticket or "", now)
    if source.role is Role.KIOSK and row.get("kiosk") != source.device:
        raise Rejected(
            ErrorCode.FORBIDDEN,
            f"{row['label']} was issued by {row.get('kiosk') or 'no kiosk'}, "
            f"not {source.device}; only the issuing kiosk reports its printing.",
        )
    status = TicketStatus(row["status"])
    if status is TicketStatus.NOT_PRINTED:
        message = f"{row['label']} was already out of the queue."
        return Reply(
            command.command_id, ok=True, message=message, ticket=view_from_row(row)
        ), []
    if status is not TicketStatus.WAITING:
        raise Rejected(
            ErrorCode.NOT_REPRINTABLE,
            f"{row['label']} is {status.value}, not waiting; it stays as it is.",
        )
    engine.store.update_ticket(row["id"], {"status": TicketStatus.NOT_PRINTED.value})
    data = json.dumps({"reason": command.reason}) if command.reason else None
    engine.event(now, "print_failed", row["id"], None, command, data)
    engine.estimator.invalidate()
    _LOGGER.warning(
        "Ticket %s (%s) was not printed by %s: %s",
        row["label"],
        row["id"],
        source.device,
        command.reason or "no reason given",
    )
    changed = {**row, "status": TicketStatus.NOT_PRINTED.value}
    message = f"{row['label']} is out of the queue until it is printed again."
    return Reply(
        command.command_id, ok=True, message=message, ticket=view_from_row(changed)
    ), []


def reprint(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Put a ticket back in the queue at its old place and ask its kiosk to print it.

    A waiting ticket stays waiting and is printed again, for an applicant whose
    paper was lost or unreadable.
    """
    counter = engine.counter_for(command)
    row = _today_ticket(engine, command.ticket or "", now)
    status = TicketStatus(row["status"])
    if status not in (TicketStatus.NOT_PRINTED, TicketStatus.WAITING):
        raise Rejected(
            ErrorCode.NOT_REPRINTABLE,
            f"{row['label']} is {status.value}; only a waiting ticket or one that "
            "was not printed can be printed again.",
        )
    kiosk = row.get("kiosk")
    if not kiosk or engine.site.kiosk(kiosk) is None:
        raise Rejected(
            ErrorCode.NOT_REPRINTABLE,
            f"{row['label']} was not issued at a kiosk of this office, so no "
            "kiosk can print it; write the number down for the applicant.",
        )
    if status is TicketStatus.NOT_PRINTED:
        # arrived_at is unchanged, so the ticket takes back its old place.
        engine.store.update_ticket(row["id"], {"status": TicketStatus.WAITING.value})
        engine.estimator.invalidate()
    row = {**row, "status": TicketStatus.WAITING.value}
    engine.event(now, "reprint", row["id"], counter.number, command)
    view = view_from_row(row)
    engine.request_print(
        kiosk, PrintRequest(now, view, counter.number, counter.name, command.command_id)
    )
    message = f"{row['label']} is in the queue; {kiosk} prints it again."
    return Reply(command.command_id, ok=True, message=message, ticket=view), []


def _today_ticket(engine: Engine, label: str, now: datetime) -> dict[str, Any]:
    row = engine.store.ticket_by_label(engine.local_day(now).isoformat(), label)
    if row is None:
        raise Rejected(
            ErrorCode.UNKNOWN_TICKET,
            f"No ticket {label} was issued today; check the number on the screen.",
        )
    return row
