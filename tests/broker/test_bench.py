"""A smoke run of `antrean bench` in a tiny configuration: every figure is there and
positive. How fast anything is stays out of the tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from broker.bench import BenchReport, BenchSizes, report_data, run_bench
from broker.bench_cli import cmd_bench, format_report
from broker.bench_office import latency_stats
from broker.cli import build_parser

TINY = BenchSizes(
    counters=2,
    kiosks=2,
    calls=10,
    tickets=3,
    commands=20,
    raw_commits=20,
    growth_counters=(1,),
    growth_calls=5,
    growth_commands=10,
    fill_tickets=40,
    soak_hours=1.05,
    soak_speed=600.0,
)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> BenchReport:
    """One tiny benchmark run, shared by the tests of this module."""
    return run_bench(TINY, tmp_path_factory.mktemp("bench"), None, quick=True)


def test_office_figures_positive(report: BenchReport) -> None:
    office = report.office

    assert office.counters == TINY.counters
    assert office.calls.latency.count == TINY.calls
    assert office.calls.latency.p50_ms > 0
    assert office.calls.latency.p99_ms >= office.calls.latency.p50_ms
    assert office.floor.p99_ms > 0
    assert office.tickets is not None
    assert office.tickets.latency.p50_ms > office.tickets.reply.p50_ms > 0
    assert office.throughput.commands_per_s > 0
    assert office.engine.rss > 0
    assert report.raw_sqlite_commits_per_s > 0


def test_display_decodes_states(report: BenchReport) -> None:
    states = report.office.states

    assert states.count > 0
    assert states.max_bytes > 0
    assert states.rejected == 0


def test_growth_has_each_size(report: BenchReport) -> None:
    (run,) = report.growth

    assert run.counters == 1
    assert run.tickets is None
    assert run.calls.latency.p50_ms > 0
    assert run.throughput.commands_per_s > 0


def test_engine_fill_reports_memory(report: BenchReport) -> None:
    fill = report.engine_fill

    assert fill.tickets == TINY.fill_tickets
    assert fill.commands >= 2 * TINY.fill_tickets
    assert fill.final.rss > fill.final.anonymous > 0
    assert fill.peak_rss_mb >= fill.final.rss


def test_soak_reports_each_app(report: BenchReport) -> None:
    apps = {app.app: app for app in report.apps}

    assert set(apps) == {"kiosk", "counter", "display"}
    for app in apps.values():
        assert app.final.rss > 0, app.app
        assert app.textures > 0, app.app
        # Hour 0, hour 1 and the end.
        assert len(app.rss_mb_by_hour) == 3, app.app


def test_targets_judge_every_figure(report: BenchReport) -> None:
    names = [check.name for check in report.targets]

    assert any(name.startswith("call p99") for name in names)
    assert any(name.startswith("ticket p99") for name in names)
    assert any(name.startswith("throughput") for name in names)
    assert sum(name.endswith("MB") for name in names) == 3
    assert any("textures" in name for name in names)


def test_report_is_json_and_text(report: BenchReport) -> None:
    data = json.loads(json.dumps(report_data(report)))
    text = "\n".join(format_report(report))

    assert data["machine"]["cpus"] > 0
    assert data["office"]["calls"]["latency"]["p99_ms"] > 0
    assert "Targets:" in text
    assert "raw SQLite" in text


def test_latency_stats_nearest_rank() -> None:
    stats = latency_stats([0.001 * n for n in range(1, 101)])

    assert stats.count == 100
    assert stats.p50_ms == pytest.approx(50.0)
    assert stats.p99_ms == pytest.approx(99.0)
    assert stats.max_ms == pytest.approx(100.0)


def test_cli_runs_bench_subcommand(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["bench", "--quick", "--json", "--work-dir", str(tmp_path)]
    )

    assert args.handler is cmd_bench
    assert args.quick is True
    assert args.json is True
    assert args.work_dir == tmp_path
