"""Wait estimates: a forward run of the real queue policies over the waiting list.

Service times are learned from finished tickets in the store, with the site's
`minutes` as the prior; the 80 % range comes from resampling those times.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import statistics
from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from broker.availability import CounterStatus
from broker.contract import CounterAvailability, WaitRange
from broker.policy import (
    Candidate,
    Policy,
    PolicyContext,
    WaitingQueue,
    make_policy,
)
from broker.site import Counter, Lane, PolicyConfig, PolicyKind, Site
from broker.store import Store, timestamp

_LOGGER = logging.getLogger(__name__)

HISTORY_DAYS = 28
HISTORY_LIMIT = 3000
# The site's minutes count as this many observed services of each service.
PRIOR_WEIGHT = 5.0
# Coefficient of variation assumed for service times before any is observed.
PRIOR_CV = 0.5
COUNTER_MIN_SAMPLES = 30
NO_SHOW_PRIOR_SHARE = 0.05
NO_SHOW_PRIOR_MINUTES = 1.0
PAUSE_PRIOR_MINUTES = 20.0
# A pause that already lasts longer than expected is assumed to end this soon.
OVERDUE_PAUSE_MINUTES = 3.0
ARRIVAL_WINDOW_MINUTES = 60
HORIZON_MINUTES = 8 * 60
POOL_SIZE = 256
MONTE_CARLO_RUNS = 200
# Above this many tickets ahead the range comes from the normal approximation
# of a sum of service times, which keeps an estimate within a few milliseconds.
MONTE_CARLO_MAX_AHEAD = 25
RANGE_QUANTILES = (0.10, 0.90)
# Once this many past tickets have an estimate and a call, the range comes from
# the quantiles of their errors relative to (estimate + CALIBRATION_SLACK_MINUTES).
CALIBRATION_MIN_TICKETS = 50
CALIBRATION_SLACK_MINUTES = 5.0
# Learning reads up to HISTORY_LIMIT visits and as many estimates, which at that
# size costs more than the rest of an issue command (measured here). So the
# model is learned again only once the changes since (closed visits, pauses)
# outnumber this share of the visits it was learned from. Below 100 visits every
# change counts.
RELEARN_SHARE = 0.01
_Z90 = statistics.NormalDist().inv_cdf(RANGE_QUANTILES[1])


@dataclass(frozen=True)
class WaitEstimate:
    """An estimated wait in minutes: the point estimate and its 80 % range (inf when unbounded)."""

    minutes: float
    low: float
    high: float

    def as_range(self) -> WaitRange | None:
        """Return the whole-minute range a ticket shows, or None when the wait has no bound."""
        if not math.isfinite(self.high):
            return None
        return WaitRange(
            minutes=round(self.minutes),
            low=math.floor(self.low),
            high=math.ceil(self.high),
        )


@dataclass(frozen=True)
class Baselines:
    """The two simple estimates kept beside the model, in minutes."""

    queue: float
    last_entry: float


@dataclass(frozen=True)
class ServiceModel:
    """Service times learned from the store: means per service and counter, and samples."""

    means: dict[str, float]
    counter_means: dict[tuple[int, str], float]
    pools: dict[str, tuple[float, ...]]
    variances: dict[str, float]
    pause_minutes: float
    # Per lane, the 10th and 90th percentile of (actual - estimate) / (estimate + slack).
    calibration: dict[Lane, tuple[float, float]]
    # Finished and no-show visits the service times were learned from.
    visits: int = 0

    def mean(self, service: str, counter: int | None = None) -> float:
        """Return the expected minutes of one visit, no-shows included."""
        if counter is not None:
            own = self.counter_means.get((counter, service))
            if own is not None:
                return own
        return self.means[service]


@dataclass(frozen=True)
class _Forecast:
    minutes: float
    ahead: tuple[str, ...]
    counters_used: int


@dataclass
class _SimCounter:
    counter: Counter
    policy: Policy
    history: list[Lane]


class Estimator:
    """Estimates waits for one site; the learned model is cached (RELEARN_SHARE).

    An estimator on another connection to the same file can follow this one's
    count of changes (`changes_from`), so both relearn after the same changes.
    """

    def __init__(
        self, site: Site, store: Store, changes_from: Estimator | None = None
    ) -> None:
        self.site = site
        self.store = store
        # Changes counted by invalidate() since the start, never reset.
        self.changes = 0
        self._changes_from = changes_from or self
        self._model: ServiceModel | None = None
        self._model_day: date | None = None
        self._learned_at_changes = 0
        self._policies: dict[PolicyConfig, Policy] = {}

    def invalidate(self) -> None:
        """Count one change the learned model does not reflect (see RELEARN_SHARE)."""
        self.changes += 1

    def model(self, today: date) -> ServiceModel:
        """Return the learned service model, learning it again if it is out of date."""
        model = self._model
        changes = self._changes_from.changes
        if (
            model is None
            or self._model_day != today
            or changes - self._learned_at_changes > model.visits * RELEARN_SHARE
        ):
            model = self._model = learn_model(self.site, self.store, today)
            self._model_day = today
            self._learned_at_changes = changes
        return model

    def estimate(
        self,
        now: datetime,
        today: date,
        waiting: Sequence[Candidate],
        target: Candidate,
        at_counter: dict[int, dict[str, Any]],
        statuses: dict[int, CounterStatus],
    ) -> WaitEstimate:
        """Estimate how long `target`, one of `waiting`, waits from `now` until its call."""
        model = self.model(today)
        forecast = self._forward(now, today, waiting, target, at_counter, statuses)
        if not math.isfinite(forecast.minutes):
            return WaitEstimate(math.inf, math.inf, math.inf)
        calibration = model.calibration.get(target.lane)
        if calibration is not None:
            scale = forecast.minutes + CALIBRATION_SLACK_MINUTES
            low = max(forecast.minutes + calibration[0] * scale, 0.0)
            high = max(forecast.minutes + calibration[1] * scale, 0.0)
        else:
            low, high = _spread(model, forecast, random.Random(target.ticket_id))
        return WaitEstimate(forecast.minutes, low, high)

    def baselines(
        self,
        today: date,
        service: str,
        lane: Lane,
        people_ahead: int,
        statuses: dict[int, CounterStatus],
    ) -> Baselines:
        """Compute the two baselines for a ticket of a service and lane issued now."""
        open_counters = sum(
            1
            for counter in self.site.counters
            if service in counter.services
            and lane in counter.lanes
            and statuses[counter.number].availability is CounterAvailability.OPEN
        )
        mean = self.model(today).mean(service)
        queue = people_ahead * mean / max(open_counters, 1)
        last = self.store.last_called(today.isoformat(), service, lane.value)
        last_entry = (
            _minutes_between(last["arrived_at"], last["called_at"]) if last else 0.0
        )
        return Baselines(queue=queue, last_entry=last_entry)

    # Forward run -------------------------------------------------------------

    def _forward(
        self,
        now: datetime,
        today: date,
        waiting: Sequence[Candidate],
        target: Candidate,
        at_counter: dict[int, dict[str, Any]],
        statuses: dict[int, CounterStatus],
    ) -> _Forecast:
        model = self.model(today)
        queue = WaitingQueue(waiting, self.site.policy.transfers)
        counters, ready = self._counters(
            now, today, target, at_counter, statuses, model
        )
        arrivals = (
            self._expected_arrivals(now, today)
            if target.lane is Lane.NORMAL
            else iter(())
        )
        # The next expected arrival not yet in the queue, or None after the last.
        arrival = next(arrivals, None)
        ahead: list[str] = []
        used: set[int] = set()
        while ready:
            minutes, number = heapq.heappop(ready)
            if minutes > HORIZON_MINUTES:
                break
            while arrival is not None and arrival[0] <= minutes:
                queue.add(arrival[1])
                arrival = next(arrivals, None)
            state = counters[number]
            context = PolicyContext(
                now + timedelta(minutes=minutes), tuple(state.history)
            )
            chosen = state.policy(queue, state.counter, context)
            if chosen is None:
                if arrival is not None:
                    heapq.heappush(ready, (arrival[0], number))
                continue
            if chosen.ticket_id == target.ticket_id:
                return _Forecast(minutes, tuple(ahead), max(len(used), 1))
            queue.remove(chosen)
            state.history.append(chosen.lane)
            ahead.append(chosen.service)
            used.add(number)
            heapq.heappush(
                ready, (minutes + model.mean(chosen.service, number), number)
            )
        return _Forecast(math.inf, tuple(ahead), max(len(used), 1))

    def _counters(
        self,
        now: datetime,
        today: date,
        target: Candidate,
        at_counter: dict[int, dict[str, Any]],
        statuses: dict[int, CounterStatus],
        model: ServiceModel,
    ) -> tuple[dict[int, _SimCounter], list[tuple[float, int]]]:
        """Return the counters that will take tickets and the minute each is next free."""
        starts: dict[int, float] = {}
        for counter in self.site.counters:
            status = statuses[counter.number]
            if status.availability is CounterAvailability.CLOSED:
                continue
            start = _residual(
                at_counter.get(counter.number), now, model, counter.number
            )
            if status.availability is CounterAvailability.PAUSED:
                paused = (
                    _minutes_between(status.since, timestamp(now))
                    if status.since
                    else 0.0
                )
                remaining = model.pause_minutes - paused
                start = max(
                    start, remaining if remaining > 0 else OVERDUE_PAUSE_MINUTES
                )
            starts[counter.number] = start
        if not any(target.eligible_at(self.site.counter(n)) for n in starts):  # type: ignore[arg-type]
            # NOTE: with no counter open for this ticket, the counters that take it
            # are assumed to open at the opening hour, or now if that has passed.
            opening = _minutes_until(now, today, self.site.hours.open, self.site)
            for counter in self.site.counters:
                if target.eligible_at(counter):
                    starts.setdefault(counter.number, opening)
        counters = {
            number: self._sim_counter(self.site.counter(number), today)  # type: ignore[arg-type]
            for number in starts
        }
        ready = [(start, number) for number, start in starts.items()]
        heapq.heapify(ready)
        return counters, ready

    def _sim_counter(self, counter: Counter, today: date) -> _SimCounter:
        config = self.site.policy_of(counter)
        policy = self._policies.get(config)
        if policy is None:
            policy = self._policies[config] = make_policy(config)
        history: list[Lane] = []
        if config.order is PolicyKind.RATIO:
            lanes = self.store.call_lanes(
                today.isoformat(), counter.number, config.priority_run
            )
            history = [Lane(lane) for lane in lanes]
        return _SimCounter(counter, policy, history)

    def _expected_arrivals(
        self, now: datetime, today: date
    ) -> Iterator[tuple[float, Candidate]]:
        """Yield priority tickets expected to arrive, evenly spaced at the last hour's
        rate, in order of their minute from now.

        Only they can pass a normal ticket that is already waiting. They are made
        as the forward run reaches them, because a busy hour expects hundreds
        within the horizon and a run seldom looks that far.
        """
        since = timestamp(now - timedelta(minutes=ARRIVAL_WINDOW_MINUTES))
        counts = self.store.issued_counts_since(
            today.isoformat(), since, Lane.PRIORITY.value
        )
        streams = [
            _arrivals_of(service, ARRIVAL_WINDOW_MINUTES / count, now)
            for service, count in sorted(counts.items())
        ]
        return heapq.merge(*streams, key=lambda item: item[0])


def _arrivals_of(
    service: str, gap: float, now: datetime
) -> Iterator[tuple[float, Candidate]]:
    for index in range(1, int(HORIZON_MINUTES / gap) + 1):
        minutes = index * gap
        stamp = timestamp(now + timedelta(minutes=minutes))
        candidate = Candidate(
            ticket_id=f"expected-{service}-{index}",
            service=service,
            lane=Lane.PRIORITY,
            arrived_at=stamp,
            order=1_000_000 + index,
            issued_at=stamp,
        )
        yield minutes, candidate


def _spread(
    model: ServiceModel, forecast: _Forecast, rng: random.Random
) -> tuple[float, float]:
    """Return the 80 % range around a forecast from the variation of the service times ahead.

    Extra or missing work ahead of the ticket is shared by the counters that
    took tickets in the forward run.
    """
    counts = Tally(forecast.ahead)
    expected = sum(model.means[s] * n for s, n in counts.items())
    if not counts:
        return forecast.minutes, forecast.minutes
    if len(forecast.ahead) > MONTE_CARLO_MAX_AHEAD:
        sd = math.sqrt(sum(model.variances[s] * n for s, n in counts.items()))
        half = _Z90 * sd / forecast.counters_used
        return max(forecast.minutes - half, 0.0), forecast.minutes + half
    waits = sorted(
        max(
            forecast.minutes
            + (
                sum(sum(rng.choices(model.pools[s], k=n)) for s, n in counts.items())
                - expected
            )
            / forecast.counters_used,
            0.0,
        )
        for _ in range(MONTE_CARLO_RUNS)
    )
    low = waits[int(RANGE_QUANTILES[0] * (len(waits) - 1))]
    high = waits[math.ceil(RANGE_QUANTILES[1] * (len(waits) - 1))]
    return low, high


def _residual(
    row: dict[str, Any] | None, now: datetime, model: ServiceModel, counter: int
) -> float:
    """Return the expected minutes left of the ticket a counter serves now."""
    if row is None:
        return 0.0
    mean = model.mean(row["service"], counter)
    started = row.get("served_at") or row["called_at"]
    elapsed = _minutes_between(started, timestamp(now))
    # NOTE: a crude residual: the mean minus the time already spent, but never
    # below a quarter of the mean, because a long service tends to run on.
    return max(mean - elapsed, mean / 4)


def _minutes_between(start: str, end: str) -> float:
    return (
        datetime.fromisoformat(end) - datetime.fromisoformat(start)
    ).total_seconds() / 60


def _minutes_until(now: datetime, today: date, opening: time, site: Site) -> float:
    opens = datetime.combine(today, opening, tzinfo=site.timezone)
    return max((opens - now).total_seconds() / 60, 0.0)


# Learning --------------------------------------------------------------------


def learn_model(site: Site, store: Store, today: date) -> ServiceModel:
    """Learn service times, no-show shares and pause lengths from the store."""
    since = (today - timedelta(days=HISTORY_DAYS)).isoformat()
    rows = store.closed_visits(since, HISTORY_LIMIT)
    durations: dict[str, list[float]] = {s.code: [] for s in site.services}
    by_counter: dict[tuple[int, str], list[float]] = {}
    no_shows: dict[str, list[float]] = {s.code: [] for s in site.services}
    for row in rows:
        if row["service"] not in durations:
            continue
        start = row["served_at"] or row["called_at"]
        minutes = max(_minutes_between(start, row["finished_at"]), 0.0)
        if row["status"] == "no_show":
            no_shows[row["service"]].append(minutes)
            continue
        durations[row["service"]].append(minutes)
        by_counter.setdefault((row["counter"], row["service"]), []).append(minutes)

    rng = random.Random(f"{site.id}-{today.isoformat()}")
    means: dict[str, float] = {}
    pools: dict[str, tuple[float, ...]] = {}
    variances: dict[str, float] = {}
    for service in site.services:
        pool = _pool(
            service.minutes, durations[service.code], no_shows[service.code], rng
        )
        pools[service.code] = pool
        means[service.code] = statistics.fmean(pool)
        variances[service.code] = statistics.pvariance(pool)
    # A counter's own mean keeps the service's no-show share: it scales the
    # service mean by how much faster or slower that counter serves.
    counter_means = {
        key: means[key[1]]
        * _shrunk_mean(values, site.service(key[1]).minutes)  # type: ignore[union-attr]
        / _shrunk_mean(durations[key[1]], site.service(key[1]).minutes)  # type: ignore[union-attr]
        for key, values in by_counter.items()
        if len(values) >= COUNTER_MIN_SAMPLES
    }
    return ServiceModel(
        means=means,
        counter_means=counter_means,
        pools=pools,
        variances=variances,
        pause_minutes=_pause_minutes(store.session_rows(since)),
        calibration=_calibration(store.estimated_waits(since, HISTORY_LIMIT)),
        visits=len(rows),
    )


def _calibration(rows: list[dict[str, Any]]) -> dict[Lane, tuple[float, float]]:
    """Return per lane the error quantiles of past estimates, where there are enough.

    A lane with too few tickets borrows the quantiles of all lanes together.
    """
    errors: dict[Lane, list[float]] = {lane: [] for lane in Lane}
    for row in rows:
        actual = _minutes_between(row["issued_at"], row["called_at"])
        scale = row["estimate"] + CALIBRATION_SLACK_MINUTES
        errors[Lane(row["lane"])].append((actual - row["estimate"]) / scale)
    pooled = sorted(e for values in errors.values() for e in values)
    result: dict[Lane, tuple[float, float]] = {}
    for lane, values in errors.items():
        chosen = sorted(values) if len(values) >= CALIBRATION_MIN_TICKETS else pooled
        if len(chosen) >= CALIBRATION_MIN_TICKETS:
            result[lane] = (
                chosen[int(RANGE_QUANTILES[0] * (len(chosen) - 1))],
                chosen[math.ceil(RANGE_QUANTILES[1] * (len(chosen) - 1))],
            )
    return result


def _pool(
    prior_minutes: float,
    served: list[float],
    no_shows: list[float],
    rng: random.Random,
) -> tuple[float, ...]:
    """Draw visit times: observed services, prior draws, and no-shows at their share."""
    prior_share = PRIOR_WEIGHT / (len(served) + PRIOR_WEIGHT)
    total = len(served) + len(no_shows)
    no_show_share = (len(no_shows) + PRIOR_WEIGHT * NO_SHOW_PRIOR_SHARE) / (
        total + PRIOR_WEIGHT
    )
    sigma = math.sqrt(math.log(1 + PRIOR_CV**2))
    mu = math.log(prior_minutes) - sigma**2 / 2
    pool: list[float] = []
    for _ in range(POOL_SIZE):
        if rng.random() < no_show_share:
            pool.append(rng.choice(no_shows) if no_shows else NO_SHOW_PRIOR_MINUTES)
        elif rng.random() < prior_share:
            pool.append(rng.lognormvariate(mu, sigma))
        else:
            pool.append(rng.choice(served))
    return tuple(pool)


def _shrunk_mean(values: list[float], prior: float) -> float:
    return (sum(values) + PRIOR_WEIGHT * prior) / (len(values) + PRIOR_WEIGHT)


def _pause_minutes(rows: list[dict[str, Any]]) -> float:
    """Return the mean length of finished pauses, with a prior of PAUSE_PRIOR_MINUTES."""
    paused_at: dict[tuple[str, int], str] = {}
    lengths: list[float] = []
    for row in rows:
        key = (row["day"], row["counter"])
        if row["state"] == CounterAvailability.PAUSED:
            paused_at[key] = row["at"]
        elif key in paused_at:
            lengths.append(_minutes_between(paused_at.pop(key), row["at"]))
    return _shrunk_mean(lengths, PAUSE_PRIOR_MINUTES)
