"""`antrean bench`: latency, throughput and memory of a whole office on this machine.

Every figure comes from real parts: a Mosquitto of its own on a free loopback
port, the engine in a child process, MQTT clients with per-device logins, and
the Kivy apps drawn offscreen. docs/benchmarks.md records results and limits.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.bench_load import (
    CallLatency,
    CallTimer,
    Devices,
    FloorProbe,
    Refill,
    StateSizes,
    connect_devices,
    wait_for_samples,
)
from broker.bench_memory import (
    AppMemory,
    EngineMemory,
    Megabytes,
    measure_engine_fill,
    measure_soak,
    megabytes,
)
from broker.bench_office import (
    BenchOffice,
    LatencyStats,
    free_port,
    latency_stats,
    office_site_data,
    process_memory,
)
from broker.bench_throughput import (
    ClosedLoop,
    Throughput,
    raw_commit_rate,
)
from broker.bench_tickets import TicketLatency, TicketTimer
from broker.contract import CallEvent
from broker.service import SWITCH_INTERVAL_S

_LOGGER = logging.getLogger(__name__)

# Counters press Next this often in all, kiosks issue as many tickets, and one
# more kiosk takes TICKETS_PER_S tickets that it prints.
CALLS_PER_S = 20.0
TICKETS_PER_S = 2.0
FLOOR_PAUSE_S = 0.05
SETTLE_S = 0.5
SEED = 1
# The time limit of the closed loop assumes the engine replies to at least this
# many commands a second.
MIN_COMMANDS_PER_S = 20.0
# Each phase stops at this many times its expected length, plus the slack.
TIME_LIMIT_FACTOR = 3.0
TIME_LIMIT_SLACK_S = 30.0
# Targets of the office (see docs/benchmarks.md).
CALL_P50_TARGET_MS = 2.0
CALL_FLOOR_FACTOR = 3.0
TICKET_P99_TARGET_MS = 50.0
RAW_SHARE_TARGET = 0.5
APP_RSS_TARGET_MB = 150.0
APP_GROWTH_TARGET = 0.10


@dataclass(frozen=True)
class BenchSizes:
    """How much each part of the benchmark does; QUICK and FULL are the presets."""

    counters: int
    kiosks: int
    calls: int
    tickets: int
    commands: int
    raw_commits: int
    growth_counters: tuple[int, ...]
    growth_calls: int
    growth_commands: int
    fill_tickets: int
    soak_hours: float
    soak_speed: float


FULL = BenchSizes(
    counters=50,
    kiosks=10,
    calls=2000,
    tickets=200,
    commands=3000,
    raw_commits=3000,
    growth_counters=(1, 10, 100),
    growth_calls=500,
    growth_commands=1500,
    fill_tickets=100_000,
    soak_hours=12.0,
    soak_speed=240.0,
)
QUICK = BenchSizes(
    counters=50,
    kiosks=10,
    calls=300,
    tickets=30,
    commands=600,
    raw_commits=1000,
    growth_counters=(1, 10, 100),
    growth_calls=50,
    growth_commands=150,
    fill_tickets=800,
    soak_hours=1.25,
    soak_speed=360.0,
)


@dataclass(frozen=True)
class OfficeRun:
    """Latency and throughput of one office size, and its engine's memory after them."""

    counters: int
    kiosks: int
    calls: CallLatency
    floor: LatencyStats
    tickets: TicketLatency | None
    throughput: Throughput
    engine: Megabytes
    states: StateSizes


@dataclass(frozen=True)
class Machine:
    """The machine the benchmark ran on, and its load average at the start and end."""

    cpus: int
    cpu_model: str
    python: str
    system: str
    started: str
    load_average_start: float
    load_average_end: float


@dataclass(frozen=True)
class TargetCheck:
    """One target of the office, the figure measured against it, and the verdict."""

    name: str
    measured: str
    met: bool


@dataclass(frozen=True)
class BenchReport:
    """Every figure of one `antrean bench` run."""

    quick: bool
    machine: Machine
    office: OfficeRun
    raw_sqlite_commits_per_s: float
    growth: tuple[OfficeRun, ...]
    engine_fill: EngineMemory
    apps: tuple[AppMemory, ...]
    targets: tuple[TargetCheck, ...]
    seconds: float


