"""The check-in screen: an appointment code typed on a keypad or read by a scanner."""

from __future__ import annotations

import logging
import string
from pathlib import Path

from kivy.lang import Builder
from kivy.properties import StringProperty
from kivy.uix.gridlayout import GridLayout

from kiosk.widgets import ControlledScreen, KioskButton

_LOGGER = logging.getLogger(__name__)

KEYS = string.digits[1:] + "0" + string.ascii_uppercase


class KeypadKey(KioskButton):
    """One key of the keypad, showing its character."""

    text = StringProperty("")


class Keypad(GridLayout):
    """Digit and letter keys; fires on_key(character) when one is touched."""

    __events__ = ("on_key",)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.keys = {}
        for character in KEYS:
            key = KeypadKey(text=character)
            key.bind(on_release=lambda k: self.dispatch("on_key", k.text))
            self.keys[character] = key
            self.add_widget(key)

    def on_key(self, character: str) -> None:
        pass


class CheckInScreen(ControlledScreen):
    """The code typed so far, the keypad, and back, delete and check-in buttons."""


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
