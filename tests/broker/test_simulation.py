"""Smoke runs of `antrean simulate`, `export` and `replay`, and the clinic log adapter."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from broker.clinic import read_clinic
from broker.contract import Command, CommandKind, Role
from broker.engine import Engine, Source
from broker.replay import export_day, read_log, replay
from broker.site import load_site
from broker.store import Store

ESTIMATORS = {"model", "baseline_queue", "baseline_last"}


def antrean(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_simulate_one_day_prints_fields() -> None:
    result = antrean("simulate", "--days", "1", "--seed", "3", "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tickets"] > 50
    assert {w["lane"] for w in summary["waits"]} == {"normal", "priority"}
    assert all(0 < c["utilisation"] <= 1 for c in summary["counters"])
    assert {s["estimator"] for s in summary["estimators"]} == ESTIMATORS
    model = next(s for s in summary["estimators"] if s["estimator"] == "model")
    assert 0 <= model["inside_range"] <= 1


def test_simulate_text_output() -> None:
    result = antrean("simulate", "--days", "1")

    assert result.returncode == 0, result.stderr
    assert "Counter utilisation" in result.stdout
    assert "baseline_last" in result.stdout


def _small_day(path: Path) -> None:
    """Run a short day on the engine: six tickets, two counters, one transfer."""
    moment = [datetime(2026, 12, 4, 1, 0, tzinfo=UTC)]
    store = Store(path)
    engine = Engine(load_site(), store, clock=lambda: moment[0])
    ids = iter(range(100))

    def send(kind: CommandKind, **fields: object) -> None:
        reply = engine.handle(
            Command(kind, f"x{next(ids)}", **fields), Source(Role.OPERATOR, "t")
        )
        assert reply.reply.ok, reply.reply.message

    for index in range(6):
        send(
            CommandKind.ISSUE_TICKET,
            service="AB"[index % 2],
            category="lansia" if index == 3 else None,
        )
        moment[0] += timedelta(minutes=2)
    for counter in (1, 2, 1, 2):
        send(CommandKind.NEXT, counter=counter)
        moment[0] += timedelta(minutes=7)
    send(CommandKind.TRANSFER, counter=2, to_service="C")
    send(CommandKind.NEXT, counter=4)
    moment[0] += timedelta(minutes=3)
    send(CommandKind.NO_SHOW, counter=4)
    store.close()


def test_export_and_replay_round_trip(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _small_day(data_dir / "antrean.sqlite")
    log = tmp_path / "day.csv"

    exported = antrean(
        "export",
        "--day",
        "2026-12-04",
        "--data-dir",
        str(data_dir),
        "--output",
        str(log),
    )
    replayed = antrean("replay", str(log), "--json")

    assert exported.returncode == 0, exported.stderr
    assert log.read_text().splitlines()[0].startswith("ticket,visit,service,lane")
    assert len(log.read_text().splitlines()) == 8
    assert replayed.returncode == 0, replayed.stderr
    summary = json.loads(replayed.stdout)
    assert summary["skipped_steps"] == 0
    # Four first visits were called; two tickets still waited at the end.
    assert summary["tickets"] == 4
    assert {s["estimator"] for s in summary["estimators"]} == ESTIMATORS


def test_replay_reproduces_logged_calls(tmp_path: Path) -> None:
    _small_day(tmp_path / "antrean.sqlite")
    store = Store(tmp_path / "antrean.sqlite")
    log = tmp_path / "day.csv"
    with open(log, "w", newline="") as out:
        export_day(store, load_site(), "2026-12-04", out)
    store.close()

    summary = replay(load_site(), read_log(log.read_text().splitlines(keepends=True)))

    waits = {w.lane: w for w in summary.waits}
    assert waits["priority"].tickets == 1
    assert waits["normal"].max > 0


CLINIC = """QDate,Queue No,index,Svc,Counter,UserID,QTime,Start,End,WT,ST,Valid,Remark
2-Sep-19,1001,0,Scan,,,7:30:00,8:00:00,8:00:00,30,0,Y,
2-Sep-19,1001,1,Scan,Room B,7,8:00:00,8:10:00,8:20:00,10,10,Y,Transferred
2-Sep-19,1002,0,Scan,Room A,7,7:40:00,8:05:00,8:12:00,25,7,Y,
2-Sep-19,1002,1,Scan,Room B,7,8:12:00,8:20:00,8:26:00,8,6,Y,Transferred
2-Sep-19,1003,0,Scan,,,7:41:00,7:41:00,7:41:00,0,0,N,
2-Sep-19,1004,0,Scan,,,7:50:00,8:30:00,8:30:00,40,0,Y,
2-Sep-19,1005,0,Scan,Room A,7,7:55:00,8:12:00,8:18:00,17,6,Y,
2-Sep-19,1005,0,Scan,Room A,7,9:00:00,9:02:00,9:10:00,2,8,Y,
"""


def test_clinic_adapter_applies_its_rules() -> None:
    site, visits = read_clinic(CLINIC.splitlines(keepends=True))

    by_ticket = {}
    for visit in visits:
        by_ticket.setdefault(visit.ticket, []).append(visit)
    assert [c.name for c in site.counters] == ["Room B", "Room A"]
    # 1001's first row had no room and led straight on: merged, waiting from 7:30.
    assert len(by_ticket["1001"]) == 1
    assert by_ticket["1001"][0].arrived.strftime("%H:%M") == "07:30"
    assert [v.outcome for v in by_ticket["1002"]] == ["transferred", "finished"]
    assert "1003" not in by_ticket
    assert by_ticket["1004"][0].outcome == "void"
    # 1005 came back at 9:00: a new ticket.
    assert by_ticket["1005r1"][0].arrived.strftime("%H:%M") == "09:00"


def test_replay_detects_clinic_format(tmp_path: Path) -> None:
    log = tmp_path / "clinic.csv"
    log.write_text(CLINIC)

    result = antrean("replay", str(log), "--json")

    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tickets"] == 4
    assert summary["skipped_steps"] == 0
