"""Copies of the office database: a backup taken while the engine runs, and a
restore that puts one back while no engine runs on the data directory.

Both go through SQLite's online backup API, which copies a consistent snapshot
page by page, so a backup taken mid-command contains all of it or none of it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from broker.errors import AntreanError
from broker.lock import DataDirLock
from broker.store import MIGRATIONS, Store

_LOGGER = logging.getLogger(__name__)

# The tables a file must have to count as an antrean database.
REQUIRED_TABLES = frozenset({"tickets", "commands", "events"})


class BackupError(AntreanError):
    """A backup or restore that cannot be made or would lose data."""


@dataclass(frozen=True)
class DatabaseCopy:
    """A database file written by backup or restore, and what it contains."""

    path: Path
    schema_version: int
    tickets: int
    commands: int
    size_bytes: int


def backup_database(database: Path, target: Path) -> DatabaseCopy:
    """Copy a live database to `target`, which must not exist yet, and check the copy.

    The copy is written next to `target` under a temporary name and renamed
    only after its integrity check passes, so `target` is complete or absent.
    """
    if not database.exists():
        raise BackupError(f"no database at {database}. Pass the office's --data-dir.")
    if target.exists():
        raise BackupError(
            f"{target} already exists. Choose a new file name, or delete it first."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    try:
        _copy(database, partial)
        copy = inspect_database(partial)
        os.replace(partial, target)
    except sqlite3.Error as exc:
        raise BackupError(f"backing up {database} to {target} failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)
    _LOGGER.info("Backed up %s to %s (%d tickets)", database, target, copy.tickets)
    return DatabaseCopy(
        target, copy.schema_version, copy.tickets, copy.commands, copy.size_bytes
    )


def restore_database(
    data_dir: Path, database: Path, source: Path
) -> tuple[DatabaseCopy, Path | None]:
    """Replace the data directory's database with a backup; return it and the old copy.

    Keeps the data directory's lock throughout, so it fails while an engine
    runs there and no engine can start until it is done. The database it
    replaces is first backed up beside it; its path is returned (None if
    there was no database).
    """
    lock = DataDirLock(data_dir)
    lock.acquire("restore")
    try:
        try:
            incoming = inspect_database(source)
        except sqlite3.Error as exc:
            raise BackupError(
                f"{source} is not a readable SQLite database ({exc}). Pick a file "
                "written by `antrean backup`."
            ) from exc
        kept = _keep_current(database)
        _replace(source, database)
        # Opening it through Store applies any migrations a newer antrean added.
        Store(database).close()
    finally:
        lock.release()
    restored = DatabaseCopy(
        database,
        incoming.schema_version,
        incoming.tickets,
        incoming.commands,
        database.stat().st_size,
    )
    _LOGGER.info("Restored %s from %s (%d tickets)", database, source, restored.tickets)
    return restored, kept


def inspect_database(path: Path) -> DatabaseCopy:
    """Check a database file's integrity and schema; return what it holds."""
    if not path.is_file():
        raise BackupError(f"{path} does not exist or is not a file.")
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        _check_integrity(connection, path)
        version = _check_schema(connection, path)
        tickets = _count(connection, "tickets")
        commands = _count(connection, "commands")
    finally:
        connection.close()
    return DatabaseCopy(path, version, tickets, commands, path.stat().st_size)


def _check_integrity(connection: sqlite3.Connection, path: Path) -> None:
    result = connection.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        problems = "; ".join(str(row[0]) for row in result[:3])
        raise BackupError(f"{path} failed SQLite's integrity check: {problems}")


def _check_schema(connection: sqlite3.Connection, path: Path) -> int:
    query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    tables = {row[0] for row in connection.execute(query)}
    missing = ", ".join(sorted(REQUIRED_TABLES - tables))
    if missing:
        raise BackupError(
            f"{path} is not an antrean database: it has no {missing} table. "
            "Pick a file written by `antrean backup`."
        )
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    if version > len(MIGRATIONS):
        raise BackupError(
            f"{path} has schema version {version}, newer than this antrean knows "
            f"({len(MIGRATIONS)}). Upgrade antrean before restoring it."
        )
    return version


def _count(connection: sqlite3.Connection, table: str) -> int:
    return int(connection.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _copy(source: Path, target: Path) -> None:
    # One step (pages=-1) reads the whole file inside one read transaction, so
    # the copy is a snapshot even while the engine commits in WAL mode.
    # Read-write, because a read-only connection cannot open a WAL database
    # whose -shm file is missing; nothing is written through it.
    reader = sqlite3.connect(source, timeout=10)
    writer = sqlite3.connect(target)
    try:
        reader.backup(writer, pages=-1)
        # A copy in rollback-journal mode is one self-contained file.
        writer.execute("PRAGMA journal_mode = DELETE")
    finally:
        writer.close()
        reader.close()


def _keep_current(database: Path) -> Path | None:
    if not database.exists():
        return None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = database.with_name(f"{database.stem}-before-restore-{stamp}.sqlite")
    backup_database(database, kept)
    return kept


def _replace(source: Path, database: Path) -> None:
    # The backup API writes into the existing file through SQLite, which also
    # resets its WAL, so no stale -wal or -shm file is left to be replayed.
    database.parent.mkdir(parents=True, exist_ok=True)
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    writer = sqlite3.connect(database)
    try:
        reader.backup(writer, pages=-1)
    finally:
        writer.close()
        reader.close()