def measure_office(
    counters: int,
    kiosks: int,
    sizes: tuple[int, int, int],
    directory: Path,
) -> OfficeRun:
    """Start an office and measure calls with the floor, tickets and throughput.

    `sizes` contains the calls, the printed tickets (0 for none) and the
    commands of the closed loop.
    """
    calls, tickets, commands = sizes
    data = office_site_data(counters, kiosks, free_port())
    with BenchOffice(data, directory) as office:
        timer: CallTimer | None = None

        def on_call(call: CallEvent) -> None:
            if timer is not None:
                timer.receive_call(call)

        devices = connect_devices(office, on_call)
        printing = devices.kiosks[0] if tickets else None
        refill = Refill(office.site, devices.kiosks[1:] if printing else devices.kiosks)
        refill.prefill(2 * counters)
        timer = CallTimer(devices, refill, CALLS_PER_S, SEED)
        floor = FloorProbe(office)
        ticket_timer = (
            TicketTimer(office, printing, refill, tickets, TICKETS_PER_S, SEED)
            if printing
            else None
        )
        latency, ticket_latency = _time_calls(timer, floor, ticket_timer, calls)
        throughput = _run_closed_loop(devices, refill, commands)
        engine = dataclasses.asdict(process_memory(office.engine_pid))
    return OfficeRun(
        counters=counters,
        kiosks=kiosks,
        calls=latency,
        floor=latency_stats(floor.samples),
        tickets=ticket_latency,
        throughput=throughput,
        engine=megabytes(engine),
        states=devices.states.sizes(),
    )


