"""Adapter for a clinic queue export (QDate, Queue No, index, Svc, Counter, QTime, Start, End, …).

Such a file has one row per visit: `index` 0 is the first, 1, 2, … follow
transfers. The adapter turns it into day-log visits and a site whose counters
are the rooms named in it. Its rules, for rows the clinic's system wrote
without a room:

- a row with Valid = N and no room never waited in any queue, and a row
  without QTime or End cannot be placed in time: both are dropped;
- a row with no room followed at once (the next row's QTime equals its End)
  by another row of the same ticket is merged into that row: the applicant
  kept waiting, so the next visit counts from this row's QTime;
- any other row with no room left the queue at End without a call: it becomes
  a cancelled visit, which the engine removes at that moment.

A row that does not join the queue when the previous row of its ticket ended
starts a new ticket, as the applicant came back later. The file names no time
zone, so times are read as UTC.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from broker.contract import TicketStatus
from broker.replay import LogError, Visit
from broker.site import Lane, Site, parse_site

HEADER = ("QDate", "Queue No", "index", "Svc", "Counter", "QTime", "Start", "End")
SERVICE_CODE = "U"


def is_clinic_header(fields: Iterable[str]) -> bool:
    """Tell whether a CSV header is the clinic export's."""
    return set(HEADER) <= set(fields)


def read_clinic(
    lines: Iterable[str], source: str = "clinic log"
) -> tuple[Site, list[Visit]]:
    """Read a clinic export into a site with its rooms as counters and day-log visits."""
    reader = csv.DictReader(lines)
    if not is_clinic_header(reader.fieldnames or ()):
        raise LogError(
            f"{source}: the header lacks some of {list(HEADER)}. Is this a clinic export?"
        )
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in reader:
        groups.setdefault((row["QDate"], row["Queue No"]), []).append(row)
    rooms = _rooms(groups.values())
    site = _site(rooms, groups.values(), source)
    visits: list[Visit] = []
    try:
        for (day, number), rows in groups.items():
            visits.extend(_ticket_visits(day, number, rows, rooms))
    except (KeyError, ValueError) as exc:
        raise LogError(f"{source}: {exc}. Fix or remove that row.") from exc
    return site, visits


def _rooms(groups: Iterable[list[dict[str, str]]]) -> dict[str, int]:
    rooms: dict[str, int] = {}
    for rows in groups:
        for row in rows:
            if row["Counter"] and row["Counter"] not in rooms:
                rooms[row["Counter"]] = len(rooms) + 1
    return rooms


def _site(
    rooms: dict[str, int], groups: Iterable[list[dict[str, str]]], source: str
) -> Site:
    served = [
        float(row["ST"])
        for rows in groups
        for row in rows
        if row["Counter"] and row.get("ST", "").isdigit()
    ]
    # The prior service time is the file's median, so learning starts near it.
    minutes = min(max(statistics.median(served) if served else 5.0, 0.5), 240.0)
    name = "Clinic"
    data: dict[str, Any] = {
        "site": {"id": "clinic", "name": name, "timezone": "UTC"},
        "hours": {
            "open": "08:00",
            "close": "17:00",
            "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
        },
        "services": [
            {
                "code": SERVICE_CODE,
                "name_id": name,
                "name_en": name,
                "minutes": minutes,
                "daily_quota": 999,
            }
        ],
        "counters": [
            {"number": number, "name": room[:40], "services": [SERVICE_CODE]}
            for room, number in rooms.items()
        ],
    }
    return parse_site(data, f"{source} (clinic rooms)")


def _ticket_visits(
    day: str, number: str, rows: list[dict[str, str]], rooms: dict[str, int]
) -> list[Visit]:
    visits: list[Visit] = []
    ticket = number
    returns = 0
    waiting_since: datetime | None = None
    previous_end: datetime | None = None
    for position, row in enumerate(rows):
        queued, start, end = (
            _moment(day, row[name]) for name in ("QTime", "Start", "End")
        )
        voided = not row["Counter"] and row.get("Valid") == "N"
        if queued is None or end is None or voided:
            continue
        following = rows[position + 1] if position + 1 < len(rows) else None
        joins_next = following is not None and _moment(day, following["QTime"]) == end
        if visits and previous_end != queued and waiting_since is None:
            returns += 1
            ticket = f"{number}r{returns}"
        arrived = waiting_since or queued
        if not row["Counter"] or start is None:
            if joins_next:
                waiting_since = arrived
                continue
            visits.append(
                _visit(ticket, visits, arrived, None, end, None, TicketStatus.VOID)
            )
        else:
            outcome = TicketStatus.TRANSFERRED if joins_next else TicketStatus.FINISHED
            visits.append(
                _visit(
                    ticket, visits, arrived, start, end, rooms[row["Counter"]], outcome
                )
            )
        waiting_since = None
        previous_end = end
    return visits


def _visit(
    ticket: str,
    earlier: list[Visit],
    arrived: datetime,
    called: datetime | None,
    finished: datetime,
    counter: int | None,
    outcome: TicketStatus,
) -> Visit:
    return Visit(
        ticket=ticket,
        visit=sum(1 for v in earlier if v.ticket == ticket),
        service=SERVICE_CODE,
        lane=Lane.NORMAL,
        arrived=arrived,
        called=max(called, arrived) if called else None,
        finished=finished,
        counter=counter,
        outcome=outcome.value,
    )


def _moment(day: str, clock: str) -> datetime | None:
    if not clock.strip():
        return None
    return datetime.strptime(f"{day} {clock} +0000", "%d-%b-%y %H:%M:%S %z")
