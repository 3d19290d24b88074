"""State and actions of one counter terminal, kept apart from its widgets.

CounterController turns pushed OfficeState and replies into Kivy properties.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    DictProperty,
    NumericProperty,
    OptionProperty,
    StringProperty,
)

from broker.client import Link, OfficeClient, OfficeUnavailable, new_command_id
from broker.contract import (
    Command,
    CommandKind,
    ContractError,
    DeviceStatus,
    ErrorCode,
    OfficeState,
    Reply,
    Role,
    TicketView,
)
from broker.site import Counter, Lane, Site

_LOGGER = logging.getLogger(__name__)

ACTIONS: tuple[CommandKind, ...] = (
    CommandKind.NEXT,
    CommandKind.RECALL,
    CommandKind.NO_SHOW,
    CommandKind.FINISH,
)
# Button titles: Indonesian first, English beneath.
ACTION_TITLES: dict[CommandKind, tuple[str, str]] = {
    CommandKind.NEXT: ("Panggil Berikutnya", "Next"),
    CommandKind.RECALL: ("Panggil Ulang", "Recall"),
    CommandKind.NO_SHOW: ("Tidak Hadir", "No-show"),
    CommandKind.FINISH: ("Selesai", "Finish"),
}
# Key names under each button, with the Indonesian name of the symbol.
ACTION_KEYS: dict[CommandKind, str] = {
    CommandKind.NEXT: "Enter  /  +",
    CommandKind.RECALL: ".  (titik)",
    CommandKind.NO_SHOW: "-  (minus)",
    CommandKind.FINISH: "*  (bintang)",
}
KEYMAP: dict[int, CommandKind] = {
    13: CommandKind.NEXT,
    271: CommandKind.NEXT,
    43: CommandKind.NEXT,
    270: CommandKind.NEXT,
    46: CommandKind.RECALL,
    266: CommandKind.RECALL,
    45: CommandKind.NO_SHOW,
    269: CommandKind.NO_SHOW,
    42: CommandKind.FINISH,
    268: CommandKind.FINISH,
}
FEEDBACK_KINDS = ("none", "pending", "ok", "warning", "error")

# Replies that describe the queue rather than a fault get the warning colour.
_WARNING_ERRORS = (ErrorCode.NOBODY_WAITING, ErrorCode.NO_CURRENT_TICKET)
# SDL repeats a held key every few tens of ms. A key-down that comes this long
# after the previous one is taken as a new press, in case its key-up was lost.
HELD_KEY_TIMEOUT_S = 1.0
# A second press of the same action this soon after its reply is ignored, so a
# double tap on Next does not finish a ticket before its applicant is served.
REPEAT_GUARD_S = 0.7
# A state this much older than the newest one applied is taken as a clock step
# back on the engine, not a late duplicate, and is applied.
STALE_STATE_WINDOW = timedelta(seconds=10)

STATUS_CONNECTED = "Terhubung / Connected"
STATUS_NO_BROKER = (
    "Tidak terhubung ke server antrean / Not connected to the queue server"
)
STATUS_NO_ENGINE = "Mesin antrean tidak aktif / The queue engine is not running"
FEEDBACK_OFFLINE = "Offline: perintah tidak dikirim. / Not connected, nothing was sent."
FEEDBACK_NO_REPLY = "Tidak ada jawaban dari server antrean. / {reason}"


def parse_action(action: str | CommandKind) -> CommandKind:
    """Return the counter action named by a CommandKind or its value.

    Raises ValueError naming the accepted actions for anything else.
    """
    for kind in ACTIONS:
        if action == kind:
            return kind
    names = ", ".join(kind.value for kind in ACTIONS)
    raise ValueError(f"{action!r} is not a counter action. Use one of {names}")


def action_for_key(key: int) -> CommandKind | None:
    """Return the action a Kivy keycode triggers, or None for other keys."""
    return KEYMAP.get(key)


def count_waiting(state: OfficeState, counter: Counter) -> int:
    """Count the tickets waiting in the services and lanes this counter serves.

    NOTE: a ticket transferred to another counter of the same service is
    counted too, because OfficeState gives totals per service and lane only.
    """
    total = 0
    for code in counter.services:
        load = state.service(code)
        if load is None:
            continue
        if Lane.NORMAL in counter.lanes:
            total += load.waiting_normal
        if Lane.PRIORITY in counter.lanes:
            total += load.waiting_priority
    return total


def format_called(called_at: datetime | None, site: Site) -> str:
    """Return "dipanggil HH:MM" in the site's time zone, or "" without a time."""
    if called_at is None:
        return ""
    return f"dipanggil {called_at.astimezone(site.timezone):%H:%M}"


