"""A full, read-only or locked database: the engine rejects the command with a
reason and writes nothing, then carries on once the database is usable again."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.contract import Command, CommandKind, ErrorCode, OfficeState, Role
from broker.engine import Engine, Outcome, Source
from broker.site import load_site
from broker.store import Store
from tests.faults.fault_office import REPO, FaultOffice
from tests.faults.fault_runs import table_rows

KIOSK = Source(Role.KIOSK, "kiosk-1")


class StepClock:
    """A clock that moves five seconds on each reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=5)
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    store = Store(tmp_path / "antrean.sqlite")
    yield Engine(load_site(), store, clock=StepClock())
    store.close()


def _issue(engine: Engine, command_id: str, service: str = "B") -> Outcome:
    command = Command(CommandKind.ISSUE_TICKET, command_id, service=service)
    return engine.handle(command, KIOSK)


def _rows(store: Store) -> dict[str, list[tuple[object, ...]]]:
    return table_rows(lambda query: store.db.execute(query).fetchall())


def test_full_database_writes_nothing(engine: Engine) -> None:
    store = engine.store
    assert _issue(engine, "first", service="A").reply.ok
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")

    failed = None
    for number in range(200):
        before = _rows(store)
        outcome = _issue(engine, f"fill-{number}")
        if not outcome.reply.ok:
            failed = outcome
            break
    assert failed is not None, "the size limit was never reached"
    after = _rows(store)
    store.db.execute("PRAGMA max_page_count = 1000000")
    retried = engine.handle(
        Command(CommandKind.ISSUE_TICKET, failed.reply.command_id, service="B"), KIOSK
    )

    assert failed.reply.error is ErrorCode.UNAVAILABLE
    assert "is full" in failed.reply.message
    assert "nothing was changed" in failed.reply.message
    assert after == before
    assert retried.reply.ok, retried.reply.message
    assert retried.repeat is False
    assert retried.reply.ticket is not None
    assert retried.reply.ticket.label == f"B-{number + 1:03d}"


def test_locked_database_writes_nothing(engine: Engine, tmp_path: Path) -> None:
    store = engine.store
    store.db.execute("PRAGMA busy_timeout = 50")
    assert _issue(engine, "first").reply.ok
    before = _rows(store)
    other = sqlite3.connect(tmp_path / "antrean.sqlite", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        outcome = _issue(engine, "while-locked")
    finally:
        other.execute("ROLLBACK")
        other.close()
    after = _rows(store)
    retried = _issue(engine, "while-locked")

    assert outcome.reply.error is ErrorCode.UNAVAILABLE
    assert "locked by another program" in outcome.reply.message
    assert after == before
    assert retried.reply.ok, retried.reply.message
    assert retried.reply.ticket is not None
    assert retried.reply.ticket.label == "B-002"


def _without_file_permission_override() -> tuple[str, ...]:
    """Return a command prefix under which file modes bind, even for root."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("root ignores file modes and setpriv (util-linux) is missing")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all")


def _cli(office: FaultOffice, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "broker", *args]
    command += ["--site", str(office.site_file), "--data-dir", str(office.data_dir)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_read_only_database_rejects_tickets(tmp_path: Path) -> None:
    office = FaultOffice(tmp_path)
    states: list[OfficeState] = []
    received = threading.Event()

    def keep(state: OfficeState) -> None:
        states.append(state)
        received.set()

    office.start()
    try:
        assert _cli(office, "ticket", "A").returncode == 0
        office.stop_engine()
        before = table_rows(office.read)
        office.database.chmod(0o444)
        seen = office.start_engine(_without_file_permission_override())
        assert office.wait_engine_online(seen)
        office.client(Role.DISPLAY, "hall", on_state=keep)
        rejected = _cli(office, "ticket", "A")
        after = table_rows(office.read)
        assert received.wait(10), "the read-only engine published no office state"
        read_only_state = states[-1]
        office.stop_engine()
        office.database.chmod(0o644)
        seen = office.start_engine()
        assert office.wait_engine_online(seen)
        accepted = _cli(office, "ticket", "A")
    finally:
        office.database.chmod(0o644)
        office.close()

    assert rejected.returncode == 1
    assert "read-only" in rejected.stderr
    assert "nothing was changed" in rejected.stderr
    assert after == before
    assert read_only_state.service("A").issued == 1
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("A-002")
