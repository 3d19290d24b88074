"""The service choice after a priority category, for a priority-lane ticket."""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.lang import Builder

from kiosk.widgets import ControlledScreen

_LOGGER = logging.getLogger(__name__)


class PriorityServiceScreen(ControlledScreen):
    """The chosen category, one button per service and a back button."""


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
