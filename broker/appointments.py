"""Import of booked appointments from a CSV file into the office database.

The file has the columns code, name, service, date and time (in any order,
comma or semicolon separated, UTF-8 with or without a byte order mark). Every
row is checked first and the file is imported whole or not at all.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from broker.contract import APPOINTMENT_CODE
from broker.errors import AntreanError
from broker.site import Site
from broker.store import Store, timestamp

_LOGGER = logging.getLogger(__name__)

COLUMNS = ("code", "name", "service", "date", "time")
MAX_NAME_LENGTH = 80
# Problems listed in one error; a file with more is likely the wrong file.
MAX_LISTED_PROBLEMS = 20


class AppointmentImportError(AntreanError):
    """An appointment file that cannot be imported; nothing of it was stored."""


@dataclass(frozen=True)
class ImportSummary:
    """What an import stored: new and replaced appointments, and the days they cover."""

    added: int
    replaced: int
    days: tuple[str, ...]


def import_appointments(
    path: Path, site: Site, store: Store, now: datetime
) -> ImportSummary:
    """Validate every row of a CSV file and store them all in one transaction.

    Raises AppointmentImportError listing each bad row by its line number, or
    naming a code that has already checked in (its booking cannot change).
    """
    rows = read_appointments(path, site, now)
    existing = {code: store.appointment(code) for code in rows}
    checked_in = sorted(
        code for code, row in existing.items() if row and row["ticket_id"]
    )
    if checked_in:
        raise AppointmentImportError(
            f"{path}: {', '.join(checked_in)} already checked in and cannot "
            "be changed. Remove those rows and import again."
        )
    with store.transaction():
        store.save_appointments(list(rows.values()))
    replaced = sum(1 for row in existing.values() if row is not None)
    days = tuple(sorted({row["day"] for row in rows.values()}))
    _LOGGER.info(
        "Imported %d appointments from %s (%d replaced)", len(rows), path, replaced
    )
    return ImportSummary(len(rows) - replaced, replaced, days)


def read_appointments(
    path: Path, site: Site, now: datetime
) -> dict[str, dict[str, Any]]:
    """Return the file's appointments by code as store rows, or raise on any bad row."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise AppointmentImportError(
            f"{path} cannot be read as UTF-8 text: {exc}. Save it as CSV UTF-8."
        ) from exc
    reader = csv.DictReader(io.StringIO(text), dialect=_dialect(text))
    _check_header(path, reader.fieldnames)
    rows: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    # Line 1 is the header, so the first row is on line 2.
    for line, record in enumerate(reader, start=2):
        try:
            row = _parse_row(record, site, now)
        except ValueError as exc:
            problems.append(f"line {line}: {exc}")
            continue
        if row["code"] in rows:
            problems.append(f"line {line}: code {row['code']} is used twice")
            continue
        rows[row["code"]] = row
    if problems:
        raise AppointmentImportError(_problem_text(path, problems))
    if not rows:
        raise AppointmentImportError(f"{path} has a header but no appointment rows.")
    return rows


def _dialect(text: str) -> type[csv.Dialect]:
    # Spreadsheets set to Indonesian write semicolons, because "," is their
    # decimal separator.
    header = text.split("\n", 1)[0]
    if ";" in header and "," not in header:
        return _Semicolon
    return csv.excel


class _Semicolon(csv.excel):
    delimiter = ";"


def _check_header(path: Path, names: list[str] | None) -> None:
    found = [name.strip().lower() for name in names or []]
    missing = [column for column in COLUMNS if column not in found]
    unknown = [name for name in found if name not in COLUMNS]
    if missing or unknown:
        raise AppointmentImportError(
            f"{path}: the header must name the columns {', '.join(COLUMNS)}; "
            f"missing {missing or 'none'}, unknown {unknown or 'none'}. "
            "Fix the first line of the file."
        )


def _parse_row(record: dict[str, Any], site: Site, now: datetime) -> dict[str, Any]:
    values = {
        (key or "").strip().lower(): (value or "").strip()
        for key, value in record.items()
        if key is not None
    }
    if None in record:
        raise ValueError("has more fields than the header")
    code = values["code"].upper()
    if not APPOINTMENT_CODE.match(code):
        raise ValueError(f"code {values['code']!r} is not 4 to 16 letters or digits")
    name = values["name"]
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"name must be 1 to {MAX_NAME_LENGTH} characters long")
    service = values["service"].upper()
    if site.service(service) is None:
        codes = ", ".join(s.code for s in site.services)
        raise ValueError(f"service {values['service']!r} is not one of {codes}")
    day = _parse_date(values["date"])
    clock = _parse_time(values["time"])
    booked = datetime.combine(day, clock, tzinfo=site.timezone)
    return {
        "code": code,
        "name": name,
        "service": service,
        "day": day.isoformat(),
        "time": f"{clock:%H:%M}",
        "scheduled_at": timestamp(booked),
        "imported_at": timestamp(now),
        "checked_in_at": None,
        "ticket_id": None,
    }


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"date {text!r} is not a date like 2026-12-04") from exc


def _parse_time(text: str) -> time:
    try:
        return datetime.strptime(text, "%H:%M").time()
    except ValueError as exc:
        raise ValueError(f"time {text!r} is not a time like 09:30") from exc


def _problem_text(path: Path, problems: list[str]) -> str:
    shown = problems[:MAX_LISTED_PROBLEMS]
    more = len(problems) - len(shown)
    tail = f"\n  … and {more} more" if more else ""
    listed = "\n  ".join(shown)
    return (
        f"{path}: {len(problems)} invalid rows, nothing was imported. Fix them "
        f"and import again:\n  {listed}{tail}"
    )
