"""The counter terminal's Kivy App: a counter picker, then the work screen.

Importing this module creates no window; importing counter.picker or
counter.work does, so they are imported after the graphics config is set.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.app import App
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
        **kwargs: object,
    ):
        super().__init__(**kwargs)
        self.site = site
        self.data_dir = data_dir
        self.counter_number = counter_number
        self.controller: CounterController | None = None
        self.manager: ScreenManager | None = None
        self.work_screen = None
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
        """Show the work screen of a counter and connect it to the office broker."""
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
        self.work_screen = WorkScreen(controller=self.controller, name="work")
        self.manager.add_widget(self.work_screen)
        self.manager.current = "work"
        self.work_screen.bind_keys()
        self.title = f"antrean \u2014 {counter.name}"
        self.controller.start()

    def close(self) -> None:
        """Stop routing keys and disconnect. Calling it again does nothing."""
        if self.work_screen is not None:
            self.work_screen.unbind_keys()
        if self.controller is not None:
            self.controller.stop()

    def on_stop(self):
        self.close()
