"""The office state the engine publishes, and the wait estimates inside it."""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any

from broker import officers
from broker.availability import CounterStatus, counter_statuses
from broker.contract import (
    CounterState,
    OfficeState,
    ServiceLoad,
    WaitingTicket,
    WaitRange,
)
from broker.estimate import Estimator, WaitEstimate
from broker.policy import Candidate
from broker.rows import (
    call_from_row,
    candidate_from_row,
    candidates_from_policy_rows,
    candidates_from_rows,
    view_from_row,
)
from broker.site import Lane, Site
from broker.store import Store, timestamp

RECENT_CALLS = 8
# The waiting list in the state shows the oldest tickets of each service and
# lane, up to these bounds, so the retained state stays within
# contract.MAX_STATE_BYTES however long the queues grow.
WAITING_LISTED_PER_LANE = 6
WAITING_LISTED_MAX = 40
UNPRINTED_LISTED = 9


class StateBuilder:
    """Reads the store into OfficeState and estimates waits for it."""

    def __init__(self, site: Site, store: Store, estimator: Estimator) -> None:
        self.site = site
        self.store = store
        self.estimator = estimator

    def local_day(self, moment: datetime) -> date:
        """Return the site's calendar day at a moment, whatever zone this machine runs in."""
        return moment.astimezone(self.site.timezone).date()

    def snapshot(self, now: datetime) -> OfficeState:
        """Return the office state as clients render it."""
        day = self.local_day(now).isoformat()
        at_counter = self.store.at_counter(day)
        statuses = counter_statuses(self.store, self.site, day, now)
        counters = self._counters(day, at_counter, statuses)
        waiting = self.store.waiting(day)
        issued = self.store.issued_counts(day)
        candidates = candidates_from_rows(waiting)

        def count(service: str, lane: Lane) -> int:
            return sum(
                1 for t in waiting if t["service"] == service and t["lane"] == lane
            )

        def wait(service: str, lane: Lane) -> WaitRange | None:
            return self._lane_wait(now, candidates, service, lane, at_counter, statuses)

        services = tuple(
            ServiceLoad(
                code=s.code,
                waiting_normal=count(s.code, Lane.NORMAL),
                waiting_priority=count(s.code, Lane.PRIORITY),
                issued=issued.get(s.code, 0),
                quota=s.daily_quota,
                wait_normal=wait(s.code, Lane.NORMAL),
                wait_priority=wait(s.code, Lane.PRIORITY),
            )
            for s in self.site.services
        )
        calls = tuple(
            call_from_row(row) for row in self.store.recent_calls(day, RECENT_CALLS)
        )
        unprinted = self.store.not_printed(day, UNPRINTED_LISTED)
        return OfficeState(
            self.site.id,
            now,
            day,
            counters,
            services,
            calls,
            waiting_list(waiting),
            tuple(_waiting_ticket(row) for row in unprinted),
        )

    def _counters(
        self,
        day: str,
        at_counter: dict[int, dict[str, Any]],
        statuses: dict[int, CounterStatus],
    ) -> tuple[CounterState, ...]:
        logins = officers.active_logins(self.store, day)
        names = officers.officer_names(self.store) if logins else {}
        counts = officers.day_counts(self.store, day) if logins else {}
        states = []
        for c in self.site.counters:
            officer = logins[c.number]["officer"] if c.number in logins else ""
            served, no_shows = counts.get(officer, (0, 0))
            current = at_counter.get(c.number)
            states.append(
                CounterState(
                    c.number,
                    c.name,
                    view_from_row(current) if current else None,
                    availability=statuses[c.number].availability,
                    reason=statuses[c.number].reason,
                    officer=officer,
                    officer_name=names.get(officer, ""),
                    served=served,
                    no_shows=no_shows,
                )
            )
        return tuple(states)

    def estimate_waiting(self, ticket_id: str, now: datetime) -> WaitEstimate | None:
        """Estimate the rest of the wait of a waiting ticket; None if it is not waiting."""
        day = self.local_day(now).isoformat()
        candidates = candidates_from_policy_rows(self.store.waiting_for_policy(day))
        target = next((c for c in candidates if c.ticket_id == ticket_id), None)
        if target is None:
            return None
        return self.estimate(now, candidates, target)

    def estimate(
        self,
        now: datetime,
        candidates: list[Candidate],
        target: Candidate,
        statuses: dict[int, CounterStatus] | None = None,
        at_counter: dict[int, dict[str, Any]] | None = None,
    ) -> WaitEstimate:
        """Estimate the wait of one candidate among the waiting ones."""
        day = self.local_day(now)
        if at_counter is None:
            at_counter = self.store.at_counter(day.isoformat())
        if statuses is None:
            statuses = counter_statuses(self.store, self.site, day.isoformat(), now)
        return self.estimator.estimate(
            now, day, candidates, target, at_counter, statuses
        )

    def issue_estimates(
        self, now: datetime, waiting: list[Candidate], row: dict[str, Any]
    ) -> dict[str, Any]:
        """Estimate a new ticket's wait with the model and both baselines, as columns."""
        day = self.local_day(now)
        statuses = counter_statuses(self.store, self.site, day.isoformat(), now)
        target = candidate_from_row(row, len(waiting))
        estimate = self.estimate(now, [*waiting, target], target, statuses)
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
        estimate = self.estimate(now, [*candidates, probe], probe, statuses, at_counter)
        return estimate.as_range()


def waiting_list(rows: list[dict[str, Any]]) -> tuple[WaitingTicket, ...]:
    """Return the oldest waiting tickets of each service and lane, in arrival order.

    Each service and lane lists up to WAITING_LISTED_PER_LANE tickets. Past
    WAITING_LISTED_MAX in all, the lists are cut evenly: every service and
    lane keeps its first ticket before any keeps a second one.
    """
    rank: dict[str, int] = {}
    per_lane: dict[tuple[str, str], int] = {}
    for row in rows:
        key = (row["service"], row["lane"])
        position = per_lane.get(key, 0)
        per_lane[key] = position + 1
        if position < WAITING_LISTED_PER_LANE:
            rank[row["id"]] = position
    chosen = sorted(rank, key=lambda ticket_id: rank[ticket_id])[:WAITING_LISTED_MAX]
    kept = set(chosen)
    return tuple(_waiting_ticket(row) for row in rows if row["id"] in kept)


def _waiting_ticket(row: dict[str, Any]) -> WaitingTicket:
    return WaitingTicket(
        label=row["label"],
        service=row["service"],
        lane=Lane(row["lane"]),
        # Whole seconds keep the retained state short.
        arrived_at=datetime.fromisoformat(row["arrived_at"]).replace(microsecond=0),
        category=row.get("category"),
        target_counter=row.get("target_counter"),
    )
