"""Kiosk logic without widgets: service choice, ticket requests, printing, status.

The screens bind to the Kivy properties of KioskController. Network waits and
printing run on one worker thread, and their results return through the Clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import Any

from kivy.clock import Clock, ClockEvent
from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    DictProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)

from broker.client import Link, OfficeClient, new_command_id
from broker.contract import (
    Command,
    CommandKind,
    ErrorCode,
    OfficeState,
    Reply,
    Role,
    TicketView,
)
from broker.errors import AntreanError
from broker.site import Kiosk, Lane, Service, Site
from kiosk.errors import KioskError
from kiosk.printers import Printer, open_printer
from kiosk.ticket import PaperLayout, PrintedTicket, render_ticket

_LOGGER = logging.getLogger(__name__)

TICKETS_DIR = "tickets"
TICKET_SCREEN_S = 10.0
NOTICE_SCREEN_S = 15.0
# Inner screens left alone go back home, so the next applicant starts there.
INNER_SCREEN_IDLE_S = 60.0
# Touches this soon after a result appears do not dismiss it: they are the
# second half of a double tap on the service button.
DISMISS_GUARD_S = 1.0
# The engine republishes its state every 5 s (broker.service.HEARTBEAT_S).
STATE_STALE_S = 20.0
STALE_CHECK_S = 5.0
PRINTER_CHECK_S = 60.0


class ScreenName(StrEnum):
    """Names of the kiosk's screens in the screen manager."""

    HOME = "home"
    CATEGORIES = "categories"
    PRIORITY_SERVICES = "priority_services"
    WAIT = "wait"
    TICKET = "ticket"
    NOTICE = "notice"


CONNECTED_TEXT = "Terhubung ke server antrean / Connected"
DISCONNECTED_TEXT = "Tidak terhubung ke server antrean / Not connected"
STALE_TEXT = "Server antrean tidak menjawab / The queue server is not answering"

UNREACHABLE_ID = "Server antrean tidak dapat dihubungi. Silakan hubungi petugas."
UNREACHABLE_EN = "Cannot reach the queue server, please ask staff."
PRINT_FAILED_ID = "Tiket tidak dapat dicetak"
PRINT_FAILED_EN = "The ticket could not be printed, please tell staff your number."
UNEXPECTED_ID = "Terjadi kesalahan. Silakan hubungi petugas."
UNEXPECTED_EN = "Something went wrong, please ask staff."

REJECTED_ID: dict[ErrorCode | None, str] = {
    ErrorCode.QUOTA_REACHED: "Tiket hari ini untuk layanan ini sudah habis.",
    ErrorCode.UNKNOWN_SERVICE: "Layanan ini tidak tersedia di kantor ini.",
    ErrorCode.UNKNOWN_CATEGORY: "Kategori prioritas ini tidak tersedia.",
    ErrorCode.UNAVAILABLE: "Server antrean sedang bermasalah. Silakan hubungi petugas.",
}
REJECTED_DEFAULT_ID = "Tiket tidak dapat diambil. Silakan hubungi petugas."

PRINTER_WARNINGS = {
    "paper_low": "Kertas hampir habis / Paper low",
    "paper_out": "Kertas habis / Out of paper",
    "offline": "Printer tidak menyala / Printer offline",
    "error": "Printer bermasalah / Printer error",
}


def select_kiosk(site: Site, device: str | None) -> Kiosk:
    """Return the kiosk with id `device`, or the site's first kiosk for None.

    Raises KioskError naming the known kiosk ids when there is no such kiosk.
    """
    known = ", ".join(k.id for k in site.kiosks) or "none"
    if device is None:
        if not site.kiosks:
            raise KioskError(
                f"Site {site.id} defines no kiosk. Add a [[kiosks]] table to "
                f"{site.source or 'the site file'}."
            )
        return site.kiosks[0]
    kiosk = site.kiosk(device)
    if kiosk is None:
        raise KioskError(
            f"Kiosk {device!r} not found in site {site.id}. Use one of: {known}."
        )
    return kiosk


def printer_spec_for(kiosk: Kiosk, data_dir: Path) -> str:
    """Return the kiosk's printer spec, with a bare "file:" sent to data_dir/tickets."""
    spec = kiosk.printer.spec.strip()
    if spec == "file:":
        return f"file:{data_dir / TICKETS_DIR}"
    return spec


