"""The work screen of one counter: the called ticket, the waiting list, staff alerts
and ten actions, with a list of choices drawn over it when an action needs one.

The layout is in work.kv. Keys reach the controller through the app
(counter.terminal), which routes Window.on_key_down to it on every screen.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kivy.lang import Builder
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.screenmanager import Screen
from kivy.uix.widget import Widget

from counter.keypad import ACTION_TITLES, Action

_LOGGER = logging.getLogger(__name__)

# The layout is designed for 1920x1080, and sizes scale down in smaller windows.
DESIGN_SIZE = (1920, 1080)


class CommandButton(ButtonBehavior, BoxLayout):
    """A large button of one action: its title, English name and keys."""

    action = StringProperty("")
    controller = ObjectProperty(None, allownone=True)
    title = StringProperty("")
    subtitle = StringProperty("")
    hint = StringProperty("")
    base_color = ListProperty([0.3, 0.3, 0.3, 1])
    scale = NumericProperty(1.0)
    flashing = BooleanProperty(False)

    def on_controller(self, _button: Any, controller: Any) -> None:
        if controller is None:
            return
        controller.bind(
            action_hints=self._refresh,
            busy=self._refresh,
            logged_in=self._refresh,
            flash_action=self._refresh,
            availability=self._refresh,
        )
        self._refresh()

    def on_action(self, _button: Any, _action: str) -> None:
        self._refresh()

    def on_press(self) -> None:
        if self.controller is not None:
            self.controller.press(self.action)

    def _refresh(self, *_args: Any) -> None:
        controller = self.controller
        if controller is None or not self.action:
            return
        action = Action(self.action)
        self.title, self.subtitle = ACTION_TITLES[action]
        if action is Action.PAUSE and controller.availability == "paused":
            self.title, self.subtitle = "Lanjutkan", "Resume"
        self.hint = controller.action_hints.get(self.action, "")
        self.disabled = controller.busy or not controller.logged_in
        self.flashing = controller.flash_action == self.action


class WorkWaitingRow(BoxLayout):
    """A waiting ticket in the list: label, service, lane and minutes waited."""

    label = StringProperty("")
    service = StringProperty("")
    priority = BooleanProperty(False)
    waited = StringProperty("")
    scale = NumericProperty(1.0)


class WorkAlertRow(BoxLayout):
    """A staff alert, red for errors and amber for warnings."""

    level = StringProperty("warning")
    text_id = StringProperty("")
    text_en = StringProperty("")
    scale = NumericProperty(1.0)


class WorkChoiceRow(ButtonBehavior, BoxLayout):
    """An entry of the open list of choices, with the digit that picks it."""

    number = StringProperty("")
    text = StringProperty("")
    detail = StringProperty("")
    picked = BooleanProperty(False)
    scale = NumericProperty(1.0)


class ChooserOverlay(FloatLayout):
    """The open list of choices, drawn over the work screen while it is open."""

    chooser = ObjectProperty(None)
    controller = ObjectProperty(None)
    scale = NumericProperty(1.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chooser.bind(rows=self._fill)
        self._fill(self.chooser, self.chooser.rows)

    def on_touch_down(self, touch: Any) -> bool:
        # The overlay takes every touch, so buttons behind it do nothing.
        super().on_touch_down(touch)
        return True

    def _fill(self, _chooser: Any, rows: list[dict[str, Any]]) -> None:
        fill_rows(self.ids.choice_rows, rows, WorkChoiceRow, self.scale)
        for index, row in enumerate(reversed(self.ids.choice_rows.children)):
            row.unbind(on_press=self._pick)
            row.bind(on_press=self._pick)
            row.index = index

    def _pick(self, row: Any) -> None:
        self.controller.pick(row.index)


class WorkScreen(Screen):
    """The screen an officer works from, bound to one CounterController."""

    controller = ObjectProperty(None)
    scale = NumericProperty(1.0)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        controller = self.controller
        self.overlay = ChooserOverlay(
            chooser=controller.chooser, controller=controller, scale=self.scale
        )
        controller.bind(waiting_rows=self._fill_waiting, alerts=self._fill_alerts)
        controller.chooser.bind(open=self._show_overlay)
        self._fill_waiting(controller, controller.waiting_rows)
        self._fill_alerts(controller, controller.alerts)

    def on_size(self, _screen: Any, size: list[float]) -> None:
        self.scale = min(size[0] / DESIGN_SIZE[0], size[1] / DESIGN_SIZE[1])

    def on_scale(self, _screen: Any, scale: float) -> None:
        self.overlay.scale = scale
        for container in (self.ids.waiting_rows, self.ids.alert_rows):
            for row in container.children:
                row.scale = scale

    def action_button(self, action: str) -> CommandButton:
        """Return the button of one action, e.g. "next" or "no_show"."""
        return self.ids[f"{action}_button"]

    def _fill_waiting(self, _controller: Any, rows: list[dict[str, Any]]) -> None:
        fill_rows(self.ids.waiting_rows, rows, WorkWaitingRow, self.scale)

    def _fill_alerts(self, _controller: Any, rows: list[dict[str, Any]]) -> None:
        fill_rows(self.ids.alert_rows, rows, WorkAlertRow, self.scale)

    def _show_overlay(self, _chooser: Any, is_open: bool) -> None:
        if is_open and self.overlay.parent is None:
            self.add_widget(self.overlay)
        elif not is_open and self.overlay.parent is not None:
            self.remove_widget(self.overlay)


def fill_rows(
    container: Widget, rows: list[dict[str, Any]], row_class: type, scale: float
) -> None:
    """Make a container show one row widget per dict, reusing the widgets it has."""
    widgets = list(reversed(container.children))
    for widget in widgets[len(rows) :]:
        container.remove_widget(widget)
    for index, row in enumerate(rows):
        if index < len(widgets):
            for key, value in row.items():
                setattr(widgets[index], key, value)
        else:
            container.add_widget(row_class(scale=scale, **row))


Builder.load_file(str(Path(__file__).with_name("work.kv")))
