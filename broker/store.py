"""The office's SQLite file: schema migrations and the queries the engine runs.

Only the engine writes here, except `antrean officers add`, which adds or
replaces rows of the officers table, and `antrean appointments import`, which
adds or replaces rows of the appointments table. The file stays an ordinary
SQLite database that sqlite-utils or Datasette can read while the office runs
(WAL mode).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from broker.contract import TicketStatus
from broker.errors import AntreanError

_LOGGER = logging.getLogger(__name__)

OPEN_STATUSES = (TicketStatus.WAITING, TicketStatus.CALLED, TicketStatus.SERVING)
AT_COUNTER = (TicketStatus.CALLED.value, TicketStatus.SERVING.value)


class StoreError(AntreanError):
    """The database cannot be opened, migrated or written."""


def _create_tickets(db: Database) -> None:
    db["tickets"].create(
        {
            "id": str,
            "day": str,
            "service": str,
            "lane": str,
            "category": str,
            "number": int,
            "label": str,
            "visit": int,
            "origin_id": str,
            "status": str,
            "issued_at": str,
            "arrived_at": str,
            "called_at": str,
            "served_at": str,
            "finished_at": str,
            "counter": int,
            "officer": str,
            "target_counter": int,
            "kiosk": str,
            "people_ahead": int,
            "estimate_min": int,
            "estimate_max": int,
            "calls": int,
        },
        pk="id",
        not_null={
            "day",
            "service",
            "lane",
            "number",
            "label",
            "visit",
            "status",
            "issued_at",
        },
        defaults={"visit": 0, "calls": 0},
    )
    db["tickets"].create_index(
        ["day", "label", "visit"], unique=True, index_name="tickets_label"
    )
    db["tickets"].create_index(
        ["day", "service", "number"], index_name="tickets_number"
    )
    db["tickets"].create_index(["status", "day"], index_name="tickets_status")
    db["tickets"].create_index(["counter", "status"], index_name="tickets_counter")


def _create_commands(db: Database) -> None:
    # One row per command id: the append-only log of what was asked and answered.
    db["commands"].create(
        {
            "command_id": str,
            "kind": str,
            "role": str,
            "device": str,
            "received_at": str,
            "payload": str,
            "ok": int,
            "error": str,
            "reply": str,
        },
        pk="command_id",
        not_null={"kind", "received_at", "reply"},
    )


def _create_events(db: Database) -> None:
    db.execute(
        """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            at TEXT NOT NULL,
            day TEXT NOT NULL,
            kind TEXT NOT NULL,
            ticket_id TEXT,
            counter INTEGER,
            command_id TEXT,
            data TEXT
        )
        """
    )
    db["events"].create_index(["day", "kind", "seq"], index_name="events_day_kind")


def _add_wait_estimates(db: Database) -> None:
    # estimate_min and estimate_max already exist (whole minutes, the printed
    # range); these hold the point estimate and the two baselines, in minutes.
    for column in ("estimate", "baseline_queue", "baseline_last"):
        db["tickets"].add_column(column, float)


def _create_counter_sessions(db: Database) -> None:
    # Append-only: a counter's availability is the state of its latest row that day.
    db.execute(
        """
        CREATE TABLE counter_sessions (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            day TEXT NOT NULL,
            counter INTEGER NOT NULL,
            state TEXT NOT NULL,
            at TEXT NOT NULL,
            reason TEXT,
            command_id TEXT
        )
        """
    )
    db["counter_sessions"].create_index(
        ["day", "counter", "seq"], index_name="counter_sessions_day"
    )


def _create_appointments(db: Database) -> None:
    # Booked visits imported from a CSV file. scheduled_at is the booked time as
    # an engine timestamp (UTC); ticket_id is set when the applicant checks in.
    db["appointments"].create(
        {
            "code": str,
            "name": str,
            "service": str,
            "day": str,
            "time": str,
            "scheduled_at": str,
            "imported_at": str,
            "checked_in_at": str,
            "ticket_id": str,
        },
        pk="code",
        not_null={"name", "service", "day", "time", "scheduled_at", "imported_at"},
    )
    db["appointments"].create_index(["day"], index_name="appointments_day")
    # The window in which an appointment ticket goes first (policy.Appointment).
    for column in ("appointment", "appointment_start", "appointment_end"):
        db["tickets"].add_column(column, str)


def _create_officers(db: Database) -> None:
    # pin_hash contains the scrypt parameters, the officer's own random salt and
    # the derived key (broker.officers.hash_pin); the PIN itself is never stored.
    db["officers"].create(
        {"id": str, "name": str, "pin_hash": str, "created_at": str, "updated_at": str},
        pk="id",
        not_null={"name", "pin_hash", "created_at", "updated_at"},
    )
    # One row per login; logout_at stays empty while the officer is logged in.
    db.execute(
        """
        CREATE TABLE officer_logins (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            day TEXT NOT NULL,
            counter INTEGER NOT NULL,
            officer TEXT NOT NULL,
            login_at TEXT NOT NULL,
            logout_at TEXT,
            login_command_id TEXT,
            logout_command_id TEXT,
            ended_by TEXT
        )
        """
    )
    db["officer_logins"].create_index(
        ["day", "counter", "seq"], index_name="officer_logins_day"
    )
    db["tickets"].create_index(["day", "officer"], index_name="tickets_officer")


# Applied in order, each in its own transaction; the file's user_version is the
# number of migrations applied. Append new steps; never edit a released one.
MIGRATIONS: tuple[Callable[[Database], None], ...] = (
    _create_tickets,
    _create_commands,
    _create_events,
    _add_wait_estimates,
    _create_counter_sessions,
    _create_appointments,
    _create_officers,
)


# The columns of a ticket that a queue policy reads, in the order of
# Store.waiting_for_policy's tuples.
POLICY_COLUMNS = (
    "id",
    "service",
    "lane",
    "arrived_at",
    "target_counter",
    "issued_at",
    "appointment_start",
    "appointment_end",
)


def timestamp(moment: datetime) -> str:
    """Format an aware datetime in UTC with fixed precision, so text order is time order."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime given where an aware one is required")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class Store:
    """The engine's handle on the SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, check_same_thread=False, timeout=5.0
            )
            self.db = Database(connection)
            self._table_columns: dict[str, frozenset[str]] = {}
            self.db.enable_wal()
            # FULL makes each commit durable before the reply goes out, even
            # across a power cut; NORMAL in WAL mode would only survive a crash.
            self.db.execute("PRAGMA synchronous = FULL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(
                f"cannot open the database {self.path}: {exc}. Check the data directory is writable."
            ) from exc

    @property
    def schema_version(self) -> int:
        """The number of migrations applied to this file."""
        return int(self.db.execute("PRAGMA user_version").fetchone()[0])

    def migrate(self) -> None:
        """Apply the migrations this file has not had yet, in order."""
        version = self.schema_version
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this antrean knows "
                f"({len(MIGRATIONS)}). Upgrade antrean before opening it."
            )
        for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
            with self.db.atomic():
                step(self.db)
                self.db.execute(f"PRAGMA user_version = {number}")
            _LOGGER.info(
                "Applied schema migration %d (%s) to %s",
                number,
                step.__name__,
                self.path,
            )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block as one transaction, committed when the block ends."""
        with self.db.atomic():
            yield

    @contextmanager
    def read_transaction(self) -> Iterator[None]:
        """Run a block of reads in one transaction, so they see a single moment
        of the file even while another connection commits.
        """
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def _columns(self, table: str, row: dict[str, Any]) -> list[str]:
        # sqlite-utils' insert and update read the table's schema on every call,
        # a dozen queries that cost more than the rest of a command. The schema
        # only changes in migrations, which run before any command.
        known = self._table_columns.get(table)
        if known is None:
            known = frozenset(self.db[table].columns_dict)
            self._table_columns[table] = known
        unknown = sorted(set(row) - known)
        if unknown:
            raise ValueError(f"table {table} has no column {', '.join(unknown)}")
        return list(row)

    def _insert(self, table: str, row: dict[str, Any]) -> None:
        columns = self._columns(table, row)
        names = ", ".join(f'"{name}"' for name in columns)
        marks = ", ".join("?" for _ in columns)
        self.db.execute(
            f"INSERT INTO {table} ({names}) VALUES ({marks})",
            [row[name] for name in columns],
        )

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def first_row(self, sql: str, parameters: list[Any]) -> dict[str, Any] | None:
        """Return the first row a query returns, as a dict, or None."""
        return next(iter(self.db.query(sql, parameters)), None)

    # Commands ---------------------------------------------------------------

    def stored_reply(self, command_id: str) -> dict[str, Any] | None:
        """Return the reply stored for a command id, or None if it is new."""
        row = self.db.execute(
            "SELECT reply FROM commands WHERE command_id = ?", [command_id]
        ).fetchone()
        return json.loads(row[0]) if row else None

    def record_command(self, row: dict[str, Any]) -> None:
        """Append a command and its reply to the log."""
        self._insert("commands", row)

    # Tickets ----------------------------------------------------------------

    def ticket(self, ticket_id: str) -> dict[str, Any] | None:
        """Return one ticket row, or None."""
        rows = list(self.db.query("SELECT * FROM tickets WHERE id = ?", [ticket_id]))
        return rows[0] if rows else None

    def insert_ticket(self, row: dict[str, Any]) -> None:
        """Insert a new ticket row."""
        self._insert("tickets", row)

    def update_ticket(self, ticket_id: str, changes: dict[str, Any]) -> None:
        """Change fields of one ticket."""
        columns = self._columns("tickets", changes)
        if not columns:
            return
        assignments = ", ".join(f'"{name}" = ?' for name in columns)
        cursor = self.db.execute(
            f"UPDATE tickets SET {assignments} WHERE id = ?",
            [*(changes[name] for name in columns), ticket_id],
        )
        if cursor.rowcount != 1:
            raise StoreError(f"ticket {ticket_id!r} not found, so it was not updated")

    def next_number(self, day: str, service: str) -> int:
        """Return the next ticket number of a service on a day."""
        row = self.db.execute(
            "SELECT MAX(number) FROM tickets WHERE day = ? AND service = ? AND visit = 0",
            [day, service],
        ).fetchone()
        return int(row[0] or 0) + 1

    def waiting(self, day: str) -> list[dict[str, Any]]:
        """Return the day's waiting tickets in arrival order."""
        return list(
            self.db.query(
                "SELECT * FROM tickets WHERE status = ? AND day = ? ORDER BY arrived_at, rowid",
                [TicketStatus.WAITING.value, day],
            )
        )

    def waiting_for_policy(self, day: str) -> list[tuple[Any, ...]]:
        """Return the day's waiting tickets in arrival order, as tuples of the
        columns POLICY_COLUMNS names.

        The same tickets as waiting(), without the columns a policy never reads,
        because every issue and every call reads the whole waiting list.
        """
        return self.db.execute(
            f"SELECT {', '.join(POLICY_COLUMNS)} FROM tickets "
            "WHERE status = ? AND day = ? ORDER BY arrived_at, rowid",
            [TicketStatus.WAITING.value, day],
        ).fetchall()

    def not_printed(self, day: str, limit: int) -> list[dict[str, Any]]:
        """Return the day's latest tickets that no kiosk could print, newest first."""
        return list(
            self.db.query(
                "SELECT * FROM tickets WHERE status = ? AND day = ? "
                "ORDER BY issued_at DESC LIMIT ?",
                [TicketStatus.NOT_PRINTED.value, day, limit],
            )
        )

    def at_counter(self, day: str) -> dict[int, dict[str, Any]]:
        """Return the ticket each counter has called or is serving today."""
        rows = self.db.query(
            "SELECT * FROM tickets WHERE status IN (?, ?) AND day = ? ORDER BY called_at",
            [*AT_COUNTER, day],
        )
        return {row["counter"]: row for row in rows}

    def at_counter_of(self, day: str, counter: int) -> dict[str, Any] | None:
        """Return the ticket one counter has called or is serving today, or None."""
        return self.first_row(
            "SELECT * FROM tickets WHERE counter = ? AND status IN (?, ?) AND day = ? "
            "ORDER BY called_at DESC, rowid DESC LIMIT 1",
            [counter, *AT_COUNTER, day],
        )

    def issued_counts(self, day: str) -> dict[str, int]:
        """Return how many tickets each service issued on a day (transfers excluded)."""
        rows = self.db.execute(
            "SELECT service, COUNT(*) FROM tickets WHERE day = ? AND visit = 0 GROUP BY service",
            [day],
        )
        return {service: count for service, count in rows}

    def close_earlier_days(self, day: str, at: str) -> int:
        """Void tickets still open from days before this one; return how many."""
        statuses = [status.value for status in OPEN_STATUSES]
        cursor = self.db.execute(
            "UPDATE tickets SET status = ?, finished_at = ? WHERE status IN (?, ?, ?) AND day < ?",
            [TicketStatus.VOID.value, at, *statuses, day],
        )
        return cursor.rowcount

    def ticket_by_label(self, day: str, label: str) -> dict[str, Any] | None:
        """Return the latest visit of the ticket with this label on a day, or None."""
        rows = list(
            self.db.query(
                "SELECT * FROM tickets WHERE day = ? AND label = ? ORDER BY visit DESC LIMIT 1",
                [day, label],
            )
        )
        return rows[0] if rows else None

    # Appointments -----------------------------------------------------------

    def appointment(self, code: str) -> dict[str, Any] | None:
        """Return the appointment with this code, or None."""
        rows = list(self.db.query("SELECT * FROM appointments WHERE code = ?", [code]))
        return rows[0] if rows else None

    def save_appointments(self, rows: list[dict[str, Any]]) -> None:
        """Insert appointments, replacing those with the same code."""
        self.db["appointments"].upsert_all(rows, pk="code")

    def update_appointment(self, code: str, changes: dict[str, Any]) -> None:
        """Change fields of one appointment."""
        self.db["appointments"].update(code, changes)

    # Events -----------------------------------------------------------------

    def append_event(self, row: dict[str, Any]) -> int:
        """Append an event and return its sequence number."""
        cursor = self.db.execute(
            "INSERT INTO events (at, day, kind, ticket_id, counter, command_id, data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                row["at"],
                row["day"],
                row["kind"],
                row.get("ticket_id"),
                row.get("counter"),
                row.get("command_id"),
                row.get("data"),
            ],
        )
        return int(cursor.lastrowid or 0)

    def recent_calls(self, day: str, limit: int) -> list[dict[str, Any]]:
        """Return the day's latest call events, newest first, each with its ticket."""
        return list(
            self.db.query(
                """
                SELECT tickets.*, events.seq AS call_seq, events.at AS call_at,
                       events.counter AS call_counter, events.data AS call_data
                FROM events JOIN tickets ON tickets.id = events.ticket_id
                WHERE events.day = ? AND events.kind = 'call'
                ORDER BY events.seq DESC LIMIT ?
                """,
                [day, limit],
            )
        )

    def last_calls(self, day: str) -> dict[int, str]:
        """Return the time of each counter's latest call (recalls included) on a day."""
        rows = self.db.execute(
            "SELECT counter, MAX(at) FROM events WHERE day = ? AND kind = 'call' GROUP BY counter",
            [day],
        )
        return {int(counter): at for counter, at in rows if counter is not None}

    def call_lanes(self, day: str, counter: int, limit: int) -> list[str]:
        """Return the lanes of a counter's latest first calls on a day, oldest first."""
        rows = self.db.execute(
            """
            SELECT tickets.lane FROM events JOIN tickets ON tickets.id = events.ticket_id
            WHERE events.day = ? AND events.kind = 'call' AND events.counter = ?
              AND COALESCE(json_extract(events.data, '$.recall'), 0) = 0
            ORDER BY events.seq DESC LIMIT ?
            """,
            [day, counter, limit],
        )
        return [lane for (lane,) in rows][::-1]

    # Counter sessions -------------------------------------------------------

    def append_session(self, row: dict[str, Any]) -> None:
        """Record a counter's change of availability."""
        self._insert("counter_sessions", row)

    def sessions(self, day: str) -> dict[int, dict[str, Any]]:
        """Return each counter's latest availability row of a day."""
        rows = self.db.query(
            "SELECT * FROM counter_sessions WHERE seq IN "
            "(SELECT MAX(seq) FROM counter_sessions WHERE day = ? GROUP BY counter)",
            [day],
        )
        return {row["counter"]: row for row in rows}

    def session_of(self, day: str, counter: int) -> dict[str, Any] | None:
        """Return one counter's latest availability row of a day, or None."""
        return self.first_row(
            "SELECT * FROM counter_sessions WHERE day = ? AND counter = ? "
            "ORDER BY seq DESC LIMIT 1",
            [day, counter],
        )

    def session_rows(self, since_day: str) -> list[dict[str, Any]]:
        """Return every availability row from a day on, in order."""
        return list(
            self.db.query(
                "SELECT * FROM counter_sessions WHERE day >= ? ORDER BY seq",
                [since_day],
            )
        )

    # History for estimates ------------------------------------------------

    def closed_visits(self, since_day: str, limit: int) -> list[dict[str, Any]]:
        """Return the latest finished and no-show visits from a day on, newest first."""
        return list(
            self.db.query(
                """
                SELECT service, lane, counter, status, called_at, served_at, finished_at
                FROM tickets
                WHERE day >= ? AND status IN (?, ?) AND called_at IS NOT NULL
                  AND finished_at IS NOT NULL
                ORDER BY finished_at DESC LIMIT ?
                """,
                [
                    since_day,
                    TicketStatus.FINISHED.value,
                    TicketStatus.NO_SHOW.value,
                    limit,
                ],
            )
        )

    def last_called(self, day: str, service: str, lane: str) -> dict[str, Any] | None:
        """Return the ticket of a service and lane that was called last on a day."""
        rows = list(
            self.db.query(
                """
                SELECT arrived_at, called_at FROM tickets
                WHERE day = ? AND service = ? AND lane = ? AND called_at IS NOT NULL
                ORDER BY called_at DESC LIMIT 1
                """,
                [day, service, lane],
            )
        )
        return rows[0] if rows else None

    def issued_counts_since(self, day: str, since: str, lane: str) -> dict[str, int]:
        """Return how many first visits of a lane each service issued on a day from a moment on."""
        rows = self.db.execute(
            "SELECT service, COUNT(*) FROM tickets "
            "WHERE day = ? AND visit = 0 AND lane = ? AND issued_at >= ? GROUP BY service",
            [day, lane, since],
        )
        return {service: count for service, count in rows}

    def day_tickets(self, day: str) -> list[dict[str, Any]]:
        """Return every visit of a day, in issue order and visit order."""
        return list(
            self.db.query(
                "SELECT * FROM tickets WHERE day = ? ORDER BY issued_at, number, visit",
                [day],
            )
        )

    def estimated_waits(self, since_day: str, limit: int) -> list[dict[str, Any]]:
        """Return the latest first visits with an estimate and a call, newest first."""
        return list(
            self.db.query(
                """
                SELECT lane, estimate, issued_at, called_at FROM tickets
                WHERE day >= ? AND visit = 0 AND estimate IS NOT NULL
                  AND called_at IS NOT NULL AND status != ?
                ORDER BY called_at DESC LIMIT ?
                """,
                [since_day, TicketStatus.NO_SHOW.value, limit],
            )
        )
