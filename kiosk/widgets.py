"""Widgets every kiosk screen uses: buttons, labels and reflowing grids.

Their layout is in widgets.kv; sizes there are multiples of theme.SCALE.unit.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.lang import Builder
from kivy.properties import (
    ColorProperty,
    DictProperty,
    NumericProperty,
    ObjectProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.screenmanager import Screen

from kiosk.i18n import DEFAULT_LANGUAGE, translate
from kiosk.theme import BLUE, BLUE_DOWN, MUTED, WHITE

_LOGGER = logging.getLogger(__name__)


class ControlledScreen(Screen):
    """A screen that shows and drives one KioskController."""

    controller = ObjectProperty(None, allownone=True)


class KioskLabel(Label):
    """Centred, wrapping text whose height follows its content."""


class KioskButton(ButtonBehavior, BoxLayout):
    """A large flat button that contains labels; `fill` is its colour at rest."""

    fill = ColorProperty(BLUE)
    fill_down = ColorProperty(BLUE_DOWN)
    ink = ColorProperty(WHITE)
    ink_muted = ColorProperty(MUTED)


class ServiceButton(KioskButton):
    """The button of one service, with today's remaining tickets."""

    code = StringProperty("")
    name_id = StringProperty("")
    name_en = StringProperty("")
    description_id = StringProperty("")
    description_en = StringProperty("")
    language = StringProperty(DEFAULT_LANGUAGE)
    # -1 until the engine's state arrives.
    remaining = NumericProperty(-1)
    remaining_text = StringProperty("")

    def on_remaining(self, _button, _remaining: int) -> None:
        self._show_remaining()

    def on_language(self, _button, _language: str) -> None:
        self._show_remaining()

    def _show_remaining(self) -> None:
        if self.remaining < 0:
            self.remaining_text = ""
        elif self.remaining == 0:
            self.remaining_text = translate("None left today", self.language)
        else:
            template = translate("{count} left", self.language)
            self.remaining_text = template.format(count=int(self.remaining))


class CategoryButton(KioskButton):
    """The button of one priority category."""

    key = StringProperty("")
    name_id = StringProperty("")
    name_en = StringProperty("")
    language = StringProperty(DEFAULT_LANGUAGE)


class ReflowGrid(GridLayout):
    """A grid with two columns when wider than tall and one column otherwise."""

    controller = ObjectProperty(None, allownone=True)
    buttons = DictProperty({})
    __events__ = ("on_choose",)

    def on_choose(self, value: str) -> None:
        pass

    def _show_language(self, _controller, language: str) -> None:
        for button in self.buttons.values():
            button.language = language


class ServiceGrid(ReflowGrid):
    """One ServiceButton per service of the controller's site; fires on_choose(code)."""

    def on_controller(self, _grid, controller) -> None:
        self.clear_widgets()
        self.buttons = {}
        if controller is None:
            return
        for entry in controller.services:
            button = ServiceButton(**entry)
            button.bind(on_release=lambda b: self.dispatch("on_choose", b.code))
            self.buttons[entry["code"]] = button
            self.add_widget(button)
        controller.bind(remaining=self._show_remaining, language=self._show_language)
        self._show_remaining(controller, controller.remaining)
        self._show_language(controller, controller.language)

    def _show_remaining(self, _controller, remaining: dict) -> None:
        for code, button in self.buttons.items():
            button.remaining = remaining.get(code, -1)


class CategoryGrid(ReflowGrid):
    """One CategoryButton per priority category; fires on_choose(key)."""

    def on_controller(self, _grid, controller) -> None:
        self.clear_widgets()
        self.buttons = {}
        if controller is None:
            return
        for entry in controller.categories:
            button = CategoryButton(**entry)
            button.bind(on_release=lambda b: self.dispatch("on_choose", b.key))
            self.buttons[entry["key"]] = button
            self.add_widget(button)
        controller.bind(language=self._show_language)
        self._show_language(controller, controller.language)


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
