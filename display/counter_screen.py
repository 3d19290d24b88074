"""The screen above one counter: its name, its current ticket and whether it is open.

Fed by the same DisplayController as the hall, created with counter=N, so it
highlights only that counter's calls. The layout is in counter_screen.kv.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kivy.animation import Animation
from kivy.app import App
from kivy.lang import Builder
from kivy.properties import NumericProperty, ObjectProperty
from kivy.uix.boxlayout import BoxLayout

from display.controller import DisplayController
from display.hall import FLASH_HALF_PERIOD_S

_LOGGER = logging.getLogger(__name__)

LAYOUT_PATH = Path(__file__).with_name("counter_screen.kv")


def load_layout() -> None:
    """Load counter_screen.kv once per process."""
    path = str(LAYOUT_PATH)
    if path not in Builder.files:
        Builder.load_file(path)


class CounterScreen(BoxLayout):
    """One counter's screen; every value comes from its controller."""

    controller = ObjectProperty(None)
    flash = NumericProperty(0.0)
    """0 to 1: how far the ticket panel is into its highlight colour."""

    def __init__(self, **kwargs: Any) -> None:
        load_layout()
        super().__init__(**kwargs)
        controller: DisplayController = self.controller
        if controller.counter is None:
            raise ValueError(
                f"display {controller.display_id} has no counter; "
                "create its DisplayController with counter=N"
            )
        controller.bind(highlight=self._on_highlight)
        self._on_highlight(controller, controller.highlight)

    def _on_highlight(self, _controller: Any, highlight: bool) -> None:
        Animation.cancel_all(self, "flash")
        if highlight:
            pulse = Animation(flash=1.0, duration=FLASH_HALF_PERIOD_S) + Animation(
                flash=0.0, duration=FLASH_HALF_PERIOD_S
            )
            pulse.repeat = True
            pulse.start(self)
        else:
            Animation(flash=0.0, duration=FLASH_HALF_PERIOD_S).start(self)


class CounterDisplayApp(App):
    """The Kivy app running one counter's screen full time."""

    def __init__(self, controller: DisplayController, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller = controller
        self.title = f"antrean - {controller.site.name} - loket {controller.counter}"

    def build(self) -> CounterScreen:
        return CounterScreen(controller=self.controller)

    def on_start(self) -> None:
        self.controller.start_ticking()
        _LOGGER.info("Counter display %s started", self.controller.display_id)

    def on_stop(self) -> None:
        self.controller.stop_ticking()
        _LOGGER.info("Counter display %s stopped", self.controller.display_id)
