"""Ticket latency of `antrean bench`: a kiosk takes tickets and prints each one as
the kiosk app does, timing the request and the hand-over to the printer.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass

from broker.bench_load import Refill
from broker.bench_office import (
    BenchError,
    BenchOffice,
    LatencyStats,
    latency_stats,
    ticket_command,
)
from broker.client import OfficeClient
from broker.errors import AntreanError
from kiosk.printing import TicketPrinter

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class TicketLatency:
    """A kiosk's request until its ticket's bytes are with the printer backend."""

    latency: LatencyStats
    reply: LatencyStats
    failed: int


class TicketTimer:
    """One kiosk that takes a ticket at random intervals and prints it as the kiosk
    app does (kiosk.printing.TicketPrinter, a file printer here), timing each.

    The reply time is the request alone; the latency adds rendering the ESC/POS
    bytes and handing them to the printer with its status queries. Each ticket
    saves the refill one, so the waiting list keeps its length.
    """

    def __init__(
        self,
        office: BenchOffice,
        kiosk: OfficeClient,
        refill: Refill,
        count: int,
        per_s: float,
        seed: int,
    ) -> None:
        site_kiosk = office.site.kiosk(kiosk.device)
        if site_kiosk is None:
            raise BenchError(f"kiosk {kiosk.device} is not in the bench site")
        self.site = office.site
        self.kiosk = kiosk
        self.refill = refill
        self.printer = TicketPrinter(office.site, site_kiosk, office.data_dir)
        self.count = count
        self.mean_pause = 1.0 / per_s
        self.random = random.Random(seed)
        self.samples: list[float] = []
        self.replies: list[float] = []
        self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="bench-tickets", daemon=True
        )

    def start(self) -> None:
        """Start taking `count` tickets in a background thread."""
        self._thread.start()

    def finish(self, timeout: float) -> TicketLatency:
        """Wait up to `timeout` for the last ticket, stop, and summarise the samples."""
        self._thread.join(timeout)
        self._stop.set()
        self._thread.join()
        self.printer.close()
        return TicketLatency(
            latency=latency_stats(self.samples),
            reply=latency_stats(self.replies),
            failed=self.failed,
        )

    def _run(self) -> None:
        for index in range(1, self.count + 1):
            if self._stop.wait(self.random.expovariate(1.0 / self.mean_pause)):
                return
            self._take(index)

    def _take(self, index: int) -> None:
        started = time.monotonic()
        try:
            reply = self.kiosk.request(ticket_command(self.site, index))
        except AntreanError as exc:
            self.failed += 1
            _LOGGER.warning("Ticket request of %s failed: %s", self.kiosk.device, exc)
            return
        replied = time.monotonic()
        if not reply.ok or reply.ticket is None:
            self.failed += 1
            _LOGGER.warning("Ticket request rejected: %s", reply.message)
            return
        self.refill.count_issued_elsewhere()
        result = self.printer.print_ticket(reply.ticket)
        if not result.printed:
            self.failed += 1
            _LOGGER.warning(
                "Ticket %s was not printed: %s", reply.ticket.label, result.error
            )
            return
        self.samples.append(time.monotonic() - started)
        self.replies.append(replied - started)
