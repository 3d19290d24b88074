"""Simulated office days: SimPy applicants and officers driving the real Engine on a simulated clock.

Each day runs from the site's opening hour; arrivals stop at closing and the
officers serve everyone who is still waiting.
"""

from __future__ import annotations

import logging
import math
import random
import tempfile
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import simpy

from broker.contract import Command, CommandKind, ErrorCode, Reply, Role
from broker.engine import Engine, Source
from broker.scoring import LaneWaits, Outcome, Score, lane_waits, score
from broker.site import Counter, Site
from broker.store import Store

_LOGGER = logging.getLogger(__name__)

FIRST_DAY = date(2026, 12, 7)  # a Monday; simulated days are consecutive opening days
KIOSK = Source(Role.KIOSK, "simulated-kiosk")
OPERATOR = Source(Role.OPERATOR, "simulated-officers")


@dataclass(frozen=True)
class Profile:
    """Demand and behaviour assumed for simulated days; every figure is an assumption."""

    # Tickets of a service per day, as a share of its daily quota.
    quota_share: float = 0.45
    # Relative arrivals in each opening hour, first hour first; later hours reuse the last.
    hourly_weights: tuple[float, ...] = (1.6, 1.8, 1.4, 1.0, 0.8, 0.8, 0.5)
    priority_share: float = 0.12
    no_show_share: float = 0.05
    # Coefficient of variation of the log-normal service time around the site's minutes.
    service_cv: float = 0.5
    # Minutes an officer waits for an applicant who does not come.
    no_show_minutes: float = 1.0
    # Each counter pauses once: at break_start_minutes after opening, plus this
    # stagger times its position, for break_minutes.
    break_start_minutes: float = 210.0
    break_stagger_minutes: float = 20.0
    break_minutes: float = 30.0


@dataclass(frozen=True)
class CounterUse:
    """A counter's busy and open minutes over the simulated days."""

    number: int
    busy_minutes: float
    open_minutes: float

    @property
    def utilisation(self) -> float:
        """Share of open minutes spent serving or waiting for a called applicant."""
        return self.busy_minutes / self.open_minutes if self.open_minutes else 0.0


@dataclass(frozen=True)
class SimulationSummary:
    """The summary `antrean simulate` prints."""

    site: str
    days: int
    seed: int
    tickets: int
    rejected: int
    no_shows: int
    waits: list[LaneWaits]
    counters: list[CounterUse]
    estimators: list[Score]


@dataclass
class _Day:
    env: simpy.Environment
    start: datetime
    arrival: simpy.Event
    open_hours: float
    ticket_ids: list[str] = field(default_factory=list)
    no_show_ids: set[str] = field(default_factory=set)


