"""The kiosk's root widget, its screens and status bar, and the Kivy App around it.

The root also takes the keyboard: a USB barcode scanner types an appointment
code like a keyboard and ends it with Enter.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.app import App
from kivy.core.window import Window
from kivy.input.motionevent import MotionEvent
from kivy.lang import Builder
from kivy.properties import ObjectProperty
from kivy.uix.boxlayout import BoxLayout

from kiosk.category_screen import CategoryScreen
from kiosk.check_in_screen import CheckInScreen
from kiosk.controller import KioskController, ScreenName
from kiosk.home_screen import HomeScreen
from kiosk.notice_screen import NoticeScreen
from kiosk.priority_service_screen import PriorityServiceScreen
from kiosk.theme import SCALE
from kiosk.ticket_screen import TicketScreen
from kiosk.wait_screen import WaitScreen

_LOGGER = logging.getLogger(__name__)

SCREEN_CLASSES = {
    ScreenName.HOME: HomeScreen,
    ScreenName.CATEGORIES: CategoryScreen,
    ScreenName.PRIORITY_SERVICES: PriorityServiceScreen,
    ScreenName.WAIT: WaitScreen,
    ScreenName.TICKET: TicketScreen,
    ScreenName.NOTICE: NoticeScreen,
    ScreenName.CHECK_IN: CheckInScreen,
}
# SDL key codes of Enter, keypad Enter and Backspace.
ENTER_KEYS = frozenset({13, 271})
BACKSPACE_KEY = 8


class KioskRoot(BoxLayout):
    """The screen manager above the status bar, showing the controller's screen.

    Type and spacing in every kv file scale with this widget's short side.
    """

    controller = ObjectProperty(None)

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        SCALE.follow(self)
        for name, screen_class in SCREEN_CLASSES.items():
            self.ids.screens.add_widget(
                screen_class(name=name.value, controller=self.controller)
            )
        self.controller.bind(screen=self._show_screen)
        self._show_screen(self.controller, self.controller.screen)

    def on_parent(self, _root, parent) -> None:
        # Several roots come and go on one Window in the tests, so only a root
        # that is on screen listens to the keyboard.
        if parent is not None:
            Window.bind(on_textinput=self._on_textinput, on_key_down=self._on_key_down)
        else:
            Window.unbind(
                on_textinput=self._on_textinput, on_key_down=self._on_key_down
            )

    def on_touch_down(self, touch: MotionEvent) -> bool:
        self.controller.note_activity()
        return super().on_touch_down(touch)

    def _on_textinput(self, _window, text: str) -> None:
        # NOTE: SDL2 sends text input events only while text input is on,
        # which it is by default on desktop Linux unless a widget turns it off.
        self.controller.note_activity()
        self.controller.type_code(text)

    def _on_key_down(self, _window, key: int, _scancode, _codepoint, _modifiers):
        self.controller.note_activity()
        if key in ENTER_KEYS:
            return self.controller.submit_code()
        if key == BACKSPACE_KEY and self.controller.screen == ScreenName.CHECK_IN:
            self.controller.erase_code()
            return True
        return False

    def _show_screen(self, _controller, name: str) -> None:
        self.ids.screens.current = name

    def screen(self, name: ScreenName):
        """Return the screen widget with this name."""
        return self.ids.screens.get_screen(name.value)


class KioskApp(App):
    """Runs the kiosk's root widget full screen or in a window."""

    def __init__(self, controller: KioskController, **kwargs):
        super().__init__(**kwargs)
        self.controller = controller
        self.title = f"antrean kiosk {controller.kiosk.id}: {controller.office_name}"

    def build(self) -> KioskRoot:
        return KioskRoot(controller=self.controller)


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