class CounterController(EventDispatcher):
    """The state one counter's work screen shows, and the commands it sends.

    Callbacks from the OfficeClient arrive on paho's network thread and are
    handed to the Kivy main thread with Clock.schedule_once before any
    property changes, so widgets bound to these properties update safely.
    """

    counter_name = StringProperty("")
    # The ticket this counter has called. Every ticket_* text is "" without one.
    ticket_label = StringProperty("")
    ticket_service = StringProperty("")
    ticket_priority = BooleanProperty(False)
    ticket_category = StringProperty("")
    ticket_called = StringProperty("")
    waiting_count = NumericProperty(0)
    # The engine's reply message or a local message, and its colour class.
    feedback = StringProperty("")
    feedback_kind = OptionProperty("none", options=FEEDBACK_KINDS)
    # True when the broker link is up and the engine reports itself online.
    connected = BooleanProperty(False)
    status_text = StringProperty(STATUS_NO_BROKER)
    # True from a press until its reply or error arrives.
    busy = BooleanProperty(False)
    pending_action = StringProperty("")
    # The note under each button title: its keys, "\u2026" while pending, or Offline.
    action_hints = DictProperty({kind.value: "" for kind in ACTIONS})

    def __init__(
        self,
        site: Site,
        counter: Counter,
        data_dir: Path | None = None,
        **kwargs: object,
    ) -> None:
        """Drive one counter; its credentials are read from data_dir."""
        super().__init__(**kwargs)
        self.site = site
        self.data_dir = data_dir
        self.counter = counter
        self.counter_name = counter.name
        self.repeat_guard_s = REPEAT_GUARD_S
        self.client: OfficeClient | None = None
        self._broker_connected = False
        self._engine_online = False
        self._state_at: datetime | None = None
        self._held_keys: dict[int, float] = {}
        self._replied_at: dict[CommandKind, float] = {}
        self.bind(connected=self._update_hints, pending_action=self._update_hints)
        self._update_hints()

    # Lifecycle ---------------------------------------------------------------

    def start(self) -> OfficeClient:
        """Create and start this counter's OfficeClient, and return it."""
        if self.client is not None:
            return self.client
        self.client = OfficeClient(
            self.site,
            Role.COUNTER,
            str(self.counter.number),
            on_state=self.receive_state,
            on_status=self.receive_status,
            on_link=self.receive_link,
            data_dir=self.data_dir,
        )
        _LOGGER.info(
            "Counter %d connecting to %s:%d",
            self.counter.number,
            self.site.broker.host,
            self.site.broker.port,
        )
        self.client.start()
        return self.client

    def stop(self) -> None:
        """Disconnect from the broker. The controller sends nothing afterwards."""
        client, self.client = self.client, None
        if client is not None:
            client.stop()
            _LOGGER.info("Counter %d disconnected", self.counter.number)

    # Officer input -------------------------------------------------------------

    def press(self, action: str | CommandKind) -> bool:
        """Send one action for this counter and return whether it was sent.

        Nothing is sent while a reply is pending, within REPEAT_GUARD_S of the
        same action's reply, or while offline. An offline press shows
        FEEDBACK_OFFLINE in the feedback line.
        """
        kind = parse_action(action)
        if self.busy:
            _LOGGER.debug("Ignored %s: a reply is pending", kind)
            return False
        since_reply = time.monotonic() - self._replied_at.get(kind, float("-inf"))
        if since_reply < self.repeat_guard_s:
            _LOGGER.debug("Ignored %s, %.2f s after its last reply", kind, since_reply)
            return False
        if not self.connected or self.client is None:
            self._show_feedback(FEEDBACK_OFFLINE, "error")
            _LOGGER.info(
                "Counter %d is offline; %s not sent", self.counter.number, kind
            )
            return False
        command = Command(
            kind=kind,
            command_id=new_command_id(f"counter{self.counter.number}"),
            counter=self.counter.number,
        )
        self.busy = True
        self.pending_action = kind.value
        self._show_feedback(f"{ACTION_TITLES[kind][0]} \u2026", "pending")
        future = self.client.send(command)
        future.add_done_callback(
            lambda done: Clock.schedule_once(partial(self._complete, kind, done))
        )
        return True

    def handle_key_down(self, key: int) -> bool:
        """Press the action mapped to a keycode and return whether the key is mapped.

        Keymap for a keyboard or a USB numeric keypad (Kivy keycodes, as
        Window.on_key_down passes them):

        =========================  ====================  ==================
        Action                     Keys                  Keycodes
        =========================  ====================  ==================
        Next (Panggil Berikutnya)  Enter, keypad Enter,  13, 271, 43, 270
                                   "+", keypad "+"
        Recall (Panggil Ulang)     ".", keypad "."       46, 266
        No-show (Tidak Hadir)      "-", keypad "-"       45, 269
        Finish (Selesai)           "*", keypad "*"       42, 268
        =========================  ====================  ==================

        A held key acts once. Its auto-repeated key-down events are consumed
        and do nothing until handle_key_up reports the key released.
        """
        kind = action_for_key(key)
        if kind is None:
            return False
        now = time.monotonic()
        last = self._held_keys.get(key)
        self._held_keys[key] = now
        if last is not None and now - last < HELD_KEY_TIMEOUT_S:
            return True
        self.press(kind)
        return True

    def handle_key_up(self, key: int) -> bool:
        """Mark a key as released and return whether it is mapped to an action."""
        self._held_keys.pop(key, None)
        return key in KEYMAP

    # Network thread entry points -------------------------------------------------

    def receive_state(self, state: OfficeState) -> None:
        """Queue an OfficeState for the main thread. Safe to call from any thread."""
        Clock.schedule_once(partial(self._apply_state, state))

    def receive_status(self, status: DeviceStatus) -> None:
        """Queue the engine's presence for the main thread and ignore other roles."""
        if status.role is Role.ENGINE:
            Clock.schedule_once(partial(self._apply_engine_status, status.online))

    def receive_link(self, link: Link) -> None:
        """Queue a change of the broker link for the main thread."""
        Clock.schedule_once(partial(self._apply_link, link))

    # Main thread ---------------------------------------------------------------

    def _apply_state(self, state: OfficeState, _dt: float = 0.0) -> None:
        if state.site != self.site.id:
            _LOGGER.warning("Ignored a state of site %r", state.site)
            return
        newest = self._state_at
        if newest is not None and newest - STALE_STATE_WINDOW < state.at < newest:
            _LOGGER.debug("Ignored a state from %s older than %s", state.at, newest)
            return
        self._state_at = state.at
        counter_state = state.counter(self.counter.number)
        self._show_ticket(counter_state.current if counter_state else None)
        self.waiting_count = count_waiting(state, self.counter)

    def _apply_engine_status(self, online: bool, _dt: float = 0.0) -> None:
        if online != self._engine_online:
            _LOGGER.info("Engine is %s", "online" if online else "offline")
        self._engine_online = online
        self._update_connection()

    def _apply_link(self, link: Link, _dt: float = 0.0) -> None:
        self._broker_connected = link is Link.CONNECTED
        if not self._broker_connected:
            # The retained engine status is delivered again after reconnecting.
            self._engine_online = False
        self._update_connection()

    def _update_connection(self) -> None:
        self.connected = self._broker_connected and self._engine_online
        if self.connected:
            self.status_text = STATUS_CONNECTED
        elif self._broker_connected:
            self.status_text = STATUS_NO_ENGINE
        else:
            self.status_text = STATUS_NO_BROKER

    def _update_hints(self, *_args: object) -> None:
        for kind in ACTIONS:
            if self.pending_action == kind.value:
                hint = "\u2026"
            elif not self.connected:
                hint = "Offline"
            else:
                hint = ACTION_KEYS[kind]
            self.action_hints[kind.value] = hint

    def _complete(self, kind: CommandKind, future: Future[Reply], _dt: float) -> None:
        self.busy = False
        self.pending_action = ""
        self._replied_at[kind] = time.monotonic()
        try:
            reply = future.result()
        except (OfficeUnavailable, ContractError) as exc:
            _LOGGER.warning("Counter %d: %s failed: %s", self.counter.number, kind, exc)
            self._show_feedback(FEEDBACK_NO_REPLY.format(reason=exc), "error")
            return
        self._apply_reply(kind, reply)

    def _apply_reply(self, kind: CommandKind, reply: Reply) -> None:
        if reply.ok:
            self._show_feedback(reply.message, "ok")
            if kind in (CommandKind.NEXT, CommandKind.RECALL):
                self._show_ticket(reply.ticket)
            else:
                self._show_ticket(None)
            return
        level = "warning" if reply.error in _WARNING_ERRORS else "error"
        self._show_feedback(reply.message or str(reply.error), level)
        if reply.error is ErrorCode.NOBODY_WAITING:
            # The engine finishes the current ticket before it looks for the next.
            self._show_ticket(None)

    def _show_ticket(self, ticket: TicketView | None) -> None:
        if ticket is None:
            self.ticket_label = ""
            self.ticket_service = ""
            self.ticket_priority = False
            self.ticket_category = ""
            self.ticket_called = ""
            return
        service = self.site.service(ticket.service)
        category = self.site.category(ticket.category) if ticket.category else None
        self.ticket_label = ticket.label
        self.ticket_service = service.name_id if service else ticket.service
        self.ticket_priority = ticket.lane is Lane.PRIORITY
        self.ticket_category = category.name_id if category else ""
        self.ticket_called = format_called(ticket.called_at, self.site)

    def _show_feedback(self, text: str, kind: str) -> None:
        self.feedback = text
        self.feedback_kind = kind
