"""Commands from counters: calling, recalling, closing and moving tickets, and
opening, pausing or closing the counter itself."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from broker import officers
from broker.commands import Rejected, Result, Source
from broker.contract import (
    CallEvent,
    Command,
    CommandKind,
    CounterAvailability,
    ErrorCode,
    Reply,
    TicketStatus,
)
from broker.policy import PolicyContext, WaitingQueue
from broker.rows import (
    candidate_from_row,
    candidates_from_policy_rows,
    view_from_row,
)
from broker.site import Counter, Lane
from broker.store import timestamp

if TYPE_CHECKING:
    from broker.engine import Engine

_LOGGER = logging.getLogger(__name__)

# Calls of a counter a policy sees; the ratio policy needs at most 20.
POLICY_HISTORY = 20
# Columns a ticket keeps when it moves to another queue.
_KEPT_ON_TRANSFER = (
    "day",
    "lane",
    "category",
    "number",
    "label",
    "kiosk",
    "issued_at",
    "people_ahead",
)


def next_ticket(
    engine: Engine, command: Command, source: Source, now: datetime
) -> Result:
    """Finish the counter's current ticket and call the one its policy picks."""
    counter = engine.counter_for(command)
    day = engine.local_day(now).isoformat()
    _finish_current(engine, counter, now, command)

    waiting = candidates_from_policy_rows(engine.store.waiting_for_policy(day))
    queue = WaitingQueue(waiting, engine.site.policy.transfers)
    history = tuple(
        Lane(lane)
        for lane in engine.store.call_lanes(day, counter.number, POLICY_HISTORY)
    )
    chosen = engine.policy_of(counter)(queue, counter, PolicyContext(now, history))
    if chosen is None:
        message = f"Nobody is waiting for {counter.name}."
        return Reply(
            command.command_id,
            ok=False,
            error=ErrorCode.NOBODY_WAITING,
            message=message,
        ), []

    row = engine.store.ticket(chosen.ticket_id)
    if row is None:
        raise RuntimeError(f"waiting ticket {chosen.ticket_id} has no row")
    return _call_to(engine, row, counter, now, command)


def call_chosen(
    engine: Engine, command: Command, source: Source, now: datetime
) -> Result:
    """Call a ticket the officer picked, out of the policy's order."""
    counter = engine.counter_for(command)
    row = engine.waiting_by_label(command.ticket or "", now)
    if not candidate_from_row(row, 0).eligible_at(counter):
        reserved = row.get("target_counter")
        why = (
            f"is reserved for counter {reserved}"
            if reserved not in (None, counter.number)
            else f"is a {row['service']} ticket in the {row['lane']} lane"
        )
        raise Rejected(
            ErrorCode.NOT_SERVED,
            f"{row['label']} {why}, which {counter.name} does not take.",
        )
    _finish_current(engine, counter, now, command)
    return _call_to(engine, row, counter, now, command)


