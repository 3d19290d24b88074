"""The queue engine: the single owner of ticket state and the only clock that counts.

`Engine.handle` applies one command in one SQLite transaction and returns the
reply and the calls it made; the MQTT side (broker.service) publishes them only
after the commit. A command id is applied once: repeats get the stored reply.
The handlers themselves live in broker.commands.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from broker import contract
from broker.commands import (
    Handler,
    Rejected,
    Source,
    appointments,
    authorize,
    counters,
    sessions,
    tickets,
)
from broker.contract import (
    CallEvent,
    Command,
    CommandKind,
    ErrorCode,
    OfficeState,
    PrintRequest,
    Reply,
    TicketStatus,
)
from broker.estimate import Estimator, WaitEstimate
from broker.policy import Policy, make_policy
from broker.site import Counter, Site
from broker.state import StateBuilder
from broker.store import Store, timestamp

_LOGGER = logging.getLogger(__name__)

Clock = Callable[[], datetime]

HANDLERS: dict[CommandKind, Handler] = {
    CommandKind.ISSUE_TICKET: tickets.issue_ticket,
    CommandKind.CANCEL: tickets.cancel,
    CommandKind.NEXT: counters.next_ticket,
    CommandKind.CALL: counters.call_chosen,
    CommandKind.RECALL: counters.recall,
    CommandKind.NO_SHOW: counters.no_show,
    CommandKind.FINISH: counters.finish,
    CommandKind.TRANSFER: counters.transfer,
    CommandKind.OPEN_COUNTER: counters.set_availability,
    CommandKind.PAUSE_COUNTER: counters.set_availability,
    CommandKind.CLOSE_COUNTER: counters.set_availability,
    CommandKind.CHECK_IN: appointments.check_in,
    CommandKind.PRINT_FAILED: tickets.print_failed,
    CommandKind.REPRINT: tickets.reprint,
    CommandKind.LOGIN: sessions.login,
    CommandKind.LOGOUT: sessions.logout,
    CommandKind.START: counters.start_service,
}

__all__ = ["Clock", "Engine", "Outcome", "Rejected", "Source", "system_clock"]


def system_clock() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Outcome:
    """What one command did: the reply, the calls to announce, and whether it was a repeat."""

    reply: Reply
    calls: tuple[CallEvent, ...] = ()
    repeat: bool = False
    # Tickets to print again, each with the id of the kiosk that prints it.
    prints: tuple[tuple[str, PrintRequest], ...] = ()
    # The database failed, so the command changed nothing (see _database_failed).
    database_failed: bool = False


class Engine:
    """Applies commands to the store, one transaction each."""

    def __init__(
        self,
        site: Site,
        store: Store,
        clock: Clock = system_clock,
        policy: Policy | None = None,
    ) -> None:
        """Apply each counter's policy from the site file, or `policy` at every counter."""
        self.site = site
        self.store = store
        self.clock = clock
        self.estimator = Estimator(site, store)
        self.state = StateBuilder(site, store, self.estimator)
        self._policies = {
            c.number: policy or make_policy(site.policy_of(c)) for c in site.counters
        }
        # Print requests of the command being applied, sent only if it commits.
        self._prints: list[tuple[str, PrintRequest]] = []

    def local_day(self, moment: datetime) -> date:
        """Return the site's calendar day at a moment, whatever zone this machine runs in."""
        return moment.astimezone(self.site.timezone).date()

    def handle(self, command: Command, source: Source) -> Outcome:
        """Apply a command once and return its outcome; a repeated id gets the stored reply."""
        try:
            stored = self.store.stored_reply(command.command_id)
        except sqlite3.Error as exc:
            return Outcome(
                reply=_database_failed(command, source, exc), database_failed=True
            )
        if stored is not None:
            _LOGGER.debug(
                "Command %s repeated by %s/%s",
                command.command_id,
                source.role,
                source.device,
            )
            return Outcome(
                reply=contract.decode_reply(json.dumps(stored).encode()), repeat=True
            )

        now = self.clock()
        self._prints = []
        try:
            with self.store.transaction():
                self._close_earlier_days(now)
                try:
                    authorize(source, command)
                    sessions.require_login(self, command, source, now)
                    reply, calls = HANDLERS[command.kind](self, command, source, now)
                except Rejected as rejected:
                    reply = Reply(
                        command.command_id,
                        ok=False,
                        error=rejected.code,
                        message=rejected.message,
                    )
                    calls = []
                    self._prints = []
                self._record(command, source, now, reply)
        except sqlite3.Error as exc:
            # Nothing was written: the transaction rolled back as a whole.
            return Outcome(
                reply=_database_failed(command, source, exc), database_failed=True
            )
        if not reply.ok:
            _LOGGER.info(
                "Rejected %s from %s/%s: %s",
                command.kind,
                source.role,
                source.device,
                reply.message,
            )
        return Outcome(reply=reply, calls=tuple(calls), prints=tuple(self._prints))

    def snapshot(self) -> OfficeState:
        """Return the office state as clients render it."""
        return self.state.snapshot(self.clock())

    def estimate_waiting(self, ticket_id: str) -> WaitEstimate | None:
        """Estimate the rest of the wait of a waiting ticket now; None if it is not waiting."""
        return self.state.estimate_waiting(ticket_id, self.clock())

    # Helpers the command handlers share -----------------------------------------

    def request_print(self, kiosk: str, request: PrintRequest) -> None:
        """Ask a kiosk to print a ticket once the current command commits."""
        self._prints.append((kiosk, request))

    def policy_of(self, counter: Counter) -> Policy:
        """Return the queue policy in force at a counter."""
        return self._policies[counter.number]

    def counter_for(self, command: Command) -> Counter:
        """Return the counter a command names, or reject the command."""
        counter = self.site.counter(command.counter or 0)
        if counter is None:
            numbers = ", ".join(str(c.number) for c in self.site.counters)
            raise Rejected(
                ErrorCode.UNKNOWN_COUNTER,
                f"Counter {command.counter} does not exist; the counters are {numbers}.",
            )
        return counter

    def current_at(self, counter: Counter, now: datetime) -> dict[str, Any]:
        """Return the ticket a counter has called, or reject the command."""
        current = self.store.at_counter_of(
            self.local_day(now).isoformat(), counter.number
        )
        if current is None:
            raise Rejected(
                ErrorCode.NO_CURRENT_TICKET,
                f"{counter.name} has no ticket called; press Next first.",
            )
        return current

    def waiting_by_label(self, label: str, now: datetime) -> dict[str, Any]:
        """Return today's waiting ticket with this label, or reject the command."""
        day = self.local_day(now).isoformat()
        row = next((r for r in self.store.waiting(day) if r["label"] == label), None)
        if row is None:
            raise Rejected(
                ErrorCode.UNKNOWN_TICKET,
                f"No ticket {label} is waiting today; check the number on the ticket.",
            )
        return row

    def close(
        self, row: dict[str, Any], status: TicketStatus, now: datetime, command: Command
    ) -> dict[str, Any]:
        """End a ticket's visit with a final status and return the changed row."""
        changes = {"status": status.value, "finished_at": timestamp(now)}
        if status is TicketStatus.FINISHED and not row.get("served_at"):
            # A ticket finished without a START counts its service from the call.
            changes["served_at"] = row["called_at"]
        # The officer who closes the visit is credited with it, as after a takeover.
        officer = counters.officer_at(self, row.get("counter"), now)
        if officer is not None:
            changes["officer"] = officer
        self.store.update_ticket(row["id"], changes)
        self.event(now, status.value, row["id"], row["counter"], command)
        self.estimator.invalidate()
        return {**row, **changes}

    def event(
        self,
        now: datetime,
        kind: str,
        ticket_id: str,
        counter: int | None,
        command: Command,
        data: str | None = None,
    ) -> int:
        """Append an event to the log and return its sequence number."""
        return self.store.append_event(
            {
                "at": timestamp(now),
                "day": self.local_day(now).isoformat(),
                "kind": kind,
                "ticket_id": ticket_id,
                "counter": counter,
                "command_id": command.command_id,
                "data": data,
            }
        )

    def _record(
        self, command: Command, source: Source, now: datetime, reply: Reply
    ) -> None:
        self.store.record_command(
            {
                "command_id": command.command_id,
                "kind": command.kind.value,
                "role": source.role.value,
                "device": source.device,
                "received_at": timestamp(now),
                # The log keeps every field but a login's PIN.
                "payload": contract.encode(replace(command, pin=None)).decode(),
                "ok": int(reply.ok),
                "error": reply.error.value if reply.error else None,
                "reply": contract.encode(reply).decode(),
            }
        )

    def _close_earlier_days(self, now: datetime) -> None:
        closed = self.store.close_earlier_days(
            self.local_day(now).isoformat(), timestamp(now)
        )
        if closed:
            _LOGGER.info("Voided %d tickets left open from earlier days", closed)


# The problem and its fix to report for each SQLite failure, by result code name.
_DATABASE_ADVICE = {
    "SQLITE_FULL": (
        "is full (no disk space left, or its size limit reached)",
        "Free disk space on the office PC, then try again.",
    ),
    "SQLITE_READONLY": (
        "is read-only",
        "Make the data directory and its antrean.sqlite writable again.",
    ),
    "SQLITE_BUSY": (
        "is locked by another program",
        "Close the program holding it, then try again.",
    ),
}


def _database_failed(command: Command, source: Source, error: sqlite3.Error) -> Reply:
    """Log a failed database step and return the reply that gives its reason."""
    code = getattr(error, "sqlite_errorname", None) or type(error).__name__
    _LOGGER.error(
        "Command %s (%s) from %s/%s failed in the database (%s): %s",
        command.command_id,
        command.kind,
        source.role,
        source.device,
        code,
        error,
    )
    problem, advice = _DATABASE_ADVICE.get(
        code, (f"failed ({code})", "Call the office's technician.")
    )
    message = f"The queue database {problem}; nothing was changed. {advice}"
    return Reply(
        command.command_id, ok=False, error=ErrorCode.UNAVAILABLE, message=message
    )
