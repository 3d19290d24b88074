"""Memory of `antrean bench`: the engine after many tickets, and each app after a
speeded soak against a bench office running on the same speeded clock.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.bench_load import Pacer
from broker.bench_office import (
    LOOPBACK,
    BenchError,
    BenchOffice,
    Child,
    SpeededClock,
    free_port,
    office_site_data,
    process_memory,
    ticket_command,
    write_site_data,
)
from broker.client import OfficeClient, new_command_id
from broker.contract import Command, CommandKind, Role
from broker.site import bundled_site_path, parse_site

_LOGGER = logging.getLogger(__name__)

KIB_PER_MB = 1024.0
FILL_COUNTERS = 10
FILL_KIOSKS = 10
FILL_TICKETS_PER_DAY = 2000
# The fill builds and encodes one office state every this many commands, where
# the service builds one at most every STATE_INTERVAL_S whatever the rate.
FILL_STATE_EVERY = 20
# The fill's time limit allows this long per ticket, several times what one takes.
FILL_SECONDS_PER_TICKET = 0.05
CHILD_START_TIMEOUT_S = 60.0
# Simulated seconds between two tickets, and between two calls, in the office.
SOAK_TICKET_GAP_S = 120.0
SOAK_CALL_GAP_S = 120.0
# The soak starts at this local hour, so twelve hours stay within one day.
SOAK_START_HOUR = 7
# Children get this long to start before simulated time begins.
SOAK_LEAD_S = 8.0
SOAK_APPS = ("kiosk", "counter", "display")
SOAK_QUOTA = 999
# The display acts on its own; its step only has to be longer than the soak.
DISPLAY_STEP_S = 24 * 3600.0


@dataclass(frozen=True)
class Megabytes:
    """A process's memory in MiB: resident in all, anonymous, and mapped files."""

    rss: float
    anonymous: float
    file: float


def megabytes(memory: dict[str, int]) -> Megabytes:
    """Convert a ProcessMemory, as a dict of KiB, to MiB."""
    return Megabytes(
        rss=memory["rss"] / KIB_PER_MB,
        anonymous=memory["anonymous"] / KIB_PER_MB,
        file=memory["file"] / KIB_PER_MB,
    )


def growth(before: Megabytes, after: Megabytes) -> float:
    """Return the relative growth of the resident size from `before` to `after`."""
    return (after.rss - before.rss) / before.rss


@dataclass(frozen=True)
class EngineMemory:
    """Memory of an engine process driven through many tickets."""

    tickets: int
    days: int
    commands: int
    seconds: float
    first_tenth: Megabytes
    final: Megabytes
    peak_rss_mb: float
    growth_after_first_tenth: float


@dataclass(frozen=True)
class AppMemory:
    """Memory and Kivy textures of one app over a soak, the first hour being warm-up."""

    app: str
    hours: float
    after_warm_up: Megabytes
    final: Megabytes
    max_rss_mb: float
    growth_after_warm_up: float
    textures_after_warm_up: int
    textures: int
    rss_mb_by_hour: tuple[float, ...]


def measure_engine_fill(tickets: int, directory: Path) -> EngineMemory:
    """Drive `tickets` tickets through Engine.handle in a child and read its RSS."""
    directory.mkdir(parents=True, exist_ok=True)
    site_path = write_site_data(
        office_site_data(FILL_COUNTERS, FILL_KIOSKS, free_port()), directory
    )
    arguments = [
        "broker.bench_engine",
        "fill",
        "--site-json",
        str(site_path),
        "--data-dir",
        str(directory / "data"),
        "--tickets",
        str(tickets),
        "--per-day",
        str(FILL_TICKETS_PER_DAY),
        "--state-every",
        str(FILL_STATE_EVERY),
    ]
    child = Child("engine-fill", arguments, directory)
    try:
        done = child.expect("done", tickets * FILL_SECONDS_PER_TICKET + 60)
        memory = process_memory(child.pid)
        progress = child.events("progress")
    finally:
        child.stop()
    final = megabytes(dataclasses.asdict(memory))
    first = megabytes(progress[0]["memory"]) if progress else final
    return EngineMemory(
        tickets=done["tickets"],
        days=done["days"],
        commands=done["commands"],
        seconds=done["seconds"],
        first_tenth=first,
        final=final,
        peak_rss_mb=memory.peak / KIB_PER_MB,
        growth_after_first_tenth=growth(first, final),
    )


# Soak ------------------------------------------------------------------------------


def soak_site_data(site_file: Path | None, port: int) -> dict[str, Any]:
    """Read a site file for the soak, pointed at the bench broker only.

    The broker listens on the loopback address without TLS, every kiosk
    prints to files under the data directory, and quotas are raised so that
    twelve hours of tickets fit in one day.
    """
    path = site_file or bundled_site_path()
    with open(path, "rb") as handle:
        data = tomllib.load(handle)
    data["broker"] = {"host": LOOPBACK, "port": port}
    for kiosk in data.get("kiosks", []):
        printer = kiosk.get("printer", {})
        printer["spec"] = "file:"
        kiosk["printer"] = printer
    for service in data.get("services", []):
        service["daily_quota"] = SOAK_QUOTA
    return data


