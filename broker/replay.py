"""Day logs: export a day's visits as CSV, and replay such a log through the real Engine.

One CSV row is one visit of a ticket: its first visit, or a visit after a
transfer. Times are ISO 8601 with their UTC offset; empty means never.
"""

from __future__ import annotations

import csv
import heapq
import logging
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from broker.contract import Command, CommandKind, Role, TicketStatus
from broker.engine import Engine, Source
from broker.errors import AntreanError
from broker.scoring import LaneWaits, Outcome, Score, lane_waits, score
from broker.site import Lane, Site
from broker.store import Store

_LOGGER = logging.getLogger(__name__)

COLUMNS = (
    "ticket",
    "visit",
    "service",
    "lane",
    "category",
    "issued",
    "arrived",
    "called",
    "served",
    "finished",
    "counter",
    "target_counter",
    "outcome",
    "estimate",
    "estimate_min",
    "estimate_max",
)
REPLAY = Source(Role.OPERATOR, "replay")
# At one instant, closing a visit goes before an issue, and an issue before a call.
_CLOSE, _ISSUE, _CALL = 0, 1, 2


class LogError(AntreanError):
    """A day log cannot be read."""


@dataclass(frozen=True)
class Visit:
    """One row of a day log: a ticket's stay in one queue and how it ended."""

    ticket: str
    visit: int
    service: str
    lane: Lane
    arrived: datetime
    called: datetime | None
    finished: datetime | None
    counter: int | None
    outcome: str
    category: str | None = None
    target_counter: int | None = None


@dataclass(frozen=True)
class ReplaySummary:
    """The summary `antrean replay` prints."""

    days: int
    tickets: int
    skipped_steps: int
    waits: list[LaneWaits]
    estimators: list[Score]


# Export --------------------------------------------------------------------


def export_day(store: Store, site: Site, day: str, out: TextIO) -> int:
    """Write a day's visits as CSV and return how many rows were written."""
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    rows = store.day_tickets(day)
    for row in rows:
        writer.writerow(_export_row(row, site))
    return len(rows)


def _export_row(row: dict[str, Any], site: Site) -> list[str]:
    def local(name: str) -> str:
        value = row.get(name)
        return (
            datetime.fromisoformat(value).astimezone(site.timezone).isoformat()
            if value
            else ""
        )

    def text(name: str) -> str:
        value = row.get(name)
        return "" if value is None else str(value)

    return [
        row["label"],
        str(row["visit"]),
        row["service"],
        row["lane"],
        text("category"),
        local("issued_at"),
        local("arrived_at"),
        local("called_at"),
        local("served_at"),
        local("finished_at"),
        text("counter"),
        text("target_counter"),
        row["status"],
        "" if row.get("estimate") is None else f"{row['estimate']:.1f}",
        text("estimate_min"),
        text("estimate_max"),
    ]


def read_log(lines: Iterable[str], source: str = "log") -> list[Visit]:
    """Read a day log written by `export_day`."""
    reader = csv.DictReader(lines)
    missing = set(COLUMNS[:13]) - set(reader.fieldnames or ())
    if missing:
        raise LogError(
            f"{source}: the header lacks {sorted(missing)}. Write the log with `antrean export`, "
            "or pass --format clinic for a clinic export."
        )
    visits = []
    for number, row in enumerate(reader, start=2):
        try:
            visits.append(_visit(row))
        except (KeyError, ValueError) as exc:
            raise LogError(
                f"{source}: line {number}: {exc}. Fix or remove that row."
            ) from exc
    return visits


def _visit(row: dict[str, str]) -> Visit:
    def moment(name: str) -> datetime | None:
        return datetime.fromisoformat(row[name]) if row[name] else None

    arrived = moment("arrived") or moment("issued")
    if arrived is None or arrived.tzinfo is None:
        raise ValueError("arrived and issued are missing or have no UTC offset")
    return Visit(
        ticket=row["ticket"],
        visit=int(row["visit"]),
        service=row["service"],
        lane=Lane(row["lane"]),
        arrived=arrived,
        called=moment("called"),
        finished=moment("finished"),
        counter=int(row["counter"]) if row["counter"] else None,
        outcome=row["outcome"],
        category=row["category"] or None,
        target_counter=int(row["target_counter"]) if row["target_counter"] else None,
    )


# Replay ----------------------------------------------------------------------


