"""The SQLite file: migrations, WAL and reopening."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker.contract import Command, CommandKind, Role
from broker.engine import Engine, Source
from broker.site import load_site
from broker.store import MIGRATIONS, Store, StoreError


def clock() -> datetime:
    return datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


def test_store_survives_reopening(tmp_path: Path) -> None:
    store = Store(tmp_path / "antrean.sqlite")
    Engine(load_site(), store, clock=clock).handle(
        Command(CommandKind.ISSUE_TICKET, "x", service="A"), Source(Role.KIOSK, "k")
    )
    store.close()

    reopened = Store(tmp_path / "antrean.sqlite")

    assert reopened.schema_version == len(MIGRATIONS)
    assert reopened.stored_reply("x")["ticket"]["label"] == "A-001"
    assert reopened.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_store_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "antrean.sqlite"
    Store(path).close()
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()

    with pytest.raises(StoreError, match="newer than this antrean knows"):
        Store(path)


def test_store_in_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    with pytest.raises(StoreError, match="Check the data directory is writable"):
        Store(blocker / "antrean.sqlite")


def test_update_missing_ticket_raises(tmp_path: Path) -> None:
    store = Store(tmp_path / "antrean.sqlite")

    with pytest.raises(StoreError, match="not found"):
        store.update_ticket("20260302-A001", {"status": "finished"})
    store.close()


def test_insert_unknown_column_raises(tmp_path: Path) -> None:
    store = Store(tmp_path / "antrean.sqlite")

    with pytest.raises(ValueError, match="no column colour"):
        store.record_command({"command_id": "c1", "colour": "red"})
    assert store.db.execute("SELECT COUNT(*) FROM commands").fetchone() == (0,)
    store.close()
