"""Helpers shared by the kiosk tests: appointments written into a running office."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta

from broker.appointments import import_appointments
from broker.contract import Role
from broker.service import DATABASE_NAME
from broker.store import Store


def add_appointment(
    office, code: str, service: str = "A", minutes: float = 10
) -> datetime:
    """Import one appointment booked `minutes` from now; return its booked time."""
    booked = datetime.now(office.site.timezone) + timedelta(minutes=minutes)
    path = office.data_dir / f"appointments-{code}.csv"
    path.write_text(
        "code,name,service,date,time\n"
        f"{code},Budi Santoso,{service},{booked:%Y-%m-%d},{booked:%H:%M}\n",
        encoding="utf-8",
    )
    store = Store(office.data_dir / DATABASE_NAME)
    try:
        import_appointments(path, office.site, store, datetime.now(UTC))
    finally:
        store.close()
    return booked.replace(second=0, microsecond=0)


class StateWatcher:
    """The office state as the engine last published it, seen by an operator client.

    Tests read counts here rather than from the engine's own SQLite connection,
    which belongs to the engine's thread.
    """

    def __init__(self, office) -> None:
        self.state = None
        self._changed = threading.Condition()
        office.client(Role.OPERATOR, "state-watch", on_state=self._keep)

    def _keep(self, state) -> None:
        with self._changed:
            self.state = state
            self._changed.notify_all()

    def wait_for(self, condition, timeout: float = 15.0) -> bool:
        """Block until the latest state meets the condition, or the timeout passes."""
        with self._changed:
            return self._changed.wait_for(
                lambda: self.state is not None and condition(self.state), timeout
            )

    def waiting(self, service: str) -> int:
        """Return the waiting count of a service in the latest state."""
        load = self.state.service(service)
        return load.waiting_normal + load.waiting_priority


def ticket_status(office, label: str) -> str | None:
    """Return the status of today's latest visit of a ticket, read from the file."""
    connection = sqlite3.connect(office.data_dir / DATABASE_NAME)
    try:
        row = connection.execute(
            "SELECT status FROM tickets WHERE label = ?"
            " ORDER BY issued_at DESC, visit DESC",
            [label],
        ).fetchone()
    finally:
        connection.close()
    return row[0] if row else None
