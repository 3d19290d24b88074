"""The login screen of a counter terminal: officer id, PIN and an on-screen keypad.

The layout is in login_screen.kv; the form itself is counter.login.LoginForm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import NumericProperty, ObjectProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

DESIGN_SIZE = (1920, 1080)
# The on-screen keypad, row by row: the symbol each key types, and its label.
KEYPAD_ROWS: tuple[tuple[tuple[str, str], ...], ...] = (
    (("7", "7"), ("8", "8"), ("9", "9")),
    (("4", "4"), ("5", "5"), ("6", "6")),
    (("1", "1"), ("2", "2"), ("3", "3")),
    ((".", "Hapus"), ("0", "0"), ("enter", "Enter")),
)


class LoginKeypadKey(ButtonBehavior, BoxLayout):
    """A key of the on-screen keypad."""

    symbol = StringProperty("")
    text = StringProperty("")
    scale = NumericProperty(1.0)


class LoginScreen(Screen):
    """The screen an officer logs in from, bound to one CounterController."""

    controller = ObjectProperty(None)
    scale = NumericProperty(1.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for row in KEYPAD_ROWS:
            for symbol, text in row:
                key = LoginKeypadKey(symbol=symbol, text=text, scale=self.scale)
                key.bind(on_press=self._press_key)
                self.bind(scale=key.setter("scale"))
                self.ids.keypad.add_widget(key)

    def on_size(self, _screen: Any, size: list[float]) -> None:
        self.scale = min(size[0] / DESIGN_SIZE[0], size[1] / DESIGN_SIZE[1])

    def keypad_key(self, symbol: str) -> LoginKeypadKey:
        """Return the on-screen key that types a symbol."""
        return next(key for key in self.ids.keypad.children if key.symbol == symbol)

    def _press_key(self, key: LoginKeypadKey) -> None:
        self.controller.type_login(key.symbol)


Builder.load_file(str(Path(__file__).with_name("login_screen.kv")))
