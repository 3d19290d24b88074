"""The queue engine: the single owner of ticket state and the only clock that counts.

`Engine.handle` applies one command in one SQLite transaction and returns the
reply and the calls it made; the MQTT side (broker.service) publishes them only
after the commit. A command id is applied once: repeats get the stored reply.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from broker import contract
from broker.availability import CounterStatus, counter_statuses
from broker.contract import (
    CallEvent,
    Command,
    CommandKind,
    CounterAvailability,
    CounterState,
    ErrorCode,
    OfficeState,
    Reply,
    Role,
    ServiceLoad,
    TicketStatus,
    TicketView,
    WaitRange,
)
from broker.estimate import Estimator, WaitEstimate
from broker.policy import (
    Candidate,
    Policy,
    PolicyContext,
    WaitingQueue,
    make_policy,
    people_ahead,
)
from broker.site import Counter, Lane, Site
from broker.store import Store, timestamp

_LOGGER = logging.getLogger(__name__)

RECENT_CALLS = 8
# Calls of a counter a policy sees; the ratio policy needs at most 20.
POLICY_HISTORY = 20
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


class Rejected(Exception):
    """A command that cannot be applied; becomes an error reply, changes nothing."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Source:
    """Who sent a command: the role and device id from its topic."""

    role: Role
    device: str


