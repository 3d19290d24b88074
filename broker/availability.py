"""Counter availability: open, paused or closed, from the officer's last word or recent calls."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from broker.contract import CounterAvailability
from broker.site import Site
from broker.store import Store, timestamp

# A counter whose officer never opened, paused or closed it today counts as
# open while it has called a ticket within this many minutes.
IDLE_OPEN_MINUTES = 30


@dataclass(frozen=True)
class CounterStatus:
    """A counter's availability now, with the officer's reason and when it began."""

    number: int
    availability: CounterAvailability
    reason: str = ""
    # Engine timestamp of the latest session row; empty when no session exists.
    since: str = ""


def counter_statuses(
    store: Store, site: Site, day: str, now: datetime
) -> dict[int, CounterStatus]:
    """Return the availability of every counter of the site on a day, as of `now`."""
    sessions = store.sessions(day)
    last_calls = store.last_calls(day)
    idle_since = timestamp(now - timedelta(minutes=IDLE_OPEN_MINUTES))
    return {
        counter.number: _status(
            counter.number,
            sessions.get(counter.number),
            last_calls.get(counter.number),
            idle_since,
        )
        for counter in site.counters
    }


def _status(
    number: int,
    session: dict[str, Any] | None,
    last_call: str | None,
    idle_since: str,
) -> CounterStatus:
    if session is not None:
        return CounterStatus(
            number,
            CounterAvailability(session["state"]),
            session["reason"] or "",
            session["at"],
        )
    if last_call is not None and last_call >= idle_since:
        return CounterStatus(number, CounterAvailability.OPEN)
    return CounterStatus(number, CounterAvailability.CLOSED)
