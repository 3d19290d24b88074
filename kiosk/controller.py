"""Kiosk logic without widgets: service choice, check-in, ticket requests,
printing, language and status.

The screens bind to the Kivy properties of KioskController. Network waits and
printing run on one worker thread, and their results return through the Clock.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
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

from broker import contract
from broker.client import Link, OfficeClient, new_command_id
from broker.contract import (
    APPOINTMENT_CODE,
    MAX_REASON_LENGTH,
    Command,
    CommandKind,
    ContractError,
    ErrorCode,
    OfficeState,
    PrintRequest,
    Reply,
    Role,
    TicketView,
)
from broker.errors import AntreanError
from broker.site import Kiosk, Lane, Service, Site
from kiosk import messages
from kiosk.errors import KioskError
from kiosk.i18n import DEFAULT_LANGUAGE, LANGUAGES
from kiosk.printers import PrinterStatus
from kiosk.printing import (
    UNUSABLE,
    PrintResult,
    TicketPrinter,
    printed_ticket,
    printer_spec_for,
)

_LOGGER = logging.getLogger(__name__)

__all__ = ["KioskController", "ScreenName", "printed_ticket", "printer_spec_for"]

TICKET_SCREEN_S = 10.0
NOTICE_SCREEN_S = 15.0
# Without a touch or a key for this long the kiosk goes home and back to
# Indonesian, so the next applicant starts there.
IDLE_S = 30.0
# Touches this soon after a result appears do not dismiss it: they are the
# second half of a double tap on the service button.
DISMISS_GUARD_S = 1.0
# The engine republishes its state every 5 s (broker.service.HEARTBEAT_S).
STATE_STALE_S = 20.0
STALE_CHECK_S = 5.0
PRINTER_CHECK_S = 60.0
# Ids of print requests already printed, kept against QoS 1 redelivery.
SEEN_PRINT_REQUESTS = 50
MAX_CODE_LENGTH = 16
_CODE_CHARACTER = re.compile(r"[A-Z0-9]")


class ScreenName(StrEnum):
    """Names of the kiosk's screens in the screen manager."""

    HOME = "home"
    CATEGORIES = "categories"
    PRIORITY_SERVICES = "priority_services"
    WAIT = "wait"
    TICKET = "ticket"
    NOTICE = "notice"
    CHECK_IN = "check_in"


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

    # "id" or "en"; the screens translate their text with kiosk.i18n.
    language = StringProperty(DEFAULT_LANGUAGE)
    # The appointment code typed on the keypad or read by a barcode scanner.
    code = StringProperty("")
    early_minutes = NumericProperty(30)

    connected = BooleanProperty(False)
    online = BooleanProperty(False)
    # Message ids of kiosk.messages, translated by the screens.
    connection_text = StringProperty(messages.DISCONNECTED)
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
    # The estimated wait in minutes; wait_high is -1 when there is no estimate.
    wait_low = NumericProperty(0)
    wait_high = NumericProperty(-1)
    # The booked time of an appointment ticket as HH:MM, "" for walk-ins.
    ticket_appointment = StringProperty("")
    # A message id of kiosk.messages, its {fields}, and the engine's own text.
    notice = StringProperty("")
    notice_args = DictProperty({})
    notice_detail = StringProperty("")
    notice_label = StringProperty("")

    def __init__(self, site: Site, kiosk: Kiosk, data_dir: Path, **kwargs: Any):
        super().__init__(**kwargs)
        self.site = site
        self.kiosk = kiosk
        self.printer = TicketPrinter(site, kiosk, data_dir)
        self.printer_spec = self.printer.spec
        self.office_name = site.name
        self.early_minutes = site.appointments.early_minutes
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
        self._client.subscribe(
            self._client.topics.print_request(kiosk.id), self._receive_print_request
        )
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"kiosk-{kiosk.id}"
        )
        self._stopped = False
        self._state_at = time.monotonic()
        self._shown_at = 0.0
        self._return_event: ClockEvent | None = None
        self._idle_event: ClockEvent | None = None
        self._intervals: list[ClockEvent] = []
        # PRINT_FAILED commands the engine has not confirmed yet (worker thread).
        self._unreported: list[Command] = []
        self._printed_requests: deque[str] = deque(maxlen=SEEN_PRINT_REQUESTS)
        self._last_printer_status = ""

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
        self.note_activity()

    def stop(self) -> None:
        """Stop the checks, the worker and the broker link, then close the printer."""
        if self._stopped:
            return
        self._stopped = True
        for event in self._intervals:
            event.cancel()
        self._cancel_return()
        if self._idle_event is not None:
            self._idle_event.cancel()
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._client.stop()
        self.printer.close()
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
        """Show the home screen, clearing category and code; False while busy."""
        if self.busy:
            return False
        self._cancel_return()
        self.category = ""
        self.category_name_id = ""
        self.category_name_en = ""
        self.code = ""
        self.screen = ScreenName.HOME.value
        return True

    def set_language(self, language: str) -> bool:
        """Show every screen in a language of kiosk.i18n.LANGUAGES; False for others."""
        if language not in LANGUAGES:
            _LOGGER.warning("Ignored unknown language %r", language)
            return False
        self.language = language
        return True

    def toggle_language(self) -> None:
        """Switch between Indonesian and English."""
        index = LANGUAGES.index(self.language) if self.language in LANGUAGES else 0
        self.set_language(LANGUAGES[(index + 1) % len(LANGUAGES)])

    def note_activity(self) -> None:
        """Restart the idle timer; the root widget calls this on every touch and key."""
        if self._idle_event is not None:
            self._idle_event.cancel()
        self._idle_event = Clock.schedule_once(self._become_idle, IDLE_S)

    def _become_idle(self, _dt: float) -> None:
        if self.busy:
            # A ticket request is still running; its result screen comes first.
            self.note_activity()
            return
        if self.screen != ScreenName.HOME or self.language != DEFAULT_LANGUAGE:
            _LOGGER.info("Kiosk %s idle for %.0f s; back home", self.kiosk.id, IDLE_S)
        self.go_home()
        self.language = DEFAULT_LANGUAGE

    def dismiss(self) -> bool:
        """Leave the ticket or notice screen on a touch, unless it has just appeared."""
        if self.screen not in (ScreenName.TICKET, ScreenName.NOTICE):
            return False
        if time.monotonic() - self._shown_at < DISMISS_GUARD_S:
            return False
        return self.go_home()

    # Appointment check-in (main thread) ------------------------------------

    def open_check_in(self) -> bool:
        """Show the appointment code keypad, or return False while busy."""
        if self.busy:
            return False
        self.code = ""
        self._show_inner(ScreenName.CHECK_IN)
        return True

    def type_code(self, text: str) -> bool:
        """Add typed or scanned characters to the code; letters become capitals.

        Characters other than letters and digits are dropped, as is anything
        past 16 characters. Text arriving on the home screen opens the
        check-in screen, so a scan works without a touch first.
        """
        if self.busy or self.screen not in (ScreenName.HOME, ScreenName.CHECK_IN):
            return False
        characters = "".join(_CODE_CHARACTER.findall(text.upper()))
        if not characters:
            return False
        if self.screen == ScreenName.HOME:
            self.open_check_in()
        self.code = (self.code + characters)[:MAX_CODE_LENGTH]
        return True

    def erase_code(self) -> None:
        """Remove the last character of the code."""
        self.code = self.code[:-1]

    def submit_code(self) -> bool:
        """Check the typed code in; returns False and sends nothing while busy."""
        if self.busy or self.screen != ScreenName.CHECK_IN:
            return False
        if not APPOINTMENT_CODE.match(self.code):
            self._show_notice(messages.CODE_INVALID)
            return False
        command = Command(CommandKind.CHECK_IN, new_command_id("kiosk"), code=self.code)
        _LOGGER.info("Checking in appointment %s as %s", self.code, command.command_id)
        return self._start_request(command)

    # Issuing -----------------------------------------------------------------

    def issue(self, service: str) -> bool:
        """Request a ticket for a service code in the chosen lane.

        Returns False and sends nothing while an earlier request is in progress,
        so a double tap gives one ticket, and for a service whose daily quota
        the engine's state shows as used up. The engine validates the code.
        """
        if self.busy:
            _LOGGER.debug("Ignored a touch on service %s while busy", service)
            return False
        if self.remaining.get(service) == 0:
            _LOGGER.info("Service %s has no tickets left today; nothing sent", service)
            self._show_notice(messages.QUOTA_REACHED)
            return False
        command = Command(
            CommandKind.ISSUE_TICKET,
            new_command_id("kiosk"),
            service=service,
            category=self.category or None,
        )
        _LOGGER.info(
            "Requesting a ticket for %s (category %s) as %s",
            service,
            command.category,
            command.command_id,
        )
        return self._start_request(command)

    def _start_request(self, command: Command) -> bool:
        if not self.online:
            # Without the engine's state nothing can be issued, so say so at once.
            _LOGGER.warning(
                "Kiosk %s is offline; %s not sent", self.kiosk.id, command.kind
            )
            self._show_notice(messages.UNREACHABLE)
            return False
        self._cancel_return()
        self.busy = True
        self.screen = ScreenName.WAIT.value
        if not self._submit(self._request_and_print, command):
            self.busy = False
            self.screen = ScreenName.HOME.value
            return False
        return True

    def _request_and_print(self, command: Command) -> None:
        # Runs on the worker thread. Every path ends in one result screen, which
        # also clears the busy flag, so the kiosk never stays locked.
        try:
            self._request_and_print_ticket(command)
        except Exception:
            _LOGGER.exception("Ticket request %s failed", command.command_id)
            self._deliver(self._show_notice, messages.UNEXPECTED)

    def _request_and_print_ticket(self, command: Command) -> None:
        # The printer is asked first, so an empty printer costs no number.
        status, error = self.printer.status()
        self._publish_printer(status, error)
        if status in UNUSABLE:
            notice = (
                messages.PAPER_OUT
                if status is PrinterStatus.PAPER_OUT
                else messages.PRINTER_DOWN
            )
            self._deliver(self._show_notice, notice)
            return
        try:
            reply = self._client.request(command)
        except AntreanError as exc:
            _LOGGER.warning("Ticket request %s failed: %s", command.command_id, exc)
            self._deliver(self._show_notice, messages.UNREACHABLE)
            return
        if not reply.ok or reply.ticket is None:
            self._deliver(self._show_rejected, reply)
            return
        view = reply.ticket
        result = self.printer.print_ticket(view, check_first=False)
        self._publish_printer(result.status, result.error)
        if not result.printed:
            self._deliver(self._show_print_failure, view)
            self._report_print_failure(view, result)
            return
        self._deliver(self._show_ticket, view)

    # Printing (worker thread) ----------------------------------------------

    def _report_print_failure(self, view: TicketView, result: PrintResult) -> None:
        """Tell the engine a ticket was not printed, so it leaves the waiting count."""
        reason = (result.error or result.status.value)[:MAX_REASON_LENGTH]
        command = Command(
            CommandKind.PRINT_FAILED,
            new_command_id("kiosk"),
            ticket=view.label,
            reason=reason,
        )
        self._unreported.append(command)
        self._send_unreported()

    def _send_unreported(self) -> None:
        # The same command id is sent again until the engine replies, and the
        # engine applies an id once, so a retry never undoes a later reprint.
        for command in list(self._unreported):
            try:
                reply = self._client.request(command)
            except AntreanError as exc:
                _LOGGER.warning(
                    "Reporting that %s was not printed failed (%s); will retry",
                    command.ticket,
                    exc,
                )
                return
            self._unreported.remove(command)
            if reply.ok:
                _LOGGER.info("Engine: %s", reply.message)
            else:
                _LOGGER.error(
                    "Engine rejected the print failure of %s: %s",
                    command.ticket,
                    reply.message,
                )

    def _reprint(self, request: PrintRequest) -> None:
        view = request.ticket
        if request.command_id in self._printed_requests:
            _LOGGER.info("Print request %s was already printed", request.command_id)
            return
        _LOGGER.info("Printing %s again, as %s asked", view.label, request.counter_name)
        result = self.printer.print_ticket(view, reprint=True)
        self._publish_printer(result.status, result.error)
        if result.printed:
            self._printed_requests.append(request.command_id)
        else:
            self._report_print_failure(view, result)

    def _check_printer(self) -> None:
        status, error = self.printer.status()
        self._publish_printer(status, error)
        if self._unreported and self._client.connected:
            self._send_unreported()

    def _publish_printer(self, status: PrinterStatus, error: str) -> None:
        name = "error" if error else status.value
        if name != self._last_printer_status:
            level = logging.INFO if status is PrinterStatus.ONLINE else logging.WARNING
            _LOGGER.log(level, "Printer %s is %s %s", self.printer_spec, name, error)
            self._last_printer_status = name
        self._deliver(self._apply_printer_status, name)
        if not self._client.connected:
            return
        detail = {"printer": name, "printer_spec": self.printer_spec}
        if error:
            detail["printer_error"] = error
        self._client.publish_status(detail)

    # Results (main thread) -------------------------------------------------

    def _show_ticket(self, view: TicketView) -> None:
        self._set_ticket(view)
        self.notice = ""
        self.notice_args = {}
        self.notice_detail = ""
        self.notice_label = ""
        self._show_result(ScreenName.TICKET, TICKET_SCREEN_S)

    def _show_print_failure(self, view: TicketView) -> None:
        self._set_ticket(view)
        self._show_notice(messages.PRINT_FAILED, label=view.label)

    def _show_rejected(self, reply: Reply) -> None:
        _LOGGER.info("Request %s rejected: %s", reply.command_id, reply.message)
        notice = messages.REJECTED
        if reply.error is not None:
            notice = messages.REJECTED_BY_CODE.get(reply.error, messages.REJECTED)
        window = self.site.appointments
        minutes = (
            window.late_minutes
            if reply.error is ErrorCode.APPOINTMENT_TOO_LATE
            else window.early_minutes
        )
        self._show_notice(notice, detail=reply.message, minutes=minutes)

    def _show_notice(
        self, notice: str, label: str = "", detail: str = "", **args: Any
    ) -> None:
        self.notice = notice
        self.notice_args = args
        self.notice_detail = detail
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
        self.ticket_service_en = service.name_en if service else view.service
        self.ticket_priority = view.lane is Lane.PRIORITY
        self.ticket_category_id = category.name_id if category else ""
        self.ticket_category_en = category.name_en if category else ""
        self.people_ahead = view.people_ahead
        self.wait_low = view.estimate.low if view.estimate else 0
        self.wait_high = view.estimate.high if view.estimate else -1
        booked = view.appointment_at
        self.ticket_appointment = (
            f"{booked.astimezone(self.site.timezone):%H:%M}" if booked else ""
        )

    def _show_inner(self, screen: ScreenName) -> None:
        self.screen = screen.value
        self._schedule_return(IDLE_S)

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
            # The check also resends print failures the engine has not confirmed.
            self._submit(self._check_printer)

    def _receive_print_request(self, message: mqtt.MQTTMessage) -> None:
        # Runs on paho's network thread; printing waits for the worker thread.
        try:
            request = contract.decode_print_request(message.payload)
        except ContractError as exc:
            _LOGGER.warning("Ignored a malformed print request: %s", exc)
            return
        self._submit(self._reprint, request)

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
        self.printer_text = messages.PRINTER_WARNINGS.get(status, "")

    def _schedule_printer_check(self, _dt: float) -> None:
        # Returns None on purpose: a False return would stop the Clock interval.
        self._submit(self._check_printer)

    def _check_state_age(self, _dt: float) -> None:
        self._update_connection()

    def _update_connection(self) -> None:
        fresh = time.monotonic() - self._state_at < STATE_STALE_S
        self.online = self.connected and fresh
        if not self.connected:
            self.connection_text = messages.DISCONNECTED
        elif not fresh:
            self.connection_text = messages.STALE
        else:
            self.connection_text = messages.CONNECTED

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
