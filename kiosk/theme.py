"""Colours and the window-relative size unit that every kiosk kv file uses."""

from __future__ import annotations

import logging

from kivy.event import EventDispatcher
from kivy.properties import NumericProperty

_LOGGER = logging.getLogger(__name__)

# Sizes in the kv files are pixels on a screen whose short side is this long.
REFERENCE_PX = 1080.0
MIN_UNIT = 0.4

# High-contrast palette for a dark background (RGBA, 0 to 1).
BACKGROUND = (0.05, 0.11, 0.17, 1)
WHITE = (1, 1, 1, 1)
BLACK = (0, 0, 0, 1)
MUTED = (0.80, 0.86, 0.92, 1)
BLUE = (0.09, 0.32, 0.60, 1)
BLUE_DOWN = (0.04, 0.18, 0.36, 1)
AMBER = (1.0, 0.76, 0.03, 1)
AMBER_DOWN = (0.80, 0.58, 0.0, 1)
TEAL = (0.0, 0.41, 0.36, 1)
TEAL_DOWN = (0.0, 0.25, 0.22, 1)
GREY = (0.22, 0.28, 0.31, 1)
GREY_DOWN = (0.12, 0.16, 0.18, 1)
RED = (0.72, 0.11, 0.11, 1)
GREEN = (0.11, 0.37, 0.13, 1)
YELLOW = (1.0, 0.84, 0.31, 1)
DIMMED = (0.25, 0.30, 0.36, 1)


class TypeScale(EventDispatcher):
    """Size multiplier for the kv files: 1.0 when the root's short side is 1080 px."""

    unit = NumericProperty(1.0)

    def follow(self, widget: EventDispatcher) -> None:
        """Track the size of a widget from now on (the kiosk's root widget)."""
        widget.bind(size=self._resize)
        self._resize(widget, widget.size)

    def _resize(self, _widget: EventDispatcher, size: tuple[int, int]) -> None:
        # NOTE: kv rules of a root widget that has been collected stay bound to
        # this global, and a later change of unit can then raise ReferenceError
        # from Kivy's builder. The kiosk builds one root, but the test suite
        # builds many, and this failed one clean run of the suite in five.
        self.unit = max(min(size) / REFERENCE_PX, MIN_UNIT)


SCALE = TypeScale()
