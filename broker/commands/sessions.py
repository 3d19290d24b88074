"""Commands that log an officer in to a counter and out of it, and the rule that
a counter terminal acts only while an officer is logged in there."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from broker import officers
from broker.commands import Rejected, Result, Source
from broker.commands.counters import officer_at, record_availability
from broker.contract import (
    Command,
    CommandKind,
    CounterAvailability,
    ErrorCode,
    Reply,
    Role,
)
from broker.site import Counter
from broker.store import timestamp

if TYPE_CHECKING:
    from broker.engine import Engine

_LOGGER = logging.getLogger(__name__)

# A counter terminal may send these while no officer is logged in there.
WITHOUT_LOGIN = frozenset({CommandKind.LOGIN, CommandKind.LOGOUT})


def login(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Log an officer in to a counter after checking the PIN, and open the counter.

    An officer logged in at another counter is rejected. Another officer's
    login at this counter ends, so a colleague can take over a terminal that
    was left logged in.
    """
    counter = engine.counter_for(command)
    officer_id = command.officer or ""
    _reject_when_locked(engine, officer_id, source, now)
    row = officers.find_officer(engine.store, officer_id)
    pin = command.pin or ""
    valid = (
        officers.verify_pin(pin, row["pin_hash"])
        if row is not None
        else officers.verify_unknown(pin)
    )
    if row is None or not valid:
        _LOGGER.warning(
            "Wrong officer id or PIN for %r at %s", officer_id, counter.name
        )
        raise Rejected(
            ErrorCode.LOGIN_FAILED,
            f"Officer id or PIN is wrong; try again. After "
            f"{officers.LOGIN_FAILURE_LIMIT} wrong tries, logging in is locked "
            f"for {officers.LOGIN_LOCK_MINUTES} minutes.",
        )

    day = engine.local_day(now).isoformat()
    logins = officers.active_logins(engine.store, day)
    _reject_when_elsewhere(engine, logins, officer_id, row["name"], counter)
    current = logins.get(counter.number)
    if current is not None and current["officer"] == officer_id:
        message = f"{row['name']} is already logged in at {counter.name}."
        return Reply(command.command_id, ok=True, message=message), []
    if current is not None:
        officers.end_login(
            engine.store,
            current["seq"],
            timestamp(now),
            command.command_id,
            ended_by=f"login:{officer_id}",
        )
        _LOGGER.info(
            "%s: login of %s ends the login of %s",
            counter.name,
            officer_id,
            current["officer"],
        )
    officers.start_login(
        engine.store,
        day,
        counter.number,
        officer_id,
        timestamp(now),
        command.command_id,
    )
    record_availability(engine, counter, CounterAvailability.OPEN, now, command, "")
    engine.estimator.invalidate()
    _LOGGER.info("Officer %s logged in at %s", officer_id, counter.name)
    message = f"{row['name']} logged in at {counter.name}."
    return Reply(command.command_id, ok=True, message=message), []


def logout(engine: Engine, command: Command, source: Source, now: datetime) -> Result:
    """Log the officer out of a counter and close the counter.

    A ticket still called or served at the counter must be finished, marked
    not present or transferred first, so that nobody is left at a closed counter.
    """
    counter = engine.counter_for(command)
    day = engine.local_day(now).isoformat()
    current = officers.active_login(engine.store, day, counter.number)
    if current is None:
        raise Rejected(
            ErrorCode.NOT_LOGGED_IN, f"No officer is logged in at {counter.name}."
        )
    ticket = engine.store.at_counter_of(day, counter.number)
    if ticket is not None:
        raise Rejected(
            ErrorCode.TICKET_AT_COUNTER,
            f"{ticket['label']} is still at {counter.name}. Finish it, mark it "
            "not present or transfer it before logging out.",
        )
    officers.end_login(
        engine.store, current["seq"], timestamp(now), command.command_id, "logout"
    )
    record_availability(
        engine, counter, CounterAvailability.CLOSED, now, command, "logout"
    )
    engine.estimator.invalidate()
    _LOGGER.info("Officer %s logged out of %s", current["officer"], counter.name)
    message = f"Logged out of {counter.name}; it is closed."
    return Reply(command.command_id, ok=True, message=message), []


def require_login(
    engine: Engine, command: Command, source: Source, now: datetime
) -> None:
    """Reject a counter terminal's command while no officer is logged in there.

    Operators, the engine, kiosks and displays are not affected, and neither
    are LOGIN and LOGOUT themselves.
    """
    if source.role is not Role.COUNTER or command.kind in WITHOUT_LOGIN:
        return
    counter = _source_counter(engine, source)
    if officer_at(engine, counter.number, now) is None:
        raise Rejected(
            ErrorCode.NOT_LOGGED_IN,
            f"No officer is logged in at {counter.name}. Log in with your "
            "officer id and PIN first.",
        )


def _source_counter(engine: Engine, source: Source) -> Counter:
    counter = (
        engine.site.counter(int(source.device)) if source.device.isdigit() else None
    )
    if counter is None:
        raise Rejected(
            ErrorCode.FORBIDDEN,
            f"counter {source.device!r} is not a counter of this site.",
        )
    return counter


def _reject_when_locked(
    engine: Engine, officer_id: str, source: Source, now: datetime
) -> None:
    since = now - timedelta(minutes=officers.LOGIN_LOCK_MINUTES)
    failures = officers.recent_failures(engine.store, officer_id, source.device, since)
    if failures >= officers.LOGIN_FAILURE_LIMIT:
        _LOGGER.warning(
            "Login of %r from %s/%s locked after %d wrong tries",
            officer_id,
            source.role.value,
            source.device,
            failures,
        )
        raise Rejected(
            ErrorCode.LOGIN_LOCKED,
            f"Too many wrong tries: logging in is locked for up to "
            f"{officers.LOGIN_LOCK_MINUTES} minutes. Ask the supervisor if you "
            "forgot your PIN.",
        )


def _reject_when_elsewhere(
    engine: Engine,
    logins: dict[int, dict],
    officer_id: str,
    name: str,
    counter: Counter,
) -> None:
    for number, row in logins.items():
        if row["officer"] == officer_id and number != counter.number:
            other = engine.site.counter(number)
            where = other.name if other else f"counter {number}"
            raise Rejected(
                ErrorCode.LOGGED_IN_ELSEWHERE,
                f"{name} is logged in at {where}. Log out there first.",
            )
