"""The work screen of one counter: the called ticket, the queue length and four actions.

The layout is in work.kv. Key presses reach the controller through
Window.on_key_down while the screen's keys are bound (see bind_keys).
"""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.core.window import Window
from kivy.lang import Builder
from kivy.properties import (
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

_LOGGER = logging.getLogger(__name__)

# The layout is designed for 1920x1080, and sizes scale down in smaller windows.
DESIGN_SIZE = (1920, 1080)


class CommandButton(ButtonBehavior, BoxLayout):
    """A large button with a title, its English name and a note such as its keys."""

    title = StringProperty("")
    subtitle = StringProperty("")
    hint = StringProperty("")
    base_color = ListProperty([0.3, 0.3, 0.3, 1])
    scale = NumericProperty(1.0)


class WorkScreen(Screen):
    """The screen an officer works from, bound to one CounterController."""

    controller = ObjectProperty(None)
    scale = NumericProperty(1.0)

    def on_size(self, _screen, size):
        self.scale = min(size[0] / DESIGN_SIZE[0], size[1] / DESIGN_SIZE[1])

    def action_button(self, action):
        """Return the button of one action ("next", "recall", "no_show", "finish")."""
        return self.ids[f"{action}_button"]

    def bind_keys(self):
        """Route the keyboard and a USB numeric keypad to the controller."""
        Window.bind(on_key_down=self._handle_key_down, on_key_up=self._handle_key_up)
        _LOGGER.debug("Keys bound to %s", self.controller.counter_name)

    def unbind_keys(self):
        """Stop routing keys to the controller."""
        Window.unbind(on_key_down=self._handle_key_down, on_key_up=self._handle_key_up)

    def _handle_key_down(self, _window, key, _scancode, _codepoint, _modifiers):
        return self.controller.handle_key_down(key)

    def _handle_key_up(self, _window, key, _scancode):
        return self.controller.handle_key_up(key)


Builder.load_file(str(Path(__file__).with_name("work.kv")))