def soak_clock(speed: float, timezone: Any) -> SpeededClock:
    """Return a clock that starts at SOAK_START_HOUR today, SOAK_LEAD_S from now."""
    today = datetime.now(timezone).date()
    start = datetime(
        today.year, today.month, today.day, SOAK_START_HOUR, tzinfo=timezone
    )
    return SpeededClock(start.astimezone(UTC), time.monotonic() + SOAK_LEAD_S, speed)


class SoakTraffic:
    """The devices of the office other than the soaked apps: the other kiosks take
    a ticket and the other counters press Next, each at its simulated pace.
    """

    def __init__(self, office: BenchOffice, clock: SpeededClock) -> None:
        site = office.site
        self.office = office
        self.clock = clock
        self.ticket_step = SOAK_TICKET_GAP_S * len(site.kiosks)
        self.call_step = SOAK_CALL_GAP_S * len(site.counters)
        self.pacer = Pacer()
        self._tickets = itertools.count(1)
        counter_ids = [(Role.COUNTER, str(c.number)) for c in site.counters]
        counters = office.connect(counter_ids)
        # The soaked counter logs in through this client; its app sends the rest.
        office.log_in(counters)
        self.counters = counters[1:]
        kiosk_ids = [(Role.KIOSK, k.id) for k in site.kiosks[1:]]
        self.kiosks = office.connect(kiosk_ids)

    def start(self) -> None:
        """Start every device at its own phase within its first step."""
        for index, client in enumerate(self.kiosks, start=1):
            self._schedule(
                client, self._issue, self.ticket_step, index / (len(self.kiosks) + 1)
            )
        for index, client in enumerate(self.counters, start=1):
            self._schedule(
                client, self._call, self.call_step, index / (len(self.counters) + 1)
            )

    def stop(self) -> None:
        """Stop sending."""
        self.pacer.stop()

    def _schedule(
        self, client: OfficeClient, act: Any, step: float, phase: float
    ) -> None:
        def run(due: float) -> None:
            act(client)
            self._at(due + step, lambda: run(due + step))

        self._at(step * phase, lambda: run(step * phase))

    def _at(self, simulated: float, job: Any) -> None:
        delay = (simulated - self.clock.elapsed()) / self.clock.speed
        self.pacer.after(max(delay, 0.0), job)

    def _issue(self, client: OfficeClient) -> None:
        client.send(ticket_command(self.office.site, next(self._tickets)))

    def _call(self, client: OfficeClient) -> None:
        client.send(
            Command(
                CommandKind.NEXT, new_command_id("soak"), counter=int(client.device)
            )
        )


def measure_soak(
    site_file: Path | None, hours: float, speed: float, directory: Path
) -> list[AppMemory]:
    """Soak the kiosk, counter and display apps at once for `hours` simulated hours."""
    data = soak_site_data(site_file, free_port())
    site = parse_site(data, site_file or "bundled site")
    if not site.kiosks or not site.counters:
        raise BenchError(
            f"{site.source} needs a kiosk and a counter for the soak; add them"
        )
    if not any(display.layout == "hall" for display in site.displays):
        raise BenchError(
            f'{site.source} has no display with layout = "hall" for the soak; add one'
        )
    clock = soak_clock(speed, site.timezone)
    with BenchOffice(data, directory, clock=clock) as office:
        traffic = SoakTraffic(office, clock)
        steps = {
            "kiosk": SOAK_TICKET_GAP_S * len(office.site.kiosks),
            "counter": SOAK_CALL_GAP_S * len(office.site.counters),
            "display": DISPLAY_STEP_S,
        }
        children = [
            _start_app(app, office, clock, hours, steps[app]) for app in SOAK_APPS
        ]
        try:
            for child in children:
                child.expect("ready", CHILD_START_TIMEOUT_S)
            if clock.elapsed() > 0:
                _LOGGER.warning(
                    "The soak apps started %.0f s late", clock.elapsed() / speed
                )
            traffic.start()
            limit = SOAK_LEAD_S + hours * 3600 / speed * 2 + 60
            results = [
                _collect(child, app, hours, limit)
                for child, app in zip(children, SOAK_APPS, strict=True)
            ]
        finally:
            traffic.stop()
            for child in children:
                child.stop()
    return results


def _start_app(
    app: str, office: BenchOffice, clock: SpeededClock, hours: float, step: float
) -> Child:
    arguments = [
        "broker.bench_soak",
        app,
        "--site-json",
        str(office.site_path),
        "--data-dir",
        str(office.data_dir),
        *clock.arguments(),
        "--hours",
        repr(hours),
        "--step",
        repr(step),
    ]
    return Child(f"soak-{app}", arguments, office.directory)


def _collect(child: Child, app: str, hours: float, limit: float) -> AppMemory:
    child.expect("done", limit)
    samples = child.events("sample")
    if len(samples) < 2:
        raise BenchError(f"the {app} soak reported {len(samples)} samples; it needs 2")
    warm = megabytes(samples[1]["memory"])
    final = megabytes(samples[-1]["memory"])
    by_hour = tuple(megabytes(sample["memory"]).rss for sample in samples)
    return AppMemory(
        app=app,
        hours=hours,
        after_warm_up=warm,
        final=final,
        max_rss_mb=max(by_hour),
        growth_after_warm_up=growth(warm, final),
        textures_after_warm_up=samples[1]["textures"],
        textures=samples[-1]["textures"],
        rss_mb_by_hour=by_hour,
    )
