"""The `antrean bench` subcommand: run the benchmark and print its report."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from broker.bench import BenchReport, OfficeRun
    from broker.bench_memory import AppMemory
    from broker.bench_office import LatencyStats
    from broker.site import Site


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Add `antrean bench` to the antrean command line."""
    bench = commands.add_parser(
        "bench",
        help="measure latency, throughput and memory of an office on this machine",
        description=(
            "Start a Mosquitto of its own on a free loopback port, an engine and "
            "the apps, and measure them. The full run takes about 25 minutes on "
            "2 cores; --quick takes under 2."
        ),
    )
    bench.add_argument(
        "--quick", action="store_true", help="run a reduced version (under 2 minutes)"
    )
    bench.add_argument(
        "--json", action="store_true", help="print the report as one JSON object"
    )
    bench.add_argument(
        "--site",
        type=Path,
        help="site file whose kiosk, counter and display the soak runs; "
        "default: the bundled Lebong site",
    )
    bench.add_argument(
        "--work-dir",
        type=Path,
        metavar="DIR",
        help="parent of the temporary directory for the broker, databases and "
        "tickets, removed afterwards; its disk is the one measured; "
        "default: the system's temporary directory",
    )
    bench.add_argument(
        "-v", "--verbose", action="store_true", help="log debug detail to stderr"
    )
    bench.set_defaults(handler=cmd_bench, data_dir=None)


def cmd_bench(args: argparse.Namespace, site: Site, _data_dir: Path) -> int:
    """Run the benchmark in a temporary directory and print the report."""
    work_dir = Path(tempfile.mkdtemp(prefix="antrean-bench-", dir=args.work_dir))
    # python-escpos leaves a directory in TMPDIR when it is imported, which the
    # import below does, so that directory goes with the rest.
    os.environ["TMPDIR"] = str(work_dir)
    tempfile.tempdir = None
    from broker.bench import FULL, QUICK, report_data, run_bench

    try:
        sizes = QUICK if args.quick else FULL
        report = run_bench(sizes, work_dir, args.site, args.quick)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(report_data(report)))
    else:
        print("\n".join(format_report(report)))
    return 0


def format_report(report: BenchReport) -> list[str]:
    """Return the report as lines of text."""
    machine = report.machine
    office = report.office
    lines = [
        f"antrean bench{' --quick' if report.quick else ''}: {machine.cpus} x "
        f"{machine.cpu_model}, Python {machine.python}, {machine.started}, load "
        f"average {machine.load_average_start:.1f} then "
        f"{machine.load_average_end:.1f}, {report.seconds:.0f} s",
        "",
        f"Office of {office.counters} counters and {office.kiosks} kiosks:",
        *_office_lines(office),
        f"  raw SQLite      {report.raw_sqlite_commits_per_s:.0f} commits/s "
        "(WAL, synchronous=FULL, one row each)",
        "",
        "Growth (calls, then the closed loop):",
        "  counters   call p50   call p99  floor p99  commands/s  engine RSS"
        "  state size",
    ]
    lines += [_growth_line(run) for run in report.growth]
    fill = report.engine_fill
    lines += [
        "",
        f"Engine after {fill.tickets:,} tickets over {fill.days} days "
        f"({fill.seconds:.0f} s): RSS {fill.final.rss:.0f} MB (anonymous "
        f"{fill.final.anonymous:.0f}), {fill.growth_after_first_tenth:+.1%} "
        "since the first tenth",
        "Apps after the soak (RSS after the first hour, at the end, anonymous at "
        "the end, growth, textures):",
    ]
    lines += [_app_line(app) for app in report.apps]
    lines += ["", "Targets:"]
    lines += [
        f"  {'met' if check.met else 'MISSED':<6} {check.name}: {check.measured}"
        for check in report.targets
    ]
    return lines


def _office_lines(office: OfficeRun) -> list[str]:
    calls = office.calls
    lines = [
        f"  call latency    {_stats(calls.latency)}, {calls.latency.count} calls at "
        f"{calls.offered_calls_per_s:g}/s offered ({calls.nobody_waiting} with "
        f"nobody waiting, {calls.failed} failed)",
        f"  broker floor    {_stats(office.floor)}, {office.floor.count} round trips",
    ]
    if office.tickets is not None:
        tickets = office.tickets
        lines.append(
            f"  ticket latency  {_stats(tickets.latency)}, reply alone "
            f"{_stats(tickets.reply)}, {tickets.latency.count} tickets"
        )
    throughput = office.throughput
    states = office.states
    lines += [
        f"  throughput      {throughput.commands_per_s:.0f} commands/s over "
        f"{throughput.commands} commands ({throughput.rejected} rejected)",
        f"  states          {states.count} at the display, up to "
        f"{states.max_bytes:,} bytes, {states.rejected} rejected by the contract",
    ]
    return lines


def _stats(stats: LatencyStats) -> str:
    return f"p50 {stats.p50_ms:.2f} ms, p99 {stats.p99_ms:.2f} ms"


def _growth_line(run: OfficeRun) -> str:
    return (
        f"  {run.counters:>8} {run.calls.latency.p50_ms:7.2f} ms "
        f"{run.calls.latency.p99_ms:7.2f} ms {run.floor.p99_ms:7.2f} ms "
        f"{run.throughput.commands_per_s:11.0f} {run.engine.rss:8.0f} MB"
        f" {run.states.max_bytes:8,} B"
    )


def _app_line(app: AppMemory) -> str:
    return (
        f"  {app.app:<8} {app.after_warm_up.rss:4.0f} MB {app.final.rss:4.0f} MB "
        f"{app.final.anonymous:4.0f} MB {app.growth_after_warm_up:+6.1%} "
        f"{app.textures_after_warm_up:4d} -> {app.textures}"
    )