class Simulation:
    """Runs simulated days of one site against a real Engine and Store in a temp directory."""

    def __init__(
        self,
        site: Site,
        seed: int = 1,
        profile: Profile | None = None,
        directory: Path | None = None,
    ) -> None:
        self.site = site
        self.seed = seed
        self.profile = profile or Profile()
        self.rng = random.Random(seed)
        self._temp = (
            None if directory else tempfile.TemporaryDirectory(prefix="antrean-sim-")
        )
        root = directory or Path(self._temp.name)  # type: ignore[union-attr]
        self.store = Store(root / "antrean.sqlite")
        # A throwaway database: durability on power loss buys nothing here.
        self.store.db.execute("PRAGMA synchronous = OFF")
        self._now = datetime.combine(FIRST_DAY, site.hours.open, tzinfo=site.timezone)
        self.engine = Engine(site, self.store, clock=lambda: self._now)
        self._ids = 0
        self._busy: dict[int, float] = {c.number: 0.0 for c in site.counters}
        self._open: dict[int, float] = {c.number: 0.0 for c in site.counters}
        self.rejected = 0

    def close(self) -> None:
        """Close the store and remove the temp directory."""
        self.store.close()
        if self._temp is not None:
            self._temp.cleanup()

    def run(
        self, days: int, progress: Callable[[float], None] | None = None
    ) -> SimulationSummary:
        """Simulate `days` opening days and summarise them; `progress` gets simulated minutes."""
        outcomes: list[Outcome] = []
        no_shows = 0
        for day in self._days(days):
            state = self._run_day(day, progress)
            outcomes.extend(self._outcomes(state))
            no_shows += len(state.no_show_ids)
        return SimulationSummary(
            site=self.site.id,
            days=days,
            seed=self.seed,
            tickets=len(outcomes) + no_shows,
            rejected=self.rejected,
            no_shows=no_shows,
            waits=lane_waits(outcomes),
            counters=[
                CounterUse(n, self._busy[n], self._open[n]) for n in sorted(self._busy)
            ],
            estimators=score(outcomes),
        )

    def _days(self, count: int) -> list[date]:
        days: list[date] = []
        day = FIRST_DAY
        names = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        while len(days) < count:
            if names[day.weekday()] in self.site.hours.days:
                days.append(day)
            day += timedelta(days=1)
        return days

    # One day -------------------------------------------------------------------

    def _run_day(self, day: date, progress: Callable[[float], None] | None) -> _Day:
        env = simpy.Environment()
        start = datetime.combine(day, self.site.hours.open, tzinfo=self.site.timezone)
        close = datetime.combine(day, self.site.hours.close, tzinfo=self.site.timezone)
        state = _Day(env, start, env.event(), (close - start).total_seconds() / 3600)
        env.process(self._arrivals(state))
        for position, counter in enumerate(self.site.counters):
            env.process(self._officer(state, counter, position))
        if progress is not None:
            env.process(self._report(state, progress))
        env.run()
        return state

    def _tick(self, state: _Day) -> None:
        self._now = state.start + timedelta(minutes=state.env.now)

    def _send(self, state: _Day, kind: CommandKind, **fields: Any) -> Reply:
        self._tick(state)
        self._ids += 1
        command = Command(kind, f"sim-{self._ids}", **fields)
        # Tickets come from a kiosk. Counter commands come as an operator's, who
        # needs no officer login, because simulated officers do not log in.
        counter = fields.get("counter")
        source = KIOSK if counter is None else OPERATOR
        return self.engine.handle(command, source).reply

    def _arrivals(self, state: _Day) -> Generator[simpy.Event, Any, None]:
        profile = self.profile
        hours = math.ceil(state.open_hours)
        weights = [
            profile.hourly_weights[min(h, len(profile.hourly_weights) - 1)]
            for h in range(hours)
        ]
        daily = sum(s.daily_quota for s in self.site.services) * profile.quota_share
        services = [s.code for s in self.site.services]
        shares = [s.daily_quota for s in self.site.services]
        env = state.env
        while env.now < state.open_hours * 60:
            hour = min(int(env.now // 60), hours - 1)
            per_minute = daily * weights[hour] / sum(weights) / 60
            yield env.timeout(self.rng.expovariate(per_minute))
            if env.now >= state.open_hours * 60:
                break
            self._issue(state, self.rng.choices(services, shares)[0])

    def _issue(self, state: _Day, service: str) -> None:
        category = None
        if self.rng.random() < self.profile.priority_share:
            category = self.rng.choice(self.site.priority_categories).key
        reply = self._send(
            state, CommandKind.ISSUE_TICKET, service=service, category=category
        )
        if not reply.ok:
            self.rejected += 1
            return
        assert reply.ticket is not None
        state.ticket_ids.append(reply.ticket.id)
        if self.rng.random() < self.profile.no_show_share:
            state.no_show_ids.add(reply.ticket.id)
        state.arrival.succeed()
        state.arrival = state.env.event()

    def _officer(
        self, state: _Day, counter: Counter, position: int
    ) -> Generator[simpy.Event, Any, None]:
        env = state.env
        profile = self.profile
        break_at = (
            profile.break_start_minutes + position * profile.break_stagger_minutes
        )
        opened = env.now
        self._send(state, CommandKind.OPEN_COUNTER, counter=counter.number)
        while True:
            if break_at is not None and env.now >= break_at:
                self._send(
                    state,
                    CommandKind.PAUSE_COUNTER,
                    counter=counter.number,
                    reason="istirahat",
                )
                self._open[counter.number] += env.now - opened
                yield env.timeout(profile.break_minutes)
                self._send(state, CommandKind.OPEN_COUNTER, counter=counter.number)
                opened, break_at = env.now, None
            reply = self._send(state, CommandKind.NEXT, counter=counter.number)
            if reply.ok:
                assert reply.ticket is not None
                yield from self._serve(
                    state, counter, reply.ticket.id, reply.ticket.service
                )
                continue
            if reply.error is not ErrorCode.NOBODY_WAITING:
                _LOGGER.warning(
                    "Simulated Next at counter %d failed: %s",
                    counter.number,
                    reply.message,
                )
            if env.now >= state.open_hours * 60:
                break
            yield state.arrival | env.timeout(15)
        self._send(state, CommandKind.CLOSE_COUNTER, counter=counter.number)
        self._open[counter.number] += env.now - opened

    def _serve(
        self, state: _Day, counter: Counter, ticket_id: str, service: str
    ) -> Generator[simpy.Event, Any, None]:
        env = state.env
        started = env.now
        if ticket_id in state.no_show_ids:
            yield env.timeout(self.profile.no_show_minutes)
            self._send(state, CommandKind.NO_SHOW, counter=counter.number)
        else:
            yield env.timeout(self._service_minutes(service))
            self._send(state, CommandKind.FINISH, counter=counter.number)
        self._busy[counter.number] += env.now - started

    def _service_minutes(self, service: str) -> float:
        mean = self.site.service(service).minutes  # type: ignore[union-attr]
        sigma = math.sqrt(math.log(1 + self.profile.service_cv**2))
        return self.rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)

    def _report(
        self, state: _Day, progress: Callable[[float], None]
    ) -> Generator[simpy.Event, Any, None]:
        while state.env.now < state.open_hours * 60:
            yield state.env.timeout(30)
            progress(30)

    def _outcomes(self, state: _Day) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for ticket_id in state.ticket_ids:
            row = self.store.ticket(ticket_id)
            if row is None or ticket_id in state.no_show_ids or not row["called_at"]:
                continue
            waited = datetime.fromisoformat(row["called_at"]) - datetime.fromisoformat(
                row["issued_at"]
            )
            outcomes.append(Outcome.from_row(row, waited.total_seconds() / 60))
        return outcomes


def simulate(
    site: Site, days: int, seed: int, progress: Callable[[float], None] | None = None
) -> SimulationSummary:
    """Simulate opening days of a site and return the summary."""
    simulation = Simulation(site, seed)
    try:
        return simulation.run(days, progress)
    finally:
        simulation.close()
