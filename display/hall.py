"""The hall screen: widgets bound to a DisplayController, and the Kivy app showing it.

Import this module only after the window settings are in kivy.config, because
the app creates the Window.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kivy.animation import Animation
from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import (
    BooleanProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.stencilview import StencilView
from kivy.uix.widget import Widget

from display.controller import DisplayController

_LOGGER = logging.getLogger(__name__)

LAYOUT_PATH = Path(__file__).with_name("hall.kv")
FLASH_HALF_PERIOD_S = 0.35
RUNNING_TEXT_SPEED = 0.06  # screen widths per second
RUNNING_TEXT_FPS = 30.0


def load_layout() -> None:
    """Load hall.kv once per process; Kivy would apply its rules twice otherwise."""
    path = str(LAYOUT_PATH)
    if path not in Builder.files:
        Builder.load_file(path)


def mix(first: list[float], second: list[float], amount: float) -> list[float]:
    """Blend two RGBA colours: amount 0 gives the first, 1 the second."""
    return [a + (b - a) * amount for a, b in zip(first, second, strict=True)]


class HallCounterTile(BoxLayout):
    """A counter and the ticket it serves."""

    number = NumericProperty(0)
    name = StringProperty("")
    label = StringProperty("")
    priority = BooleanProperty(False)
    calling = BooleanProperty(False)


class HallHistoryRow(BoxLayout):
    """One of the last calls."""

    seq = NumericProperty(0)
    label = StringProperty("")
    counter_name = StringProperty("")
    priority = BooleanProperty(False)
    recall = BooleanProperty(False)


class HallWaitingRow(BoxLayout):
    """A service and how many tickets wait in each lane."""

    code = StringProperty("")
    name_id = StringProperty("")
    name_en = StringProperty("")
    waiting_normal = NumericProperty(0)
    waiting_priority = NumericProperty(0)
    # Estimated wait of a ticket taken now, per lane, e.g. "10–20 mnt"; "" if unknown.
    wait_normal = StringProperty("")
    wait_priority = StringProperty("")
    # Tickets of the service still to be issued today.
    remaining = NumericProperty(0)


class HallRunningText(StencilView):
    """The footer's text, scrolling from right to left without end."""

    text = StringProperty("")
    offset = NumericProperty(0.0)
    text_width = NumericProperty(0.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._event: Any = None

    def on_parent(self, _widget: Widget, parent: Widget | None) -> None:
        # Scroll only while on screen, so a removed footer leaves no timer behind.
        if parent is not None and self._event is None:
            self.offset = self.width
            self._event = Clock.schedule_interval(self._step, 1 / RUNNING_TEXT_FPS)
        elif parent is None and self._event is not None:
            self._event.cancel()
            self._event = None

    def _step(self, dt: float) -> None:
        self.offset -= max(self.width, 1) * RUNNING_TEXT_SPEED * dt
        if self.offset < -self.text_width:
            self.offset = self.width


class HallScreen(BoxLayout):
    """The whole hall screen; every value comes from its controller."""

    controller = ObjectProperty(None)
    flash = NumericProperty(0.0)
    """0 to 1: how far the featured panel is into its highlight colour."""

    def __init__(self, **kwargs: Any) -> None:
        load_layout()
        super().__init__(**kwargs)
        controller: DisplayController = self.controller
        controller.bind(
            highlight=self._on_highlight,
            featured_call=self._on_featured_call,
            counters=self._fill_counters,
            history=self._fill_history,
            waiting=self._fill_waiting,
        )
        self._fill_counters(controller, controller.counters)
        self._fill_history(controller, controller.history)
        self._fill_waiting(controller, controller.waiting)
        self._on_highlight(controller, controller.highlight)

    def _on_highlight(self, _controller: DisplayController, highlight: bool) -> None:
        Animation.cancel_all(self, "flash")
        if highlight:
            pulse = Animation(
                flash=1.0, duration=FLASH_HALF_PERIOD_S, transition="out_quad"
            ) + Animation(flash=0.0, duration=FLASH_HALF_PERIOD_S, transition="in_quad")
            pulse.repeat = True
            pulse.start(self)
        else:
            Animation(flash=0.0, duration=FLASH_HALF_PERIOD_S).start(self)

    def _on_featured_call(self, controller: DisplayController, _call: Any) -> None:
        # A call that replaces another while the highlight runs restarts the pulse,
        # so the change is as visible as the first call was.
        if controller.highlight:
            self.flash = 1.0
            self._on_highlight(controller, True)

    def _fill_counters(self, _controller: Any, rows: list[dict[str, Any]]) -> None:
        _fill(self.ids.counter_tiles, rows, HallCounterTile)

    def _fill_history(self, _controller: Any, rows: list[dict[str, Any]]) -> None:
        _fill(self.ids.history_rows, rows, HallHistoryRow)
        self.ids.history_empty.opacity = 0 if rows else 1

    def _fill_waiting(self, _controller: Any, rows: list[dict[str, Any]]) -> None:
        _fill(self.ids.waiting_rows, rows, HallWaitingRow)


def _fill(container: Widget, rows: list[dict[str, Any]], row_class: type) -> None:
    """Make the container show one row widget per dict, reusing the widgets it has."""
    widgets = list(reversed(container.children))
    for widget in widgets[len(rows) :]:
        container.remove_widget(widget)
    for index, row in enumerate(rows):
        if index < len(widgets):
            for key, value in row.items():
                setattr(widgets[index], key, value)
        else:
            container.add_widget(row_class(**row))


class HallDisplayApp(App):
    """The Kivy app running the hall screen full time."""

    def __init__(self, controller: DisplayController, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.controller = controller
        self.title = f"antrean - {controller.site.name}"

    def build(self) -> HallScreen:
        return HallScreen(controller=self.controller)

    def on_start(self) -> None:
        self.controller.start_ticking()
        _LOGGER.info("Hall display %s started", self.controller.display_id)

    def on_stop(self) -> None:
        self.controller.stop_ticking()
        _LOGGER.info("Hall display %s stopped", self.controller.display_id)
