"""Printing one ticket with a status query before and after, off the UI thread.

A ticket counts as printed only when the send succeeded and the printer did
not report paper out or offline afterwards, because a printer that runs out
of paper halfway stops and leaves the applicant without a readable ticket.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from broker.contract import TicketView
from broker.site import Kiosk, Lane, Site
from kiosk.errors import KioskError
from kiosk.printers import Printer, PrinterStatus, open_printer
from kiosk.ticket import PaperLayout, PrintedTicket, render_ticket

_LOGGER = logging.getLogger(__name__)

TICKETS_DIR = "tickets"
# Each status query takes at most this long, so a silent printer delays the
# applicant's message by two of them at most.
STATUS_TIMEOUT_S = 1.0
# Statuses in which a printer cannot print a ticket.
UNUSABLE = frozenset({PrinterStatus.PAPER_OUT, PrinterStatus.OFFLINE})


@dataclass(frozen=True)
class PrintResult:
    """The outcome of printing one ticket, and the printer status that followed."""

    printed: bool
    status: PrinterStatus
    # The printer error that was caught, "" when the status alone explains it.
    error: str = ""


def printer_spec_for(kiosk: Kiosk, data_dir: Path) -> str:
    """Return the kiosk's printer spec, with a bare "file:" sent to data_dir/tickets."""
    spec = kiosk.printer.spec.strip()
    if spec == "file:":
        return f"file:{data_dir / TICKETS_DIR}"
    return spec


def printed_ticket(
    site: Site, view: TicketView, reprint: bool = False
) -> PrintedTicket:
    """Build the printed content of an issued ticket, in the site's time zone."""
    service = site.service(view.service)
    service_name = f"{service.name_id} / {service.name_en}" if service else view.service
    category = site.category(view.category) if view.category else None
    estimate = view.estimate
    appointment = view.appointment_at
    return PrintedTicket(
        office_name=site.name,
        label=view.label,
        service_name=service_name,
        priority=view.lane is Lane.PRIORITY,
        category_name=category.name_id if category else None,
        issued_at=view.issued_at.astimezone(site.timezone),
        people_ahead=view.people_ahead,
        ticket_id=view.id,
        wait_range=(estimate.low, estimate.high) if estimate else None,
        documents=service.documents if service else (),
        appointment_at=appointment.astimezone(site.timezone) if appointment else None,
        reprint=reprint,
    )


class TicketPrinter:
    """The kiosk's printer: opened on first use and reopened after a failure."""

    def __init__(self, site: Site, kiosk: Kiosk, data_dir: Path) -> None:
        self.site = site
        self.spec = printer_spec_for(kiosk, data_dir)
        self._config = kiosk.printer
        self._printer: Printer | None = None
        self._layout: PaperLayout | None = None
        self._lock = threading.Lock()

    def status(self) -> tuple[PrinterStatus, str]:
        """Query the printer's status, waiting STATUS_TIMEOUT_S at most."""
        with self._lock:
            try:
                return self._open().query_status(STATUS_TIMEOUT_S), ""
            except KioskError as exc:
                _LOGGER.warning("Printer %s is not usable: %s", self.spec, exc)
                self._drop()
                return PrinterStatus.OFFLINE, str(exc)

    def print_ticket(
        self, view: TicketView, *, reprint: bool = False, check_first: bool = True
    ) -> PrintResult:
        """Print a ticket, querying the status before (unless just done) and after."""
        if check_first:
            before, error = self.status()
            if before in UNUSABLE:
                return PrintResult(False, before, error)
        try:
            data = render_ticket(
                printed_ticket(self.site, view, reprint), self._paper()
            )
            with self._lock:
                self._open().send(data, view.id)
        except KioskError as exc:
            _LOGGER.error(
                "Printing ticket %s (%s) on %s failed: %s",
                view.label,
                view.id,
                self.spec,
                exc,
            )
            with self._lock:
                self._drop()
            return PrintResult(False, PrinterStatus.OFFLINE, str(exc))
        after, error = self.status()
        if after in UNUSABLE:
            return PrintResult(False, after, error)
        return PrintResult(True, after)

    def close(self) -> None:
        """Release the printer device."""
        with self._lock:
            self._drop()

    def _paper(self) -> PaperLayout:
        if self._layout is None:
            config = self._config
            self._layout = PaperLayout(config.width_mm, config.profile, config.codepage)
        return self._layout

    def _open(self) -> Printer:
        # A failed open leaves _printer unset, so the next ticket tries again.
        if self._printer is None:
            self._printer = open_printer(self.spec)
        return self._printer

    def _drop(self) -> None:
        if self._printer is not None:
            printer, self._printer = self._printer, None
            printer.close()
