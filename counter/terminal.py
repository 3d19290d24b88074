"""The counter terminal's Kivy App: a counter picker, then the login and work screens.

The work screen shows while an officer is logged in at the counter, as the
engine's state shows, and the login screen otherwise. Importing this module
creates no window; importing the screen modules does, so they are imported
after the graphics config is set.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kivy.app import App
from kivy.core.window import Window
from kivy.uix.screenmanager import NoTransition, ScreenManager

from broker.site import Site
from counter.controller import CounterController

_LOGGER = logging.getLogger(__name__)


class CounterApp(App):
    """The App of one counter terminal, starting at the picker without a number."""

    def __init__(
        self,
        site: Site,
        counter_number: int | None,
        data_dir: Path | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.site = site
        self.data_dir = data_dir
        self.counter_number = counter_number
        self.controller: CounterController | None = None
        self.manager: ScreenManager | None = None
        self.login_screen = None
        self.work_screen = None
        self._keys_bound = False
        self.title = f"antrean \u2014 {site.name}"

    def build(self):
        from counter.picker import PickerScreen

        self.manager = ScreenManager(transition=NoTransition())
        if self.counter_number is None:
            picker = PickerScreen(self.site, name="picker")
            picker.bind(on_pick=lambda _picker, number: self.open_counter(number))
            self.manager.add_widget(picker)
        else:
            self.open_counter(self.counter_number)
        return self.manager

    def open_counter(self, number: int) -> None:
        """Show the login screen of a counter and connect it to the office broker."""
        from counter.login_screen import LoginScreen
        from counter.work import WorkScreen

        counter = self.site.counter(number)
        if counter is None:
            raise ValueError(f"counter {number} is not defined in {self.site.source}")
        if self.controller is not None:
            _LOGGER.warning(
                "Counter %d is already open", self.controller.counter.number
            )
            return
        self.controller = CounterController(self.site, counter, self.data_dir)
        self.login_screen = LoginScreen(controller=self.controller, name="login")
        self.work_screen = WorkScreen(controller=self.controller, name="work")
        self.manager.add_widget(self.login_screen)
        self.manager.add_widget(self.work_screen)
        self.controller.bind(logged_in=self._show_screen)
        self._show_screen(self.controller, self.controller.logged_in)
        self.bind_keys()
        self.title = f"antrean \u2014 {counter.name}"
        self.controller.start()

    def bind_keys(self) -> None:
        """Route the keyboard and a USB numeric keypad to the controller."""
        if not self._keys_bound:
            Window.bind(on_key_down=self._key_down, on_key_up=self._key_up)
            self._keys_bound = True

    def unbind_keys(self) -> None:
        """Stop routing keys to the controller."""
        if self._keys_bound:
            Window.unbind(on_key_down=self._key_down, on_key_up=self._key_up)
            self._keys_bound = False

    def close(self) -> None:
        """Stop routing keys and disconnect. Calling it again does nothing."""
        self.unbind_keys()
        if self.controller is not None:
            self.controller.stop()

    def on_stop(self):
        self.close()

    def _show_screen(self, _controller: Any, logged_in: bool) -> None:
        self.manager.current = "work" if logged_in else "login"

    def _key_down(self, _window, key, _scancode, codepoint, _modifiers):
        return self.controller.handle_key_down(key, codepoint or "")

    def _key_up(self, _window, key, _scancode):
        return self.controller.handle_key_up(key)