def printed_ticket(site: Site, view: TicketView) -> PrintedTicket:
    """Build the printed content of an issued ticket, in the site's time zone."""
    service = site.service(view.service)
    service_name = f"{service.name_id} / {service.name_en}" if service else view.service
    category = site.category(view.category) if view.category else None
    return PrintedTicket(
        office_name=site.name,
        label=view.label,
        service_name=service_name,
        priority=view.lane is Lane.PRIORITY,
        category_name=category.name_id if category else None,
        issued_at=view.issued_at.astimezone(site.timezone),
        people_ahead=view.people_ahead,
        ticket_id=view.id,
    )


class KioskController(EventDispatcher):
    """State and flow of one kiosk: what the screens show and what a touch does."""

    office_name = StringProperty("")
    kiosk_name = StringProperty("")
    # One dict per service: code, name_id, name_en, description_id, description_en.
    services = ListProperty([])
    # Tickets left today per service code, from the engine's state.
    remaining = DictProperty({})
    # One dict per priority category: key, name_id, name_en.
    categories = ListProperty([])
    category = StringProperty("")
    category_name_id = StringProperty("")
    category_name_en = StringProperty("")

    connected = BooleanProperty(False)
    online = BooleanProperty(False)
    connection_text = StringProperty(DISCONNECTED_TEXT)
    printer_status = StringProperty("unknown")
    printer_text = StringProperty("")

    screen = StringProperty(ScreenName.HOME.value)
    busy = BooleanProperty(False)
    last_ticket = ObjectProperty(None, allownone=True)
    ticket_label = StringProperty("")
    ticket_service_id = StringProperty("")
    ticket_service_en = StringProperty("")
    ticket_priority = BooleanProperty(False)
    ticket_category_id = StringProperty("")
    ticket_category_en = StringProperty("")
    people_ahead = NumericProperty(0)
    message_id = StringProperty("")
    message_en = StringProperty("")
    notice_label = StringProperty("")

    def __init__(self, site: Site, kiosk: Kiosk, data_dir: Path, **kwargs: Any):
        super().__init__(**kwargs)
        self.site = site
        self.kiosk = kiosk
        self.printer_spec = printer_spec_for(kiosk, data_dir)
        self.office_name = site.name
        self.kiosk_name = kiosk.name or kiosk.id
        self.services = [_service_entry(s) for s in site.services]
        self.categories = [
            {"key": c.key, "name_id": c.name_id, "name_en": c.name_en}
            for c in site.priority_categories
        ]
        self._client = OfficeClient(
            site,
            Role.KIOSK,
            kiosk.id,
            on_state=self._receive_state,
            on_link=self._receive_link,
            data_dir=data_dir,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"kiosk-{kiosk.id}"
        )
        self._printer: Printer | None = None
        self._layout: PaperLayout | None = None
        self._stopped = False
        self._state_at = time.monotonic()
        self._shown_at = 0.0
        self._return_event: ClockEvent | None = None
        self._intervals: list[ClockEvent] = []

    # Lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Connect to the office broker and start the periodic checks."""
        _LOGGER.info(
            "Kiosk %s starting with printer %s", self.kiosk.id, self.printer_spec
        )
        self._client.start()
        self._intervals = [
            Clock.schedule_interval(self._check_state_age, STALE_CHECK_S),
            Clock.schedule_interval(self._schedule_printer_check, PRINTER_CHECK_S),
        ]

    def stop(self) -> None:
        """Stop the checks, the worker and the broker link, then close the printer."""
        if self._stopped:
            return
        self._stopped = True
        for event in self._intervals:
            event.cancel()
        self._cancel_return()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._client.stop()
        if self._printer is not None:
            self._printer.close()
        _LOGGER.info("Kiosk %s stopped", self.kiosk.id)

    # Navigation (main thread) ----------------------------------------------

    def open_priority(self) -> bool:
        """Show the priority categories, or return False while a ticket request runs."""
        if self.busy:
            return False
        self._show_inner(ScreenName.CATEGORIES)
        return True

    def choose_category(self, key: str) -> bool:
        """Pick a priority category and show the service choice for it.

        Returns False, changing nothing, for a key the site does not define.
        """
        if self.busy:
            return False
        category = self.site.category(key)
        if category is None:
            _LOGGER.warning("Ignored unknown priority category %r", key)
            return False
        self.category = category.key
        self.category_name_id = category.name_id
        self.category_name_en = category.name_en
        self._show_inner(ScreenName.PRIORITY_SERVICES)
        return True

    def go_back(self) -> None:
        """Go one screen back from an inner screen."""
        if self.screen == ScreenName.PRIORITY_SERVICES:
            self._show_inner(ScreenName.CATEGORIES)
        else:
            self.go_home()

    def go_home(self) -> bool:
        """Show the home screen and clear the category, or return False while busy."""
        if self.busy:
            return False
        self._cancel_return()
        self.category = ""
        self.category_name_id = ""
        self.category_name_en = ""
        self.screen = ScreenName.HOME.value
        return True

    def dismiss(self) -> bool:
        """Leave the ticket or notice screen on a touch, unless it has just appeared."""
        if self.screen not in (ScreenName.TICKET, ScreenName.NOTICE):
            return False
        if time.monotonic() - self._shown_at < DISMISS_GUARD_S:
            return False
        return self.go_home()

    # Issuing -----------------------------------------------------------------

    def issue(self, service: str) -> bool:
        """Request a ticket for a service code in the chosen lane.

        Returns False and sends nothing while an earlier request is in progress,
        so a double tap gives one ticket. The engine validates the code.
        """
        if self.busy:
            _LOGGER.debug("Ignored a touch on service %s while busy", service)
            return False
        command = Command(
            CommandKind.ISSUE_TICKET,
            new_command_id("kiosk"),
            service=service,
            category=self.category or None,
        )
        self._cancel_return()
        self.busy = True
        self.screen = ScreenName.WAIT.value
        if not self._submit(self._issue_and_print, command):
            self.busy = False
            self.screen = ScreenName.HOME.value
            return False
        _LOGGER.info(
            "Requested a ticket for %s (category %s) as %s",
            service,
            command.category,
            command.command_id,
        )
        return True

    def _issue_and_print(self, command: Command) -> None:
        # Runs on the worker thread. Every path ends in one result screen, which
        # also clears the busy flag, so the kiosk never stays locked.
        try:
            self._issue_and_print_ticket(command)
        except Exception:
            _LOGGER.exception("Issuing ticket %s failed", command.command_id)
            self._deliver(self._show_notice, UNEXPECTED_ID, UNEXPECTED_EN, "")

    def _issue_and_print_ticket(self, command: Command) -> None:
        try:
            reply = self._client.request(command)
        except AntreanError as exc:
            _LOGGER.warning("Ticket request %s failed: %s", command.command_id, exc)
            self._deliver(self._show_notice, UNREACHABLE_ID, UNREACHABLE_EN, "")
            return
        if not reply.ok or reply.ticket is None:
            self._deliver(self._show_rejected, reply)
            return
        view = reply.ticket
        try:
            self._print(view)
        except KioskError as exc:
            _LOGGER.error(
                "Printing ticket %s (%s) on %s failed: %s",
                view.label,
                view.id,
                self.printer_spec,
                exc,
            )
            self._publish_printer("error", str(exc))
            self._deliver(self._show_print_failure, view)
            return
        self._deliver(self._show_ticket, view)
        self._check_printer()

    # Printing (worker thread) ----------------------------------------------

    def _print(self, view: TicketView) -> None:
        if self._layout is None:
            config = self.kiosk.printer
            self._layout = PaperLayout(config.width_mm, config.profile, config.codepage)
        data = render_ticket(printed_ticket(self.site, view), self._layout)
        self._open_printer().send(data, view.id)

    def _open_printer(self) -> Printer:
        # A failed open leaves _printer unset, so the next ticket tries again.
        if self._printer is None:
            self._printer = open_printer(self.printer_spec)
        return self._printer

    def _check_printer(self) -> None:
        try:
            status = self._open_printer().query_status().value
        except KioskError as exc:
            _LOGGER.warning("Printer %s is not usable: %s", self.printer_spec, exc)
            self._publish_printer("error", str(exc))
            return
        self._publish_printer(status, "")

    def _publish_printer(self, status: str, error: str) -> None:
        self._deliver(self._apply_printer_status, status)
        if not self._client.connected:
            return
        detail = {"printer": status, "printer_spec": self.printer_spec}
        if error:
            detail["printer_error"] = error
        self._client.publish_status(detail)

    # Results (main thread) -------------------------------------------------

    def _show_ticket(self, view: TicketView) -> None:
        self._set_ticket(view)
        self.message_id = ""
        self.message_en = ""
        self.notice_label = ""
        self._show_result(ScreenName.TICKET, TICKET_SCREEN_S)

    def _show_print_failure(self, view: TicketView) -> None:
        self._set_ticket(view)
        self._show_notice(PRINT_FAILED_ID, PRINT_FAILED_EN, view.label)

    def _show_rejected(self, reply: Reply) -> None:
        _LOGGER.info("Ticket request %s rejected: %s", reply.command_id, reply.message)
        message_id = REJECTED_ID.get(reply.error, REJECTED_DEFAULT_ID)
        self._show_notice(message_id, reply.message, "")

    def _show_notice(self, message_id: str, message_en: str, label: str) -> None:
        self.message_id = message_id
        self.message_en = message_en
        self.notice_label = label
        self._show_result(ScreenName.NOTICE, NOTICE_SCREEN_S)

    def _show_result(self, screen: ScreenName, seconds: float) -> None:
        self.busy = False
        self._shown_at = time.monotonic()
        self.screen = screen.value
        self._schedule_return(seconds)

    def _set_ticket(self, view: TicketView) -> None:
        service = self.site.service(view.service)
        category = self.site.category(view.category) if view.category else None
        self.last_ticket = view
        self.ticket_label = view.label
        self.ticket_service_id = service.name_id if service else view.service
        self.ticket_service_en = service.name_en if service else ""
        self.ticket_priority = view.lane is Lane.PRIORITY
        self.ticket_category_id = category.name_id if category else ""
        self.ticket_category_en = category.name_en if category else ""
        self.people_ahead = view.people_ahead

    def _show_inner(self, screen: ScreenName) -> None:
        self.screen = screen.value
        self._schedule_return(INNER_SCREEN_IDLE_S)

    def _schedule_return(self, seconds: float) -> None:
        self._cancel_return()
        self._return_event = Clock.schedule_once(lambda _dt: self.go_home(), seconds)

    def _cancel_return(self) -> None:
        if self._return_event is not None:
            self._return_event.cancel()
            self._return_event = None

    # Broker callbacks ------------------------------------------------------

    def _receive_state(self, state: OfficeState) -> None:
        # Runs on paho's network thread, so the state goes through the Clock.
        if state.site != self.site.id:
            _LOGGER.warning("Ignored the state of another site, %s", state.site)
            return
        self._deliver(self._apply_state, state)

    def _receive_link(self, link: Link) -> None:
        # Runs on paho's network thread, or in the caller of start() and stop().
        self._deliver(self._apply_link, link)
        if link is Link.CONNECTED:
            self._submit(self._check_printer)

    def _apply_state(self, state: OfficeState) -> None:
        self._state_at = time.monotonic()
        self.remaining = {s.code: s.remaining for s in state.services}
        self._update_connection()

    def _apply_link(self, link: Link) -> None:
        _LOGGER.info("Kiosk %s link is %s", self.kiosk.id, link.value)
        self.connected = link is Link.CONNECTED
        if self.connected:
            # The retained state arrives right after connecting; until then the
            # engine gets the same grace period as after each state.
            self._state_at = time.monotonic()
        self._update_connection()

    def _apply_printer_status(self, status: str) -> None:
        self.printer_status = status
        self.printer_text = PRINTER_WARNINGS.get(status, "")

    def _schedule_printer_check(self, _dt: float) -> None:
        # Returns None on purpose: a False return would stop the Clock interval.
        self._submit(self._check_printer)

    def _check_state_age(self, _dt: float) -> None:
        self._update_connection()

    def _update_connection(self) -> None:
        fresh = time.monotonic() - self._state_at < STATE_STALE_S
        self.online = self.connected and fresh
        if not self.connected:
            self.connection_text = DISCONNECTED_TEXT
        elif not fresh:
            self.connection_text = STALE_TEXT
        else:
            self.connection_text = CONNECTED_TEXT

    # Threads ---------------------------------------------------------------

    def _submit(self, job: Callable[..., None], *args: Any) -> bool:
        if self._stopped:
            return False
        try:
            self._executor.submit(job, *args)
        except RuntimeError:
            # submit() raises RuntimeError once stop() has shut the executor down.
            return False
        return True

    def _deliver(self, method: Callable[..., None], *args: Any) -> None:
        Clock.schedule_once(lambda _dt: method(*args))


def _service_entry(service: Service) -> dict[str, str]:
    return {
        "code": service.code,
        "name_id": service.name_id,
        "name_en": service.name_en,
        "description_id": service.description_id,
        "description_en": service.description_en,
    }
