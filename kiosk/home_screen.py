"""The home screen: a button per service and the way into the priority lane."""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.lang import Builder

from kiosk.widgets import ControlledScreen

_LOGGER = logging.getLogger(__name__)


class HomeScreen(ControlledScreen):
    """Office name, one button per service and the priority service button."""


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
