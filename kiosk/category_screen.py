"""The priority screen: one button per priority category of the site."""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.lang import Builder

from kiosk.widgets import ControlledScreen

_LOGGER = logging.getLogger(__name__)


class CategoryScreen(ControlledScreen):
    """The priority categories and a back button."""


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