@dataclass(frozen=True)
class Outcome:
    """What one command did: the reply, the calls to announce, and whether it was a repeat."""

    reply: Reply
    calls: tuple[CallEvent, ...] = ()
    repeat: bool = False


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
        self.policy = policy
        self.estimator = Estimator(site, store)
        self._policies = {
            c.number: policy or make_policy(site.policy_of(c)) for c in site.counters
        }
        self._handlers: dict[
            CommandKind,
            Callable[[Command, Source, datetime], tuple[Reply, list[CallEvent]]],
        ] = {
            CommandKind.ISSUE_TICKET: self._issue_ticket,
            CommandKind.NEXT: self._next,
            CommandKind.RECALL: self._recall,
            CommandKind.NO_SHOW: self._no_show,
            CommandKind.FINISH: self._finish,
            CommandKind.TRANSFER: self._transfer,
            CommandKind.CALL: self._call_chosen,
            CommandKind.CANCEL: self._cancel,
            CommandKind.OPEN_COUNTER: self._set_availability,
            CommandKind.PAUSE_COUNTER: self._set_availability,
            CommandKind.CLOSE_COUNTER: self._set_availability,
        }

    def local_day(self, moment: datetime) -> date:
        """Return the site's calendar day at a moment, whatever zone this machine runs in."""
        return moment.astimezone(self.site.timezone).date()

    def handle(self, command: Command, source: Source) -> Outcome:
        """Apply a command once and return its outcome; a repeated id gets the stored reply."""
        stored = self.store.stored_reply(command.command_id)
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
        try:
            with self.store.transaction():
                self._close_earlier_days(now)
                try:
                    reply, calls = self._handlers[command.kind](command, source, now)
                except Rejected as rejected:
                    reply = Reply(
                        command.command_id,
                        ok=False,
                        error=rejected.code,
                        message=rejected.message,
                    )
                    calls = []
                self._record(command, source, now, reply)
        except sqlite3.Error as exc:
            # Nothing was written: the transaction rolled back as a whole.
            _LOGGER.error(
                "Command %s from %s/%s failed in the database: %s",
                command.command_id,
                source.role,
                source.device,
                exc,
            )
            message = "The queue database cannot be written; nothing was changed. Call the office's technician."
            return Outcome(
                reply=Reply(
                    command.command_id,
                    ok=False,
                    error=ErrorCode.UNAVAILABLE,
                    message=message,
                )
            )
        if not reply.ok:
            _LOGGER.info(
                "Rejected %s from %s/%s: %s",
                command.kind,
                source.role,
                source.device,
                reply.message,
            )
        return Outcome(reply=reply, calls=tuple(calls))

    # State -------------------------------------------------------------------

    def snapshot(self) -> OfficeState:
        """Return the office state as clients render it."""
        now = self.clock()
        day = self.local_day(now).isoformat()
        at_counter = self.store.at_counter(day)
        statuses = counter_statuses(self.store, self.site, day, now)
        counters = tuple(
            CounterState(
                c.number,
                c.name,
                _view(at_counter[c.number]) if c.number in at_counter else None,
                availability=statuses[c.number].availability,
                reason=statuses[c.number].reason,
            )
            for c in self.site.counters
        )
        waiting = self.store.waiting(day)
        issued = self.store.issued_counts(day)
        candidates = [_candidate(row, index) for index, row in enumerate(waiting)]
        services = tuple(
            ServiceLoad(
                code=s.code,
                waiting_normal=sum(
                    1
                    for t in waiting
                    if t["service"] == s.code and t["lane"] == Lane.NORMAL
                ),
                waiting_priority=sum(
                    1
                    for t in waiting
                    if t["service"] == s.code and t["lane"] == Lane.PRIORITY
                ),
                issued=issued.get(s.code, 0),
                quota=s.daily_quota,
                wait_normal=self._lane_wait(
                    now, candidates, s.code, Lane.NORMAL, at_counter, statuses
                ),
                wait_priority=self._lane_wait(
                    now, candidates, s.code, Lane.PRIORITY, at_counter, statuses
                ),
            )
            for s in self.site.services
        )
        calls = tuple(
            self._call_from_row(row)
            for row in self.store.recent_calls(day, RECENT_CALLS)
        )
        return OfficeState(self.site.id, now, day, counters, services, calls)

    def estimate_waiting(self, ticket_id: str) -> WaitEstimate | None:
        """Estimate the rest of the wait of a waiting ticket now; None if it is not waiting."""
        now = self.clock()
        day = self.local_day(now).isoformat()
        waiting = self.store.waiting(day)
        candidates = [_candidate(row, index) for index, row in enumerate(waiting)]
        target = next((c for c in candidates if c.ticket_id == ticket_id), None)
        if target is None:
            return None
        return self._estimate(now, candidates, target)

    def _estimate(
        self,
        now: datetime,
        candidates: list[Candidate],
        target: Candidate,
        statuses: dict[int, CounterStatus] | None = None,
        at_counter: dict[int, dict[str, Any]] | None = None,
    ) -> WaitEstimate:
        day = self.local_day(now)
        if at_counter is None:
            at_counter = self.store.at_counter(day.isoformat())
        if statuses is None:
            statuses = counter_statuses(self.store, self.site, day.isoformat(), now)
        return self.estimator.estimate(
            now, day, candidates, target, at_counter, statuses
        )

    def _lane_wait(
        self,
        now: datetime,
        candidates: list[Candidate],
        service: str,
        lane: Lane,
        at_counter: dict[int, dict[str, Any]],
        statuses: dict[int, CounterStatus],
    ) -> WaitRange | None:
        """Estimate the wait of a ticket of this service and lane if it were issued now."""
        if not any(
            service in c.services and lane in c.lanes for c in self.site.counters
        ):
            return None
        stamp = timestamp(now)
        probe = Candidate(
            f"new-{service}-{lane.value}",
            service,
            lane,
            stamp,
            len(candidates),
            issued_at=stamp,
        )
        estimate = self._estimate(
            now, [*candidates, probe], probe, statuses, at_counter
        )
        return estimate.as_range()

    # Command handlers --------------------------------------------------------

    def _issue_ticket(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        service = self.site.service(command.service or "")
        if service is None:
            codes = ", ".join(s.code for s in self.site.services)
            raise Rejected(
                ErrorCode.UNKNOWN_SERVICE,
                f"Service {command.service!r} does not exist here; use one of {codes}.",
            )
        lane = Lane.NORMAL
        if command.category is not None:
            if self.site.category(command.category) is None:
                keys = ", ".join(c.key for c in self.site.priority_categories)
                raise Rejected(
                    ErrorCode.UNKNOWN_CATEGORY,
                    f"Priority category {command.category!r} does not exist; use one of {keys}.",
                )
            lane = Lane.PRIORITY

        day = self.local_day(now).isoformat()
        number = self.store.next_number(day, service.code)
        if number > service.daily_quota:
            raise Rejected(
                ErrorCode.QUOTA_REACHED,
                f"Today's {service.daily_quota} tickets for {service.name_en} are all issued; please come back on the next working day.",
            )
        waiting = [
            _candidate(row, index) for index, row in enumerate(self.store.waiting(day))
        ]
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
        row.update(self._issue_estimates(now, waiting, row))
        self.store.insert_ticket(row)
        self._event(now, "issue", row["id"], None, command)
        ticket = _view(row)
        return Reply(
            command.command_id,
            ok=True,
            message=f"Ticket {label} issued.",
            ticket=ticket,
        ), []

    def _next(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        counter = self._counter(command)
        day = self.local_day(now).isoformat()
        self._finish_current(counter, now, command)

        waiting = self.store.waiting(day)
        queue = WaitingQueue(
            (_candidate(row, index) for index, row in enumerate(waiting)),
            self.site.policy.transfers,
        )
        history = tuple(
            Lane(lane)
            for lane in self.store.call_lanes(day, counter.number, POLICY_HISTORY)
        )
        chosen = self._policies[counter.number](
            queue, counter, PolicyContext(now, history)
        )
        if chosen is None:
            message = f"Nobody is waiting for {counter.name}."
            return Reply(
                command.command_id,
                ok=False,
                error=ErrorCode.NOBODY_WAITING,
                message=message,
            ), []

        row = next(r for r in waiting if r["id"] == chosen.ticket_id)
        return self._call_to(row, counter, now, command)

    def _call_chosen(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        """Call a ticket the officer picked, out of the policy's order."""
        counter = self._counter(command)
        row = self._waiting_by_label(command.ticket or "", now)
        if not _candidate(row, 0).eligible_at(counter):
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
        self._finish_current(counter, now, command)
        return self._call_to(row, counter, now, command)

    def _call_to(
        self, row: dict[str, Any], counter: Counter, now: datetime, command: Command
    ) -> tuple[Reply, list[CallEvent]]:
        row.update(
            status=TicketStatus.CALLED.value,
            called_at=timestamp(now),
            counter=counter.number,
            calls=1,
        )
        self.store.update_ticket(
            row["id"], {k: row[k] for k in ("status", "called_at", "counter", "calls")}
        )
        self._reopen(counter, now, command)
        call = self._call(row, counter, now, command, recall=False)
        return Reply(
            command.command_id,
            ok=True,
            message=f"{row['label']} called to {counter.name}.",
            ticket=_view(row),
        ), [call]

    def _cancel(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        """Withdraw a waiting ticket whose applicant left or asked to cancel."""
        row = self._waiting_by_label(command.ticket or "", now)
        changes = {"status": TicketStatus.VOID.value, "finished_at": timestamp(now)}
        self.store.update_ticket(row["id"], changes)
        data = json.dumps({"reason": command.reason}) if command.reason else None
        self._event(now, "cancel", row["id"], None, command, data)
        return Reply(
            command.command_id,
            ok=True,
            message=f"{row['label']} cancelled.",
            ticket=_view({**row, **changes}),
        ), []

    def _set_availability(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        """Open, pause or close a counter; its current ticket stays where it is."""
        counter = self._counter(command)
        state = {
            CommandKind.OPEN_COUNTER: CounterAvailability.OPEN,
            CommandKind.PAUSE_COUNTER: CounterAvailability.PAUSED,
            CommandKind.CLOSE_COUNTER: CounterAvailability.CLOSED,
        }[command.kind]
        self._record_session(counter, state, now, command, command.reason or "")
        self.estimator.invalidate()
        return Reply(
            command.command_id, ok=True, message=f"{counter.name} is {state.value}."
        ), []

    def _recall(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        counter = self._counter(command)
        row = self._current(counter, now)
        row["calls"] = int(row["calls"] or 0) + 1
        self.store.update_ticket(row["id"], {"calls": row["calls"]})
        call = self._call(row, counter, now, command, recall=True)
        return Reply(
            command.command_id,
            ok=True,
            message=f"{row['label']} called again.",
            ticket=_view(row),
        ), [call]

    def _no_show(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        counter = self._counter(command)
        row = self._close(
            self._current(counter, now), TicketStatus.NO_SHOW, now, command
        )
        return Reply(
            command.command_id,
            ok=True,
            message=f"{row['label']} marked as not present.",
            ticket=_view(row),
        ), []

    def _finish(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        counter = self._counter(command)
        row = self._close(
            self._current(counter, now), TicketStatus.FINISHED, now, command
        )
        return Reply(
            command.command_id,
            ok=True,
            message=f"{row['label']} finished.",
            ticket=_view(row),
        ), []

    def _transfer(
        self, command: Command, source: Source, now: datetime
    ) -> tuple[Reply, list[CallEvent]]:
        counter = self._counter(command)
        row = self._current(counter, now)
        service_code = command.to_service or row["service"]
        if self.site.service(service_code) is None:
            codes = ", ".join(s.code for s in self.site.services)
            raise Rejected(
                ErrorCode.UNKNOWN_SERVICE,
                f"Service {service_code!r} does not exist here; use one of {codes}.",
            )
        target = None
        if command.to_counter is not None:
            target = self.site.counter(command.to_counter)
            if target is None:
                raise Rejected(
                    ErrorCode.UNKNOWN_COUNTER,
                    f"Counter {command.to_counter} does not exist.",
                )
            if (
                service_code not in target.services
                or Lane(row["lane"]) not in target.lanes
            ):
                raise Rejected(
                    ErrorCode.NOT_SERVED,
                    f"{target.name} does not take {service_code} tickets in the {row['lane']} lane.",
                )

        self._close(row, TicketStatus.TRANSFERRED, now, command)
        visit = int(row["visit"]) + 1
        moved = {
            key: row[key]
            for key in (
                "day",
                "lane",
                "category",
                "number",
                "label",
                "kiosk",
                "issued_at",
                "people_ahead",
            )
        }
        moved.update(
            id=f"{row['id'].split('.')[0]}.{visit}",
            service=service_code,
            visit=visit,
            origin_id=row["id"],
            status=TicketStatus.WAITING.value,
            arrived_at=timestamp(now),
            target_counter=target.number if target else None,
        )
        self.store.insert_ticket(moved)
        self._event(now, "transfer", moved["id"], counter.number, command)
        where = target.name if target else f"service {service_code}"
        return Reply(
            command.command_id,
            ok=True,
            message=f"{row['label']} transferred to {where}.",
            ticket=_view(moved),
        ), []

    # Helpers -----------------------------------------------------------------

    def _counter(self, command: Command) -> Counter:
        counter = self.site.counter(command.counter or 0)
        if counter is None:
            numbers = ", ".join(str(c.number) for c in self.site.counters)
            raise Rejected(
                ErrorCode.UNKNOWN_COUNTER,
                f"Counter {command.counter} does not exist; the counters are {numbers}.",
            )
        return counter

    def _finish_current(
        self, counter: Counter, now: datetime, command: Command
    ) -> None:
        current = self.store.at_counter(self.local_day(now).isoformat()).get(
            counter.number
        )
        if current is not None:
            # A new call means the officer is done with the ticket in front of them.
            self._close(current, TicketStatus.FINISHED, now, command)

    def _waiting_by_label(self, label: str, now: datetime) -> dict[str, Any]:
        day = self.local_day(now).isoformat()
        row = next((r for r in self.store.waiting(day) if r["label"] == label), None)
        if row is None:
            raise Rejected(
                ErrorCode.UNKNOWN_TICKET,
                f"No ticket {label} is waiting today; check the number on the ticket.",
            )
        return row

    def _reopen(self, counter: Counter, now: datetime, command: Command) -> None:
        """Mark a paused or closed counter open again, because its officer just called."""
        day = self.local_day(now).isoformat()
        session = self.store.sessions(day).get(counter.number)
        if session is not None and session["state"] != CounterAvailability.OPEN:
            _LOGGER.info(
                "%s called a ticket while %s; it is open again",
                counter.name,
                session["state"],
            )
            self._record_session(counter, CounterAvailability.OPEN, now, command, "")

    def _record_session(
        self,
        counter: Counter,
        state: CounterAvailability,
        now: datetime,
        command: Command,
        reason: str,
    ) -> None:
        self.store.append_session(
            {
                "day": self.local_day(now).isoformat(),
                "counter": counter.number,
                "state": state.value,
                "at": timestamp(now),
                "reason": reason or None,
                "command_id": command.command_id,
            }
        )

    def _issue_estimates(
        self, now: datetime, waiting: list[Candidate], row: dict[str, Any]
    ) -> dict[str, Any]:
        """Estimate a new ticket's wait with the model and both baselines."""
        day = self.local_day(now)
        statuses = counter_statuses(self.store, self.site, day.isoformat(), now)
        target = _candidate(row, len(waiting))
        estimate = self._estimate(now, [*waiting, target], target, statuses)
        shown = estimate.as_range()
        baselines = self.estimator.baselines(
            day, row["service"], Lane(row["lane"]), row["people_ahead"], statuses
        )
        return {
            "estimate": estimate.minutes if math.isfinite(estimate.minutes) else None,
            "estimate_min": shown.low if shown else None,
            "estimate_max": shown.high if shown else None,
            "baseline_queue": baselines.queue,
            "baseline_last": baselines.last_entry,
        }

    def _current(self, counter: Counter, now: datetime) -> dict[str, Any]:
        current = self.store.at_counter(self.local_day(now).isoformat()).get(
            counter.number
        )
        if current is None:
            raise Rejected(
                ErrorCode.NO_CURRENT_TICKET,
                f"{counter.name} has no ticket called; press Next first.",
            )
        return current

    def _close(
        self, row: dict[str, Any], status: TicketStatus, now: datetime, command: Command
    ) -> dict[str, Any]:
        changes = {"status": status.value, "finished_at": timestamp(now)}
        if status is TicketStatus.FINISHED and not row.get("served_at"):
            # NOTE: until counters report the start of service, the call stands in for it.
            changes["served_at"] = row["called_at"]
        self.store.update_ticket(row["id"], changes)
        self._event(now, status.value, row["id"], row["counter"], command)
        self.estimator.invalidate()
        return {**row, **changes}

    def _call(
        self,
        row: dict[str, Any],
        counter: Counter,
        now: datetime,
        command: Command,
        recall: bool,
    ) -> CallEvent:
        data = json.dumps({"recall": recall, "counter_name": counter.name})
        seq = self._event(now, "call", row["id"], counter.number, command, data)
        return CallEvent(seq, now, _view(row), counter.number, counter.name, recall)

    def _call_from_row(self, row: dict[str, Any]) -> CallEvent:
        data = json.loads(row["call_data"] or "{}")
        return CallEvent(
            seq=row["call_seq"],
            at=datetime.fromisoformat(row["call_at"]),
            ticket=_view(row),
            counter=row["call_counter"],
            counter_name=data.get("counter_name", ""),
            recall=bool(data.get("recall")),
        )

    def _event(
        self,
        now: datetime,
        kind: str,
        ticket_id: str,
        counter: int | None,
        command: Command,
        data: str | None = None,
    ) -> int:
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
                "payload": contract.encode(command).decode(),
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


def _candidate(row: dict[str, Any], order: int) -> Candidate:
    return Candidate(
        ticket_id=row["id"],
        service=row["service"],
        lane=Lane(row["lane"]),
        arrived_at=row["arrived_at"],
        order=order,
        target_counter=row.get("target_counter"),
        issued_at=row.get("issued_at") or "",
    )


def _view(row: dict[str, Any]) -> TicketView:
    return TicketView(
        id=row["id"],
        label=row["label"],
        service=row["service"],
        lane=Lane(row["lane"]),
        status=TicketStatus(row["status"]),
        issued_at=datetime.fromisoformat(row["issued_at"]),
        category=row.get("category"),
        counter=row.get("counter"),
        called_at=datetime.fromisoformat(row["called_at"])
        if row.get("called_at")
        else None,
        people_ahead=int(row.get("people_ahead") or 0),
        estimate=_wait_range(row),
    )


def _wait_range(row: dict[str, Any]) -> WaitRange | None:
    if row.get("estimate") is None or row.get("estimate_max") is None:
        return None
    return WaitRange(
        minutes=round(row["estimate"]),
        low=int(row["estimate_min"]),
        high=int(row["estimate_max"]),
    )
