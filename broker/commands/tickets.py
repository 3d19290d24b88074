"""Commands on tickets themselves: issuing one at a kiosk, and withdrawing one."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from broker.commands import Rejected, Result, Source
from broker.contract import Command, ErrorCode, Reply, Role, TicketStatus
from broker.policy import people_ahead
from broker.rows import candidates_from_rows, view_from_row
from broker.site import Lane
from broker.store import timestamp

if TYPE_CHECKING:
    from broker.engine import Engine


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
    number = engine.store.next_number(day, service.code)
    if number > service.daily_quota:
        raise Rejected(
            ErrorCode.QUOTA_REACHED,
            f"Today's {service.daily_quota} tickets for {service.name_en} are all "
            "issued; please come back on the next working day.",
        )
    waiting = candidates_from_rows(engine.store.waiting(day))
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
    }
    row.update(engine.state.issue_estimates(now, waiting, row))
    engine.store.insert_ticket(row)
    engine.event(now, "issue", row["id"], None, command)
    reply = Reply(
        command.command_id,
        ok=True,
        message=f"Ticket {label} issued.",
        ticket=view_from_row(row),
    )
    return reply, []


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