def _time_calls(
    timer: CallTimer,
    floor: FloorProbe,
    tickets: TicketTimer | None,
    calls: int,
) -> tuple[CallLatency, TicketLatency | None]:
    warm = min(100, calls // 10)
    expected = (calls + warm) / CALLS_PER_S
    timer.start()
    floor.start(calls + warm, FLOOR_PAUSE_S)
    if tickets is not None:
        tickets.start()
    started = time.monotonic()
    try:
        wait_for_samples(timer.samples, calls + warm, _time_limit(expected))
        ticket_latency = None
        if tickets is not None:
            ticket_latency = tickets.finish(_time_limit(tickets.count / TICKETS_PER_S))
    finally:
        timer.stop()
        floor.stop()
    seconds = time.monotonic() - started
    latency = CallLatency(
        latency=latency_stats(timer.samples[warm : warm + calls]),
        offered_calls_per_s=CALLS_PER_S,
        achieved_calls_per_s=len(timer.samples) / seconds,
        nobody_waiting=timer.nobody_waiting,
        failed=timer.failed,
    )
    return latency, ticket_latency


def _run_closed_loop(devices: Devices, refill: Refill, commands: int) -> Throughput:
    # The paced run left its backlog of two tickets per counter waiting; its
    # last calls get a moment to finish first.
    time.sleep(SETTLE_S)
    loop = ClosedLoop(devices, refill, commands)
    return loop.run(_time_limit(commands / MIN_COMMANDS_PER_S))


def _time_limit(expected_s: float) -> float:
    return expected_s * TIME_LIMIT_FACTOR + TIME_LIMIT_SLACK_S


def describe_machine() -> Machine:
    """Return this machine's CPUs, Python and system, and its load average now."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    except OSError as exc:
        _LOGGER.warning("Cannot read /proc/cpuinfo: %s", exc)
    load = os.getloadavg()[0]
    return Machine(
        cpus=os.cpu_count() or 0,
        cpu_model=model,
        python=platform.python_version(),
        system=platform.platform(),
        started=datetime.now(UTC).isoformat(timespec="seconds"),
        load_average_start=load,
        load_average_end=load,
    )


def check_targets(
    office: OfficeRun, raw_rate: float, apps: tuple[AppMemory, ...]
) -> tuple[TargetCheck, ...]:
    """Judge the run against the office's targets."""
    calls, floor = office.calls.latency, office.floor
    checks = [
        TargetCheck(
            f"call p99 at most {CALL_FLOOR_FACTOR:g}x the floor's p99",
            f"{calls.p99_ms:.2f} ms, floor p99 {floor.p99_ms:.2f} ms",
            calls.p99_ms <= CALL_FLOOR_FACTOR * floor.p99_ms,
        ),
        TargetCheck(
            f"call p50 under {CALL_P50_TARGET_MS:g} ms",
            f"{calls.p50_ms:.2f} ms",
            calls.p50_ms < CALL_P50_TARGET_MS,
        ),
    ]
    if office.tickets is not None:
        ticket = office.tickets.latency
        checks.append(
            TargetCheck(
                f"ticket p99 under {TICKET_P99_TARGET_MS:g} ms",
                f"{ticket.p99_ms:.1f} ms",
                ticket.p99_ms < TICKET_P99_TARGET_MS,
            )
        )
    rate = office.throughput.commands_per_s
    checks.append(
        TargetCheck(
            f"throughput at least {RAW_SHARE_TARGET:.0%} of raw SQLite commits",
            f"{rate:.0f}/s, raw {raw_rate:.0f}/s ({rate / raw_rate:.0%})",
            rate >= RAW_SHARE_TARGET * raw_rate,
        )
    )
    for app in apps:
        checks += _app_checks(app)
    return tuple(checks)


def _app_checks(app: AppMemory) -> list[TargetCheck]:
    checks = [
        TargetCheck(
            f"{app.app} under {APP_RSS_TARGET_MB:g} MB",
            f"max RSS {app.max_rss_mb:.0f} MB",
            app.max_rss_mb < APP_RSS_TARGET_MB,
        ),
        TargetCheck(
            f"{app.app} flat after warm-up (under {APP_GROWTH_TARGET:.0%})",
            f"{app.growth_after_warm_up:+.1%}",
            app.growth_after_warm_up < APP_GROWTH_TARGET,
        ),
    ]
    if app.app == "display":
        checks.append(
            TargetCheck(
                "display keeps its textures after warm-up",
                f"{app.textures_after_warm_up} then {app.textures}",
                app.textures <= app.textures_after_warm_up * (1 + APP_GROWTH_TARGET),
            )
        )
    return checks


def run_bench(
    sizes: BenchSizes, work_dir: Path, site_file: Path | None, quick: bool
) -> BenchReport:
    """Run every measurement with files under `work_dir` and return the report.

    `site_file` is the site whose apps the soak runs (None for the bundled one).
    """
    started = time.monotonic()
    machine = describe_machine()
    # This process plays sixty devices, one paho thread each. With
    # Python's default 5 ms switch interval, a client that receives a call
    # waits up to that long for the GIL, which a real display does not.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    office = measure_office(
        sizes.counters,
        sizes.kiosks,
        (sizes.calls, sizes.tickets, sizes.commands),
        work_dir / "office",
    )
    raw_rate = raw_commit_rate(work_dir, sizes.raw_commits)
    growth = tuple(
        measure_office(
            counters,
            sizes.kiosks,
            (sizes.growth_calls, 0, sizes.growth_commands),
            work_dir / f"growth-{counters}",
        )
        for counters in sizes.growth_counters
    )
    apps = tuple(
        measure_soak(site_file, sizes.soak_hours, sizes.soak_speed, work_dir / "soak")
    )
    fill = measure_engine_fill(sizes.fill_tickets, work_dir / "fill")
    machine = dataclasses.replace(machine, load_average_end=os.getloadavg()[0])
    return BenchReport(
        quick=quick,
        machine=machine,
        office=office,
        raw_sqlite_commits_per_s=raw_rate,
        growth=growth,
        engine_fill=fill,
        apps=apps,
        targets=check_targets(office, raw_rate, apps),
        seconds=time.monotonic() - started,
    )


def report_data(report: BenchReport) -> dict[str, Any]:
    """Return the report as plain data for JSON."""
    return dataclasses.asdict(report)