class Replay:
    """Feeds logged visits to an Engine on a clock set to each logged moment."""

    def __init__(self, site: Site, directory: Path) -> None:
        self.site = site
        self.store = Store(directory / "antrean.sqlite")
        # A throwaway database: durability on power loss buys nothing here.
        self.store.db.execute("PRAGMA synchronous = OFF")
        self.now = datetime.now().astimezone()
        self.engine = Engine(site, self.store, clock=lambda: self.now)
        self.skipped = 0
        self._ids = 0
        self._labels: dict[str, str] = {}
        self._ticket_ids: dict[str, str] = {}

    def run(self, visits: list[Visit]) -> ReplaySummary:
        """Replay every visit in time order and score the estimates made on the way."""
        chains = _chains(visits)
        queue: list[tuple[datetime, int, int, str, int]] = []
        for order, (key, chain) in enumerate(sorted(chains.items())):
            heapq.heappush(queue, (chain[0].arrived, _ISSUE, order, key, 0))
        while queue:
            moment, phase, order, key, index = heapq.heappop(queue)
            self.now = max(self.now, moment) if self._ids else moment
            follow = self._step(phase, chains[key], index, key)
            if follow is not None:
                when, next_phase, next_index = follow
                heapq.heappush(
                    queue, (max(when, self.now), next_phase, order, key, next_index)
                )
        outcomes = self._outcomes(chains)
        days = len({v.arrived.date() for v in visits})
        return ReplaySummary(
            days, len(outcomes), self.skipped, lane_waits(outcomes), score(outcomes)
        )

    def _step(
        self, phase: int, chain: list[Visit], index: int, key: str
    ) -> tuple[datetime, int, int] | None:
        visit = chain[index]
        if phase == _ISSUE:
            return self._issue(visit, key)
        if phase == _CALL:
            return self._call(visit, key, index)
        return self._close(chain, index, key)

    def _issue(self, visit: Visit, key: str) -> tuple[datetime, int, int] | None:
        reply = self._send(
            CommandKind.ISSUE_TICKET, service=visit.service, category=visit.category
        )
        if not reply.ok or reply.ticket is None:
            self._skip(key, reply.message)
            return None
        self._labels[key] = reply.ticket.label
        self._ticket_ids[key] = reply.ticket.id
        return self._after_arrival(visit, 0)

    def _after_arrival(
        self, visit: Visit, index: int
    ) -> tuple[datetime, int, int] | None:
        if visit.called is not None and visit.counter is not None:
            return visit.called, _CALL, index
        if visit.finished is not None and visit.outcome == TicketStatus.VOID:
            return visit.finished, _CLOSE, index
        return None

    def _call(
        self, visit: Visit, key: str, index: int
    ) -> tuple[datetime, int, int] | None:
        reply = self._send(
            CommandKind.CALL, counter=visit.counter, ticket=self._labels[key]
        )
        if not reply.ok:
            self._skip(key, reply.message)
            return None
        return (visit.finished, _CLOSE, index) if visit.finished else None

    def _close(
        self, chain: list[Visit], index: int, key: str
    ) -> tuple[datetime, int, int] | None:
        visit = chain[index]
        if visit.outcome == TicketStatus.VOID:
            reply = self._send(CommandKind.CANCEL, ticket=self._labels[key])
        elif visit.outcome == TicketStatus.TRANSFERRED and index + 1 < len(chain):
            following = chain[index + 1]
            reply = self._send(
                CommandKind.TRANSFER,
                counter=visit.counter,
                to_service=following.service,
                to_counter=following.target_counter,
            )
            if reply.ok:
                return self._after_arrival(following, index + 1)
        elif visit.outcome == TicketStatus.NO_SHOW:
            reply = self._send(CommandKind.NO_SHOW, counter=visit.counter)
        else:
            reply = self._send(CommandKind.FINISH, counter=visit.counter)
        if not reply.ok:
            self._skip(key, reply.message)
        return None

    def _send(self, kind: CommandKind, **fields: Any) -> Any:
        self._ids += 1
        command = Command(kind, f"replay-{self._ids}", **fields)
        return self.engine.handle(command, REPLAY).reply

    def _skip(self, key: str, message: str) -> None:
        # A log can contradict itself (two tickets at one counter at once);
        # the replay skips that step and counts it instead of stopping.
        self.skipped += 1
        _LOGGER.debug("Replay step of %s skipped: %s", key, message)

    def _outcomes(self, chains: dict[str, list[Visit]]) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for key, ticket_id in self._ticket_ids.items():
            row = self.store.ticket(ticket_id)
            first = chains[key][0]
            if row is None or first.called is None or first.counter is None:
                continue
            if not row["called_at"]:
                continue
            waited = (first.called - first.arrived).total_seconds() / 60
            outcomes.append(Outcome.from_row(row, max(waited, 0.0)))
        return outcomes


def _chains(visits: list[Visit]) -> dict[str, list[Visit]]:
    """Group visits by day and ticket, each chain in visit order."""
    chains: dict[str, list[Visit]] = {}
    for visit in visits:
        key = f"{visit.arrived.date().isoformat()}/{visit.ticket}"
        chains.setdefault(key, []).append(visit)
    for chain in chains.values():
        chain.sort(key=lambda v: v.visit)
    return chains


def replay(site: Site, visits: list[Visit]) -> ReplaySummary:
    """Replay visits through a fresh Engine in a temp directory and score its estimates."""
    with tempfile.TemporaryDirectory(prefix="antrean-replay-") as directory:
        runner = Replay(site, Path(directory))
        try:
            return runner.run(visits)
        finally:
            runner.store.close()


def iter_lines(path: Path) -> Iterator[str]:
    """Yield the lines of a CSV file, raising LogError when it cannot be read."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            yield from handle
    except OSError as exc:
        raise LogError(
            f"{path}: cannot be read ({exc.strerror}). Check the path."
        ) from exc
