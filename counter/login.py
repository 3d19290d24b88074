"""The login form of a counter terminal: officer id and PIN, typed on the keypad.

Digits type into the field in focus, and a full keyboard types letters into
the officer id too. "." or Backspace deletes the last character, "-" or
Escape clears the field, and Enter or "+" moves from the id to the PIN and
then logs in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from typing import Any

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.properties import OptionProperty, StringProperty

from broker.client import OfficeUnavailable, new_command_id
from broker.contract import (
    OFFICER_ID,
    PIN_PATTERN,
    Command,
    CommandKind,
    ContractError,
    Reply,
)
from counter.messages import FEEDBACK_LOGIN_OFFLINE

_LOGGER = logging.getLogger(__name__)

MAX_OFFICER_LENGTH = 32
MAX_PIN_LENGTH = 8
# Roboto, Kivy's default font, has the bullet but not the larger black circle.
PIN_DOT = "\u2022"


class LoginForm(EventDispatcher):
    """The text typed into the login form, and the field that has the focus."""

    field = OptionProperty("officer", options=("officer", "pin"))
    officer = StringProperty("")
    # One dot per PIN digit typed; the digits themselves are not a property.
    pin_mask = StringProperty("")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self._pin = ""

    @property
    def pin(self) -> str:
        """The PIN typed so far."""
        return self._pin

    def type(self, symbol: str, text: str = "") -> bool:
        """Apply a key and return True when Enter requests a login with both fields.

        `symbol` is the keypad symbol (counter.keypad) or "", and `text` the
        character a full keyboard typed, used for letters of the officer id.
        """
        if symbol in ("enter", "+"):
            return self._advance()
        if symbol in (".", "backspace"):
            self._delete()
        elif symbol in ("-", "escape"):
            self._clear()
        elif symbol.isdigit():
            self._append(symbol)
        elif text.isascii() and text.isalpha() and len(text) == 1:
            if self.field == "officer":
                self._append(text)
        return False

    def focus(self, field: str) -> None:
        """Move the focus to "officer" or "pin"."""
        self.field = field

    def ready(self) -> bool:
        """Tell whether both fields hold values of the accepted form."""
        return bool(OFFICER_ID.match(self.officer) and PIN_PATTERN.match(self._pin))

    def clear_pin(self) -> None:
        """Forget the PIN typed, and put the focus on it."""
        self._set_pin("")
        self.field = "pin" if self.officer else "officer"

    def reset(self) -> None:
        """Forget both fields and start again at the officer id."""
        self.officer = ""
        self._set_pin("")
        self.field = "officer"

    def _advance(self) -> bool:
        if self.field == "officer":
            if self.officer:
                self.field = "pin"
            return False
        return bool(self._pin)

    def _append(self, character: str) -> None:
        if self.field == "officer":
            if len(self.officer) < MAX_OFFICER_LENGTH:
                self.officer += character
        elif character.isdigit() and len(self._pin) < MAX_PIN_LENGTH:
            self._set_pin(self._pin + character)

    def _delete(self) -> None:
        if self.field == "officer":
            self.officer = self.officer[:-1]
        elif self._pin:
            self._set_pin(self._pin[:-1])
        else:
            self.field = "officer"

    def _clear(self) -> None:
        if self.field == "pin" and not self._pin:
            self.field = "officer"
        elif self.field == "pin":
            self._set_pin("")
        else:
            self.officer = ""

    def _set_pin(self, pin: str) -> None:
        self._pin = pin
        self.pin_mask = PIN_DOT * len(pin)


class LoginActions:
    """The login steps of CounterController, which provides every attribute used here.

    A login is never queued while offline: the PIN is sent at once or
    forgotten, and the officer learns at once whether it worked.
    """

    login: LoginForm
    client: Any
    counter: Any
    connected: bool
    busy: bool
    reply_timeout_s: float
    _show_feedback: Callable[[str, str], None]

    def type_login(self, symbol: str, text: str = "") -> None:
        """Type a key into the login form, and log in when it is complete."""
        if self.login.type(symbol, text):
            self.submit_login()

    def submit_login(self) -> bool:
        """Send the officer id and PIN typed; return whether they were sent."""
        form = self.login
        if not form.ready():
            form.clear_pin()
            self._show_feedback(
                "ID petugas: huruf/angka; PIN: 4\u20138 angka. / "
                "Officer id: letters or digits; PIN: 4 to 8 digits.",
                "warning",
            )
            return False
        if not self.connected or self.client is None:
            form.clear_pin()
            self._show_feedback(FEEDBACK_LOGIN_OFFLINE, "error")
            return False
        command = Command(
            CommandKind.LOGIN,
            new_command_id(f"counter{self.counter.number}"),
            counter=self.counter.number,
            officer=form.officer,
            pin=form.pin,
        )
        form.clear_pin()
        self.busy = True
        self._show_feedback("Masuk \u2026 / Logging in \u2026", "pending")
        future = self.client.send(command, self.reply_timeout_s)
        future.add_done_callback(
            lambda done: Clock.schedule_once(partial(self._complete_login, done))
        )
        return True

    def _complete_login(self, future: Future[Reply], _dt: float) -> None:
        self.busy = False
        try:
            reply = future.result()
        except (OfficeUnavailable, ContractError) as exc:
            _LOGGER.warning("Counter %d: login failed: %s", self.counter.number, exc)
            self._show_feedback(f"Masuk gagal. / Login failed: {exc}", "error")
            return
        if reply.ok:
            self._show_feedback(reply.message, "ok")
        else:
            self._show_feedback(reply.message or str(reply.error), "error")
