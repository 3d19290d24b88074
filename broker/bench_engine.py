"""Engine children of `antrean bench`: `serve` runs EngineService against the bench
broker; `fill` drives Engine.handle in-process through many tickets.

Both write JSON lines to stdout and exit when stdin closes, so a parent that
dies takes them along. Run as `python -m broker.bench_engine MODE ...`.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

from broker import contract
from broker.bench_office import (
    PRIORITY_EVERY,
    SpeededClock,
    emit,
    latency_stats,
    process_memory,
    read_site_data,
)
from broker.contract import Command, CommandKind, Role
from broker.engine import Engine, Source, system_clock
from broker.service import DATABASE_NAME, HEARTBEAT_S, EngineService
from broker.site import Site
from broker.store import Store

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20.0
# The fill starts on a Monday; the engine does not enforce opening days.
FILL_FIRST_DAY = date(2026, 1, 5)
FILL_OPENS = clock_time(8, 0)
FILL_DAY_SECONDS = 8 * 3600
FILL_PROGRESS_STEPS = 10


# serve ---------------------------------------------------------------------------


def serve(site: Site, data_dir: Path, clock: SpeededClock | None) -> int:
    """Run the engine service until stdin closes.

    With a speeded clock the state is also published every HEARTBEAT_S of
    simulated time, as often as a real engine publishes it in real time.
    """
    service = EngineService(site, data_dir, clock=clock or system_clock)
    service.start()
    stop = threading.Event()
    try:
        if not service.wait_connected(CONNECT_TIMEOUT_S):
            _LOGGER.error(
                "The engine did not connect to %s:%d", *service.client.address
            )
            return 1
        if clock is not None:
            interval = HEARTBEAT_S / clock.speed
            threading.Thread(
                target=_beat, args=(service, interval, stop), daemon=True
            ).start()
        emit("ready", pid=os.getpid())
        sys.stdin.read()
    finally:
        stop.set()
        service.stop()
    return 0


def _beat(service: EngineService, interval: float, stop: threading.Event) -> None:
    while not stop.wait(interval):
        try:
            service.publish_state()
        except Exception:
            _LOGGER.exception("Could not publish the speeded heartbeat state")


# fill ----------------------------------------------------------------------------


class FillClock:
    """The simulated clock of a fill: opening hours of consecutive days, in steps."""

    def __init__(self, site: Site, tickets_per_day: int) -> None:
        self.site = site
        self.step = timedelta(seconds=FILL_DAY_SECONDS / tickets_per_day)
        self.now = self.opening(0)

    def opening(self, day: int) -> datetime:
        """Return the opening moment of the fill's day number `day`, in UTC."""
        local = datetime.combine(
            FILL_FIRST_DAY + timedelta(days=day), FILL_OPENS, tzinfo=self.site.timezone
        )
        return local.astimezone(UTC)

    def __call__(self) -> datetime:
        return self.now


