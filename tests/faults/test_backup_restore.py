"""`antrean backup` during traffic, `antrean restore`, and the engine's lock on
its data directory, run as the command-line user runs them."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.backup import BackupError, backup_database, inspect_database
from broker.lock import DataDirLock, DataDirLocked
from tests.faults.fault_office import REPO, FaultOffice, Traffic


def _antrean(office: FaultOffice, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broker", *args]
    command += ["--site", str(office.site_file), "--data-dir", str(office.data_dir)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


@pytest.fixture
def fault_office(tmp_path: Path) -> Iterator[FaultOffice]:
    running = FaultOffice(tmp_path)
    running.start()
    yield running
    running.close()


def _tickets(path: Path) -> list[tuple[str, str, int]]:
    connection = sqlite3.connect(path)
    try:
        query = "SELECT day, service, number FROM tickets WHERE visit = 0"
        return connection.execute(f"{query} ORDER BY day, service, number").fetchall()
    finally:
        connection.close()


def test_backup_during_traffic_is_consistent(
    fault_office: FaultOffice, tmp_path: Path
) -> None:
    traffic = Traffic(fault_office, seed=3, pause_s=0.01)
    traffic.start()
    try:
        time.sleep(0.5)
        runs = [
            _antrean(fault_office, "backup", str(tmp_path / f"copy-{n}.sqlite"))
            for n in range(3)
        ]
    finally:
        traffic.stop()

    for run in runs:
        assert run.returncode == 0, run.stderr
        assert run.stdout.startswith("Backed up ")
    for number in range(3):
        copy = tmp_path / f"copy-{number}.sqlite"
        checked = inspect_database(copy)
        tickets = _tickets(copy)
        per_service: dict[tuple[str, str], list[int]] = {}
        for day, service, ticket_number in tickets:
            per_service.setdefault((day, service), []).append(ticket_number)
        assert checked.tickets == len(tickets)
        for numbers in per_service.values():
            assert numbers == list(range(1, len(numbers) + 1))
        assert not Path(f"{copy}-wal").exists()
    assert inspect_database(tmp_path / "copy-2.sqlite").commands > 0


def test_backup_keeps_existing_file(fault_office: FaultOffice, tmp_path: Path) -> None:
    target = tmp_path / "taken.sqlite"
    target.write_text("not a database", encoding="utf-8")

    run = _antrean(fault_office, "backup", str(target))

    assert run.returncode == 1
    assert "already exists" in run.stderr
    assert target.read_text(encoding="utf-8") == "not a database"


def test_restore_rejected_while_engine_runs(
    fault_office: FaultOffice, tmp_path: Path
) -> None:
    backup = tmp_path / "backup.sqlite"
    assert _antrean(fault_office, "backup", str(backup)).returncode == 0
    before = fault_office.database.stat().st_mtime_ns

    run = _antrean(fault_office, "restore", str(backup))

    assert run.returncode == 1
    assert "is in use" in run.stderr
    assert "(engine)" in run.stderr
    assert fault_office.database.stat().st_mtime_ns == before


def test_restore_brings_back_tickets(fault_office: FaultOffice, tmp_path: Path) -> None:
    assert _antrean(fault_office, "ticket", "A").returncode == 0
    backup = tmp_path / "backup.sqlite"
    assert _antrean(fault_office, "backup", str(backup)).returncode == 0
    for _ in range(3):
        assert _antrean(fault_office, "ticket", "A").returncode == 0
    fault_office.stop_engine()

    restored = _antrean(fault_office, "restore", str(backup))
    seen = fault_office.start_engine()
    assert fault_office.wait_engine_online(seen)
    next_ticket = _antrean(fault_office, "ticket", "A")
    kept = sorted(fault_office.data_dir.glob("antrean-before-restore-*.sqlite"))

    assert restored.returncode == 0, restored.stderr
    assert "Restored 1 tickets" in restored.stdout
    assert next_ticket.stdout.startswith("A-002")
    assert len(kept) == 1
    assert inspect_database(kept[0]).tickets == 4


def test_restore_rejects_other_file(fault_office: FaultOffice, tmp_path: Path) -> None:
    fault_office.stop_engine()
    stranger = tmp_path / "other.sqlite"
    connection = sqlite3.connect(stranger)
    connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()
    before = _tickets(fault_office.database)

    run = _antrean(fault_office, "restore", str(stranger))

    assert run.returncode == 1
    assert "not an antrean database" in run.stderr
    assert _tickets(fault_office.database) == before


def test_second_engine_rejected(fault_office: FaultOffice) -> None:
    run = _antrean(fault_office, "up", "--headless")

    assert run.returncode == 1
    assert "is in use" in run.stderr
    assert fault_office.engine_running


def test_lock_released_by_killed_engine(fault_office: FaultOffice) -> None:
    lock = DataDirLock(fault_office.data_dir)
    with pytest.raises(DataDirLocked):
        lock.acquire("test")

    fault_office.kill_engine()
    lock.acquire("test")
    held = lock.held
    lock.release()

    assert held is True


def test_backup_without_database(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="no database"):
        backup_database(tmp_path / "missing.sqlite", tmp_path / "copy.sqlite")
