"""Queue policies: which waiting ticket a counter takes when its officer presses Next.

A policy is a plain function of the waiting tickets and the counter, so the
same tickets and the same command always give the same choice, whatever the
clocks of the machines that sent them say.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from broker.site import Counter, Lane


@dataclass(frozen=True)
class Candidate:
    """A waiting ticket as a policy sees it."""

    ticket_id: str
    service: str
    lane: Lane
    arrived_at: str
    order: int
    target_counter: int | None = None

    def eligible_at(self, counter: Counter) -> bool:
        """Tell whether this counter may take the ticket at all."""
        return (
            self.service in counter.services
            and self.lane in counter.lanes
            and self.target_counter in (None, counter.number)
        )


Policy = Callable[[Sequence[Candidate], Counter], Candidate | None]


def priority_then_arrival(
    waiting: Sequence[Candidate], counter: Counter
) -> Candidate | None:
    """Take the priority lane first, then the earliest arrival, among tickets the counter serves.

    `arrived_at` is the engine's UTC timestamp and `order` the insertion order,
    which breaks ties between tickets of the same microsecond.
    """
    eligible = [ticket for ticket in waiting if ticket.eligible_at(counter)]
    return min(
        eligible,
        key=lambda ticket: (
            ticket.lane is not Lane.PRIORITY,
            ticket.arrived_at,
            ticket.order,
        ),
        default=None,
    )


def people_ahead(waiting: Sequence[Candidate], service: str, lane: Lane) -> int:
    """Count the waiting tickets of a service that go before a new ticket in this lane.

    NOTE: this counts by lane alone: a priority ticket waits behind the priority
    lane of its service, a normal ticket behind both lanes. It ignores which
    counters take which lanes.
    """
    return sum(
        1
        for ticket in waiting
        if ticket.service == service
        and (lane is Lane.NORMAL or ticket.lane is Lane.PRIORITY)
    )


DEFAULT_POLICY: Policy = priority_then_arrival
