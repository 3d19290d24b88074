"""State and actions of one counter terminal, kept apart from its widgets.

CounterController turns pushed OfficeState, device statuses and replies into
Kivy properties, and turns presses and keys into engine commands. A command
keeps its id until its reply arrives (counter.outbox), so a lost connection
neither drops a press nor applies it twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    DictProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    OptionProperty,
    StringProperty,
)

from broker.client import (
    REQUEST_TIMEOUT_S,
    Link,
    OfficeClient,
    OfficeUnavailable,
    new_command_id,
)
from broker.contract import (
    Command,
    CommandKind,
    ContractError,
    CounterAvailability,
    CounterState,
    DeviceStatus,
    ErrorCode,
    OfficeState,
    Reply,
    Role,
    TicketView,
)
from broker.site import Counter, Lane, Site
from counter import views
from counter.alerts import AlertBoard
from counter.chooser import Chooser
from counter.keypad import (
    ACTION_TITLES,
    DIRECT_COMMANDS,
    Action,
    action_for_symbol,
    key_names,
    key_symbol,
    parse_action,
)
from counter.login import LoginActions, LoginForm
from counter.messages import (
    FEEDBACK_GAVE_UP,
    FEEDBACK_NO_TICKET,
    FEEDBACK_NOTHING_TO_CHOOSE,
    FEEDBACK_QUEUED,
    FEEDBACK_RESENDING,
    FEEDBACK_STILL_PENDING,
    STATUS_CONNECTED,
    STATUS_NO_BROKER,
    STATUS_NO_ENGINE,
)
from counter.outbox import Delivery, Outbox, OutboxBusy, PendingCommand

_LOGGER = logging.getLogger(__name__)

FEEDBACK_KINDS = ("none", "pending", "ok", "warning", "error")

# Replies that describe the queue rather than a fault get the warning colour.
_WARNING_ERRORS = (
    ErrorCode.NOBODY_WAITING,
    ErrorCode.NO_CURRENT_TICKET,
    ErrorCode.ALREADY_STARTED,
    ErrorCode.TICKET_AT_COUNTER,
)
# Commands after whose success the counter has no ticket in front of it.
_CLEARING = (CommandKind.FINISH, CommandKind.NO_SHOW, CommandKind.TRANSFER)
# Commands whose reply carries the counter's new current ticket.
_CALLING = (
    CommandKind.NEXT,
    CommandKind.RECALL,
    CommandKind.CALL,
    CommandKind.START,
)
# SDL repeats a held key every few tens of ms. A key-down that comes this long
# after the previous one is taken as a new press, in case its key-up was lost.
HELD_KEY_TIMEOUT_S = 1.0
# A second press of the same action this soon after its reply is ignored, so a
# double tap on Next does not finish a ticket before its applicant is served.
REPEAT_GUARD_S = 0.7
# A state this much older than the newest one applied is taken as a clock step
# back on the engine, not a late duplicate, and is applied.
STALE_STATE_WINDOW = timedelta(seconds=10)
TICK_S = 0.5
FLASH_S = 0.2


class CounterController(LoginActions, EventDispatcher):
    """The state one counter's screens show, and the commands they send.

    Callbacks from the OfficeClient arrive on paho's network thread and are
    handed to the Kivy main thread with Clock.schedule_once before any
    property changes, so widgets bound to these properties update safely.
    """

    counter_name = StringProperty("")
    # The officer logged in here, as the engine's state publishes it.
    logged_in = BooleanProperty(False)
    officer_id = StringProperty("")
    officer_name = StringProperty("")
    served_count = NumericProperty(0)
    no_show_count = NumericProperty(0)
    availability = StringProperty(CounterAvailability.CLOSED.value)
    availability_text = StringProperty("")
    # The ticket this counter has called. Every ticket_* text is "" without one.
    ticket_label = StringProperty("")
    ticket_service = StringProperty("")
    ticket_priority = BooleanProperty(False)
    ticket_category = StringProperty("")
    ticket_called = StringProperty("")
    ticket_serving = BooleanProperty(False)
    # Time since the call, or since the start of service once started.
    ticket_elapsed = StringProperty("")
    waiting_count = NumericProperty(0)
    waiting_summary = StringProperty("")
    waiting_rows = ListProperty([])
    # Staff alerts: dicts with level ("warning" or "error"), text_id and text_en.
    alerts = ListProperty([])
    # The engine's reply message or a local message, and its colour class.
    feedback = StringProperty("")
    feedback_kind = OptionProperty("none", options=FEEDBACK_KINDS)
    # True when the broker link is up and the engine reports itself online.
    connected = BooleanProperty(False)
    status_text = StringProperty(STATUS_NO_BROKER)
    # True from an accepted press until its reply, or until it is given up.
    busy = BooleanProperty(False)
    # True while that press waits for the connection to be sent.
    queued = BooleanProperty(False)
    pending_action = StringProperty("")
    # The action just pressed, for a short flash of its button.
    flash_action = StringProperty("")
    # The note under each button title: its keys, or "\u2026" while pending.
    action_hints = DictProperty({action.value: "" for action in Action})
    login = ObjectProperty(None)
    chooser = ObjectProperty(None)

    def __init__(
        self,
        site: Site,
        counter: Counter,
        data_dir: Path | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        **kwargs: Any,
    ) -> None:
        """Drive one counter; its credentials are read from data_dir."""
        super().__init__(**kwargs)
        self.site = site
        self.data_dir = data_dir
        self.counter = counter
        self.counter_name = counter.name
        self.repeat_guard_s = REPEAT_GUARD_S
        self.reply_timeout_s = REQUEST_TIMEOUT_S
        self.client: OfficeClient | None = None
        self.outbox = Outbox()
        self.login = LoginForm()
        self.chooser = Chooser()
        self._monotonic = monotonic
        self._alerts = AlertBoard(site)
        self._broker_connected = False
        self._engine_online = False
        self._state: OfficeState | None = None
        self._state_received = 0.0
        self._ticket: TicketView | None = None
        self._held_keys: dict[int, float] = {}
        self._replied_at: dict[Action, float] = {}
        self._tick_event: Any = None
        self.bind(pending_action=self._update_hints)
        self._update_hints()

    # Lifecycle ---------------------------------------------------------------

    def start(self) -> OfficeClient:
        """Create and start this counter's OfficeClient and its clock, and return it."""
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
            *self.client.address,
        )
        self.client.start()
        self._tick_event = Clock.schedule_interval(lambda _dt: self.tick(), TICK_S)
        return self.client

    def stop(self) -> None:
        """Disconnect from the broker. The controller sends nothing afterwards."""
        if self._tick_event is not None:
            self._tick_event.cancel()
            self._tick_event = None
        client, self.client = self.client, None
        if client is not None:
            client.stop()
            _LOGGER.info("Counter %d disconnected", self.counter.number)

    def tick(self) -> None:
        """Give up a press queued too long, resend one in doubt, update the timer."""
        now = self._monotonic()
        expired = self.outbox.expire(now)
        if expired is not None:
            self._finish_pending(expired)
            self._show_feedback(FEEDBACK_GAVE_UP.format(title=expired.title), "error")
        self._flush()
        self._update_elapsed()

    # Officer input -------------------------------------------------------------

    def press(self, action: str | Action) -> bool:
        """Start one action and return whether it was accepted.

        A direct action is sent at once, or queued while offline. The others
        open a list of choices. Nothing is accepted without a logged-in
        officer, while another press has no reply, or within REPEAT_GUARD_S
        of the same action's reply.
        """
        action = parse_action(action)
        self._flash(action)
        # A button touched while a list is open replaces that list.
        self.chooser.close()
        if not self._may_act(action):
            return False
        if action in DIRECT_COMMANDS:
            return self._submit(action, DIRECT_COMMANDS[action])
        return self._open_choices(action)

    def handle_key_down(self, key: int, text: str = "") -> bool:
        """Apply a key and return whether the terminal used it.

        On the login screen keys type into the form (counter.login). With a
        list of choices open they pick and confirm (counter.chooser), and on
        the work screen they trigger actions (counter.keypad.WORK_KEYS). A held
        key acts once: its auto-repeated key-downs are consumed until
        handle_key_up reports it released.
        """
        symbol = key_symbol(key) or ""
        typed_letter = not self.logged_in and text.isascii() and text.isalpha()
        if not symbol and not typed_letter:
            return False
        now = self._monotonic()
        last = self._held_keys.get(key)
        self._held_keys[key] = now
        if last is not None and now - last < HELD_KEY_TIMEOUT_S:
            return True
        if not self.logged_in:
            self.type_login(symbol, text)
        elif self.chooser.open:
            self.choose(symbol)
        else:
            action = action_for_symbol(symbol)
            if action is not None:
                self.press(action)
        return True

    def handle_key_up(self, key: int) -> bool:
        """Mark a key as released and return whether it is a keypad key."""
        self._held_keys.pop(key, None)
        return key_symbol(key) is not None

    def choose(self, symbol: str) -> None:
        """Apply a key to the open list of choices, and act on a confirmed choice."""
        action = self.chooser.action
        value = self.chooser.press(symbol)
        if value is not None:
            self.apply_choice(Action(action), value)

    def pick(self, index_on_page: int) -> None:
        """Pick an entry of the open list and confirm it, as a touch on its row does."""
        self.chooser.pick(index_on_page)
        self.choose("enter")

    def apply_choice(self, action: Action, value: Any) -> bool:
        """Send the command of an action whose choice has been made."""
        if action is Action.CALL:
            return self._submit(action, CommandKind.CALL, ticket=value)
        if action is Action.REPRINT:
            return self._submit(action, CommandKind.REPRINT, ticket=value)
        if action is Action.PAUSE:
            return self._submit(action, CommandKind.PAUSE_COUNTER, reason=value)
        if action is Action.LOGOUT:
            return self._submit(action, CommandKind.LOGOUT)
        if action is Action.TRANSFER:
            target, target_value = value
            if target == "counter":
                return self._submit(
                    action, CommandKind.TRANSFER, to_counter=target_value
                )
            return self._submit(action, CommandKind.TRANSFER, to_service=target_value)
        raise ValueError(f"{action.value} takes no choice")

    # Network thread entry points -------------------------------------------------

    def receive_state(self, state: OfficeState) -> None:
        """Queue an OfficeState for the main thread. Safe to call from any thread."""
        Clock.schedule_once(partial(self._apply_state, state))

    def receive_status(self, status: DeviceStatus) -> None:
        """Queue a device's presence for the main thread."""
        Clock.schedule_once(partial(self._apply_status, status))

    def receive_link(self, link: Link) -> None:
        """Queue a change of the broker link for the main thread."""
        Clock.schedule_once(partial(self._apply_link, link))

    # Main thread: incoming -------------------------------------------------------

    def _apply_state(self, state: OfficeState, _dt: float = 0.0) -> None:
        if state.site != self.site.id:
            _LOGGER.warning("Ignored a state of site %r", state.site)
            return
        newest = self._state.at if self._state else None
        if newest is not None and newest - STALE_STATE_WINDOW < state.at < newest:
            _LOGGER.debug("Ignored a state from %s older than %s", state.at, newest)
            return
        self._state = state
        self._state_received = self._monotonic()
        counter_state = state.counter(self.counter.number)
        self._show_officer(counter_state)
        self._show_ticket(counter_state.current if counter_state else None)
        self.waiting_count = views.count_waiting(state, self.counter)
        self.waiting_summary = views.waiting_summary(state, self.counter)
        self.waiting_rows = views.waiting_rows(self.site, state, self.counter)

    def _apply_status(self, status: DeviceStatus, _dt: float = 0.0) -> None:
        if status.role is Role.ENGINE:
            if status.online != self._engine_online:
                _LOGGER.info("Engine is %s", "online" if status.online else "offline")
            self._engine_online = status.online
            self._update_connection()
            return
        if self._alerts.apply(status):
            self.alerts = [
                {"level": a.level.value, "text_id": a.text_id, "text_en": a.text_en}
                for a in self._alerts.alerts()
            ]
            _LOGGER.info(
                "Counter %d shows %d staff alerts",
                self.counter.number,
                len(self.alerts),
            )

    def _apply_link(self, link: Link, _dt: float = 0.0) -> None:
        self._broker_connected = link is Link.CONNECTED
        if not self._broker_connected:
            # The retained engine status is delivered again after reconnecting.
            self._engine_online = False
        self._update_connection()

    def _update_connection(self) -> None:
        was_connected = self.connected
        self.connected = self._broker_connected and self._engine_online
        if self.connected:
            self.status_text = STATUS_CONNECTED
        elif self._broker_connected:
            self.status_text = STATUS_NO_ENGINE
        else:
            self.status_text = STATUS_NO_BROKER
        if self.connected and not was_connected:
            self._flush()

    def _show_officer(self, counter_state: CounterState | None) -> None:
        officer = counter_state.officer if counter_state else ""
        if bool(officer) != self.logged_in:
            _LOGGER.info(
                "Counter %d: %s",
                self.counter.number,
                f"officer {officer} logged in" if officer else "no officer logged in",
            )
            self.login.reset()
            self.chooser.close()
        self.logged_in = bool(officer)
        self.officer_id = officer
        self.officer_name = counter_state.officer_name if counter_state else ""
        self.served_count = counter_state.served if counter_state else 0
        self.no_show_count = counter_state.no_shows if counter_state else 0
        self.availability = (
            counter_state.availability.value
            if counter_state
            else CounterAvailability.CLOSED.value
        )
        self.availability_text = views.availability_text(counter_state)

    # Main thread: outgoing ------------------------------------------------------

    def _may_act(self, action: Action) -> bool:
        if not self.logged_in:
            self._show_feedback("Masuk dulu. / Log in first.", "warning")
            return False
        pending = self.outbox.pending
        if pending is not None or self.busy:
            title = pending.title if pending else ACTION_TITLES[action][0]
            self._show_feedback(FEEDBACK_STILL_PENDING.format(title=title), "warning")
            _LOGGER.debug("Ignored %s: a command is pending", action)
            return False
        since_reply = self._monotonic() - self._replied_at.get(action, float("-inf"))
        if since_reply < self.repeat_guard_s:
            _LOGGER.debug(
                "Ignored %s, %.2f s after its last reply", action, since_reply
            )
            return False
        return True

    def _open_choices(self, action: Action) -> bool:
        if action is Action.PAUSE and self.availability == CounterAvailability.PAUSED:
            # The pause key resumes a paused counter.
            return self._submit(action, CommandKind.OPEN_COUNTER)
        if action is Action.TRANSFER and self._ticket is None:
            self._show_feedback(FEEDBACK_NO_TICKET, "warning")
            return False
        title_id, title_en, choices = views.choice_list(
            action,
            self.site,
            self._state,
            self.counter,
            self._ticket,
            self.officer_name,
        )
        if not choices:
            self._show_feedback(FEEDBACK_NOTHING_TO_CHOOSE, "warning")
            return False
        self.chooser.show(action.value, title_id, title_en, choices)
        return True

    def _submit(self, action: Action, kind: CommandKind, **fields: Any) -> bool:
        command = Command(
            kind,
            new_command_id(f"counter{self.counter.number}"),
            counter=self.counter.number,
            **fields,
        )
        title = ACTION_TITLES[action][0]
        try:
            self.outbox.add(command, title, self._monotonic())
        except OutboxBusy:
            self._show_feedback(FEEDBACK_STILL_PENDING.format(title=title), "warning")
            return False
        self.busy = True
        self.pending_action = action.value
        _LOGGER.info(
            "Counter %d: %s (%s)", self.counter.number, kind, command.command_id
        )
        if self.connected and self.client is not None:
            self._show_feedback(f"{title} \u2026", "pending")
            self._transmit()
        else:
            self._mark_queued()
        return True

    def _flush(self) -> None:
        if self.connected and self.outbox.due(self._monotonic()):
            self._transmit()

    def _transmit(self) -> None:
        pending = self.outbox.pending
        if pending is None or self.client is None:
            return
        future = self.client.send(pending.command, self.reply_timeout_s)
        if future.done() and future.exception() is not None:
            # The client found the link down before anything went out.
            self.outbox.mark_unsent()
            self._mark_queued()
            return
        self.outbox.mark_sent()
        self.queued = False
        if pending.attempts:
            _LOGGER.info(
                "Counter %d: sent %s again with its id %s",
                self.counter.number,
                pending.command.kind,
                pending.command.command_id,
            )
        command_id = pending.command.command_id
        future.add_done_callback(
            lambda done: Clock.schedule_once(partial(self._complete, command_id, done))
        )

    def _mark_queued(self) -> None:
        pending = self.outbox.pending
        if pending is None:
            return
        self.queued = True
        if pending.delivery is Delivery.QUEUED:
            self._show_feedback(FEEDBACK_QUEUED.format(title=pending.title), "warning")
        else:
            self._show_feedback(
                FEEDBACK_RESENDING.format(title=pending.title), "warning"
            )

    def _complete(self, command_id: str, future: Future[Reply], _dt: float) -> None:
        try:
            reply = future.result()
        except OfficeUnavailable as exc:
            pending = self.outbox.pending
            if pending is None or pending.command.command_id != command_id:
                return
            _LOGGER.warning(
                "Counter %d: no reply to %s (%s): %s; it is sent again",
                self.counter.number,
                pending.command.kind,
                command_id,
                exc,
            )
            self.outbox.mark_no_reply(self._monotonic())
            self._mark_queued()
            return
        except ContractError as exc:
            reply = Reply(
                command_id, ok=False, error=ErrorCode.INVALID, message=str(exc)
            )
        pending = self.outbox.resolve(command_id)
        if pending is None:
            return
        self._finish_pending(pending)
        self._apply_reply(pending.command.kind, reply)

    def _finish_pending(self, pending: PendingCommand) -> None:
        self.busy = False
        self.queued = False
        action = self.pending_action
        self.pending_action = ""
        if action:
            self._replied_at[Action(action)] = self._monotonic()

    def _apply_reply(self, kind: CommandKind, reply: Reply) -> None:
        if reply.ok:
            self._show_feedback(reply.message, "ok")
            if kind in _CALLING:
                self._show_ticket(reply.ticket)
            elif kind in _CLEARING:
                self._show_ticket(None)
            return
        level = "warning" if reply.error in _WARNING_ERRORS else "error"
        self._show_feedback(reply.message or str(reply.error), level)
        if reply.error is ErrorCode.NOBODY_WAITING:
            # The engine finishes the current ticket before it looks for the next.
            self._show_ticket(None)

    # Main thread: what the screens show ---------------------------------------------

    def _show_ticket(self, ticket: TicketView | None) -> None:
        self._ticket = ticket
        if ticket is None:
            self.ticket_label = ""
            self.ticket_service = ""
            self.ticket_priority = False
            self.ticket_category = ""
            self.ticket_called = ""
            self.ticket_serving = False
            self.ticket_elapsed = ""
            return
        service = self.site.service(ticket.service)
        category = self.site.category(ticket.category) if ticket.category else None
        self.ticket_label = ticket.label
        self.ticket_service = service.name_id if service else ticket.service
        self.ticket_priority = ticket.lane is Lane.PRIORITY
        self.ticket_category = category.name_id if category else ""
        self.ticket_called = views.ticket_time_text(ticket, self.site)
        self.ticket_serving = ticket.served_at is not None
        self._update_elapsed()

    def _update_elapsed(self) -> None:
        ticket, state = self._ticket, self._state
        since = (ticket.served_at or ticket.called_at) if ticket else None
        if since is None or state is None:
            self.ticket_elapsed = ""
            return
        # Engine time now: the state's stamp plus the time since it arrived, so
        # a terminal clock that is off does not change the elapsed time.
        engine_now = state.at + timedelta(
            seconds=self._monotonic() - self._state_received
        )
        self.ticket_elapsed = views.format_elapsed(engine_now - since)

    def _update_hints(self, *_args: object) -> None:
        for action in Action:
            hint = (
                "\u2026" if self.pending_action == action.value else key_names(action)
            )
            self.action_hints[action.value] = hint

    def _flash(self, action: Action) -> None:
        self.flash_action = action.value
        Clock.schedule_once(lambda _dt: setattr(self, "flash_action", ""), FLASH_S)

    def _show_feedback(self, text: str, kind: str) -> None:
        self.feedback = text
        self.feedback_kind = kind
