"""The kiosk's root widget, its screens and status bar, and the Kivy App around it."""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.app import App
from kivy.lang import Builder
from kivy.properties import ObjectProperty
from kivy.uix.boxlayout import BoxLayout

from kiosk.category_screen import CategoryScreen
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
}


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
