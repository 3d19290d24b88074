"""The counter picker: one large button per counter of the site.

Shown when the terminal starts without a counter number. Choosing a button
dispatches on_pick with that counter's number.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.lang import Builder
from kivy.properties import ListProperty, NumericProperty, StringProperty
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.screenmanager import Screen

_LOGGER = logging.getLogger(__name__)

DESIGN_SIZE = (1920, 1080)


class CounterChoice(ButtonBehavior, BoxLayout):
    """A button showing a counter's number, name and the services it takes."""

    number = NumericProperty(0)
    name_text = StringProperty("")
    services_text = StringProperty("")
    scale = NumericProperty(1.0)


class PickerScreen(Screen):
    """A screen listing the counters of a site, which dispatches on_pick(number)."""

    scale = NumericProperty(1.0)
    choices = ListProperty()

    __events__ = ("on_pick",)

    def __init__(self, site, **kwargs):
        super().__init__(**kwargs)
        self.site = site
        self.ids.grid.cols = 2 if len(site.counters) <= 4 else 3
        for counter in site.counters:
            self._add_choice(counter)

    def _add_choice(self, counter):
        services = " \u00b7 ".join(
            self.site.service(code).name_id for code in counter.services
        )
        choice = CounterChoice(
            number=counter.number,
            name_text=counter.name,
            services_text=services,
            scale=self.scale,
        )
        self.bind(scale=choice.setter("scale"))
        choice.bind(on_press=lambda button: self.dispatch("on_pick", button.number))
        self.ids.grid.add_widget(choice)
        self.choices.append(choice)

    def on_size(self, _screen, size):
        self.scale = min(size[0] / DESIGN_SIZE[0], size[1] / DESIGN_SIZE[1])

    def on_pick(self, number):
        _LOGGER.info("Counter %d picked", number)


Builder.load_file(str(Path(__file__).with_name("picker.kv")))
