"""The screen shown while the engine issues the ticket and the printer prints it."""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.lang import Builder

from kiosk.widgets import ControlledScreen

_LOGGER = logging.getLogger(__name__)


class WaitScreen(ControlledScreen):
    """A "please wait" message and no buttons, so a second touch does nothing."""


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