class Filler:
    """Issues and calls tickets through Engine.handle, as kiosks and counters would.

    Each step issues one ticket and calls the next one at the following counter,
    which finishes that counter's previous ticket, so a backlog of two tickets
    per counter waits all day. Every `state_every` commands the office state is
    built and encoded, as the service does after each burst of commands. The
    time of each command and state is kept until take_timings().
    """

    def __init__(
        self, site: Site, data_dir: Path, tickets_per_day: int, state_every: int
    ) -> None:
        self.site = site
        self.store = Store(data_dir / DATABASE_NAME)
        self.clock = FillClock(site, tickets_per_day)
        self.engine = Engine(site, self.store, clock=self.clock)
        self.tickets_per_day = tickets_per_day
        self.state_every = state_every
        self.commands = 0
        self.rejected = 0
        self.timings: dict[str, list[float]] = {"issue": [], "next": [], "state": []}

    def take_timings(self) -> dict[str, dict[str, float]]:
        """Return the latency of each kind of work timed so far, and start anew."""
        summary = {
            kind: dataclasses.asdict(latency_stats(times))
            for kind, times in self.timings.items()
            if times
        }
        for times in self.timings.values():
            times.clear()
        return summary

    def run_day(self, day: int, tickets: int) -> None:
        """Issue `tickets` tickets on one day, and call as many."""
        self.clock.now = self.clock.opening(day)
        backlog = 2 * len(self.site.counters)
        for index in range(min(backlog, tickets)):
            self._issue(index)
        for index in range(tickets):
            self.clock.now += self.clock.step
            if index + backlog < tickets:
                self._issue(index + backlog)
            counter = self.site.counters[index % len(self.site.counters)]
            command = Command(CommandKind.NEXT, self._id(), counter=counter.number)
            # An operator login may act for any counter.
            self._apply(command, Role.OPERATOR, "bench", "next")

    def _issue(self, index: int) -> None:
        service = self.site.services[index % len(self.site.services)]
        category = None
        if index % PRIORITY_EVERY == 0 and self.site.priority_categories:
            category = self.site.priority_categories[0].key
        kiosk = self.site.kiosks[index % len(self.site.kiosks)].id
        command = Command(
            CommandKind.ISSUE_TICKET,
            self._id(),
            service=service.code,
            category=category,
        )
        self._apply(command, Role.KIOSK, kiosk, "issue")

    def _apply(self, command: Command, role: Role, device: str, kind: str) -> None:
        started = time.perf_counter()
        outcome = self.engine.handle(command, Source(role, device))
        # The service encodes the reply and every call before it publishes them.
        contract.encode(outcome.reply)
        for call in outcome.calls:
            contract.encode(call)
        self.timings[kind].append(time.perf_counter() - started)
        self.commands += 1
        if not outcome.reply.ok:
            self.rejected += 1
        if self.commands % self.state_every == 0:
            started = time.perf_counter()
            contract.encode(self.engine.snapshot())
            self.timings["state"].append(time.perf_counter() - started)

    def _id(self) -> str:
        return f"fill-{self.commands}"


def fill(
    site: Site, data_dir: Path, tickets: int, tickets_per_day: int, state_every: int
) -> int:
    """Drive `tickets` tickets through the engine, reporting RSS after each tenth."""
    filler = Filler(site, data_dir, tickets_per_day, state_every)
    started = time.monotonic()
    checkpoint = max(tickets // FILL_PROGRESS_STEPS, 1)
    done = 0
    day = 0
    while done < tickets:
        today = min(tickets_per_day, tickets - done)
        filler.run_day(day, today)
        reported = done // checkpoint
        done += today
        day += 1
        if done // checkpoint > reported or done == tickets:
            emit(
                "progress",
                tickets=done,
                days=day,
                commands=filler.commands,
                rejected=filler.rejected,
                seconds=time.monotonic() - started,
                memory=dataclasses.asdict(process_memory(os.getpid())),
                milliseconds=filler.take_timings(),
            )
    seconds = time.monotonic() - started
    emit("done", tickets=done, days=day, commands=filler.commands, seconds=seconds)
    # The parent reads this process's /proc entry, then closes stdin.
    sys.stdin.read()
    filler.store.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the two engine children."""
    parser = argparse.ArgumentParser(prog="python -m broker.bench_engine")
    modes = parser.add_subparsers(dest="mode", required=True)
    for name, text in (
        ("serve", "run the engine service against the bench broker"),
        ("fill", "issue and call tickets through Engine.handle in this process"),
    ):
        mode = modes.add_parser(name, help=text)
        mode.add_argument(
            "--site-json", type=Path, required=True, help="site data file"
        )
        mode.add_argument("--data-dir", type=Path, required=True, help="data directory")
    serve_mode = modes.choices["serve"]
    serve_mode.add_argument("--start", help="simulated start time (ISO 8601)")
    serve_mode.add_argument("--origin", type=float, help="time.monotonic() at --start")
    serve_mode.add_argument("--speed", type=float, help="simulated seconds per second")
    fill_mode = modes.choices["fill"]
    fill_mode.add_argument("--tickets", type=int, required=True, help="tickets in all")
    fill_mode.add_argument("--per-day", type=int, required=True, help="tickets a day")
    fill_mode.add_argument(
        "--state-every", type=int, required=True, help="commands between two states"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one engine child and return its exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    site = read_site_data(args.site_json)
    if args.mode == "fill":
        return fill(site, args.data_dir, args.tickets, args.per_day, args.state_every)
    clock = None
    if args.start is not None:
        clock = SpeededClock(
            datetime.fromisoformat(args.start), args.origin, args.speed
        )
    return serve(site, args.data_dir, clock)


if __name__ == "__main__":
    sys.exit(main())