def recall(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Call the counter's current ticket again."""
    counter = engine.counter_for(command)
    row = engine.current_at(counter, now)
    row["calls"] = int(row["calls"] or 0) + 1
    engine.store.update_ticket(row["id"], {"calls": row["calls"]})
    call = _announce(engine, row, counter, now, command, recall=True)
    reply = Reply(
        command.command_id,
        ok=True,
        message=f"{row['label']} called again.",
        ticket=view_from_row(row),
    )
    return reply, [call]


def no_show(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Mark the counter's current ticket as not present."""
    counter = engine.counter_for(command)
    row = engine.close(
        engine.current_at(counter, now), TicketStatus.NO_SHOW, now, command
    )
    message = f"{row['label']} marked as not present."
    return Reply(
        command.command_id, ok=True, message=message, ticket=view_from_row(row)
    ), []


def finish(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Finish the counter's current ticket."""
    counter = engine.counter_for(command)
    row = engine.close(
        engine.current_at(counter, now), TicketStatus.FINISHED, now, command
    )
    return Reply(
        command.command_id,
        ok=True,
        message=f"{row['label']} finished.",
        ticket=view_from_row(row),
    ), []


def start_service(
    engine: Engine, command: Command, source: Source, now: datetime
) -> Result:
    """Mark the start of service of the counter's called ticket, for service times."""
    counter = engine.counter_for(command)
    row = engine.current_at(counter, now)
    if row["status"] == TicketStatus.SERVING.value:
        since = datetime.fromisoformat(row["served_at"]).astimezone(
            engine.site.timezone
        )
        raise Rejected(
            ErrorCode.ALREADY_STARTED,
            f"{row['label']} is already being served, since {since:%H:%M}.",
        )
    changes = {"status": TicketStatus.SERVING.value, "served_at": timestamp(now)}
    officer = officer_at(engine, counter.number, now)
    if officer is not None:
        changes["officer"] = officer
    engine.store.update_ticket(row["id"], changes)
    engine.event(now, "start", row["id"], counter.number, command)
    engine.estimator.invalidate()
    return Reply(
        command.command_id,
        ok=True,
        message=f"Serving {row['label']}.",
        ticket=view_from_row({**row, **changes}),
    ), []


def transfer(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Move the current ticket to another service's queue or reserve it for a counter."""
    counter = engine.counter_for(command)
    row = engine.current_at(counter, now)
    service_code = command.to_service or row["service"]
    if engine.site.service(service_code) is None:
        codes = ", ".join(s.code for s in engine.site.services)
        raise Rejected(
            ErrorCode.UNKNOWN_SERVICE,
            f"Service {service_code!r} does not exist here; use one of {codes}.",
        )
    target = _transfer_target(engine, command, service_code, Lane(row["lane"]))

    engine.close(row, TicketStatus.TRANSFERRED, now, command)
    visit = int(row["visit"]) + 1
    moved = {key: row[key] for key in _KEPT_ON_TRANSFER}
    moved.update(
        id=f"{row['id'].split('.')[0]}.{visit}",
        service=service_code,
        visit=visit,
        origin_id=row["id"],
        status=TicketStatus.WAITING.value,
        arrived_at=timestamp(now),
        target_counter=target.number if target else None,
    )
    engine.store.insert_ticket(moved)
    engine.event(now, "transfer", moved["id"], counter.number, command)
    where = target.name if target else f"service {service_code}"
    message = f"{row['label']} transferred to {where}."
    return Reply(
        command.command_id, ok=True, message=message, ticket=view_from_row(moved)
    ), []


def set_availability(
    engine: Engine, command: Command, source: Source, now: datetime
) -> Result:
    """Open, pause or close a counter; its current ticket stays where it is."""
    counter = engine.counter_for(command)
    state = {
        CommandKind.OPEN_COUNTER: CounterAvailability.OPEN,
        CommandKind.PAUSE_COUNTER: CounterAvailability.PAUSED,
        CommandKind.CLOSE_COUNTER: CounterAvailability.CLOSED,
    }[command.kind]
    record_availability(engine, counter, state, now, command, command.reason or "")
    engine.estimator.invalidate()
    return Reply(
        command.command_id, ok=True, message=f"{counter.name} is {state.value}."
    ), []


def officer_at(engine: Engine, counter: int | None, now: datetime) -> str | None:
    """Return the id of the officer logged in at a counter now, or None."""
    if counter is None:
        return None
    day = engine.local_day(now).isoformat()
    login = officers.active_login(engine.store, day, counter)
    return login["officer"] if login else None


def _transfer_target(
    engine: Engine, command: Command, service: str, lane: Lane
) -> Counter | None:
    if command.to_counter is None:
        return None
    target = engine.site.counter(command.to_counter)
    if target is None:
        raise Rejected(
            ErrorCode.UNKNOWN_COUNTER, f"Counter {command.to_counter} does not exist."
        )
    if service not in target.services or lane not in target.lanes:
        raise Rejected(
            ErrorCode.NOT_SERVED,
            f"{target.name} does not take {service} tickets in the {lane.value} lane.",
        )
    return target


def _call_to(
    engine: Engine,
    row: dict[str, Any],
    counter: Counter,
    now: datetime,
    command: Command,
) -> Result:
    row.update(
        status=TicketStatus.CALLED.value,
        called_at=timestamp(now),
        counter=counter.number,
        calls=1,
        officer=officer_at(engine, counter.number, now),
    )
    engine.store.update_ticket(
        row["id"],
        {k: row[k] for k in ("status", "called_at", "counter", "calls", "officer")},
    )
    _reopen(engine, counter, now, command)
    call = _announce(engine, row, counter, now, command, recall=False)
    message = f"{row['label']} called to {counter.name}."
    return Reply(
        command.command_id, ok=True, message=message, ticket=view_from_row(row)
    ), [call]


def _announce(
    engine: Engine,
    row: dict[str, Any],
    counter: Counter,
    now: datetime,
    command: Command,
    recall: bool,
) -> CallEvent:
    data = json.dumps({"recall": recall, "counter_name": counter.name})
    seq = engine.event(now, "call", row["id"], counter.number, command, data)
    return CallEvent(seq, now, view_from_row(row), counter.number, counter.name, recall)


def _finish_current(
    engine: Engine, counter: Counter, now: datetime, command: Command
) -> None:
    day = engine.local_day(now).isoformat()
    current = engine.store.at_counter_of(day, counter.number)
    if current is not None:
        # A new call means the officer is done with the ticket in front of them.
        engine.close(current, TicketStatus.FINISHED, now, command)


def _reopen(engine: Engine, counter: Counter, now: datetime, command: Command) -> None:
    """Mark a paused or closed counter open again, because its officer just called."""
    day = engine.local_day(now).isoformat()
    session = engine.store.session_of(day, counter.number)
    if session is not None and session["state"] != CounterAvailability.OPEN:
        _LOGGER.info(
            "%s called a ticket while %s; it is open again",
            counter.name,
            session["state"],
        )
        record_availability(engine, counter, CounterAvailability.OPEN, now, command, "")


def record_availability(
    engine: Engine,
    counter: Counter,
    state: CounterAvailability,
    now: datetime,
    command: Command,
    reason: str,
) -> None:
    """Append a change of a counter's availability to its sessions of the day."""
    engine.store.append_session(
        {
            "day": engine.local_day(now).isoformat(),
            "counter": counter.number,
            "state": state.value,
            "at": timestamp(now),
            "reason": reason or None,
            "command_id": command.command_id,
        }
    )
