"""The ticket screen: the issued number in huge type, until a touch or a timeout."""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.input.motionevent import MotionEvent
from kivy.lang import Builder

from kiosk.widgets import ControlledScreen

_LOGGER = logging.getLogger(__name__)


class TicketScreen(ControlledScreen):
    """Number, service, priority band, people ahead and "take your ticket"."""

    def on_touch_down(self, touch: MotionEvent) -> bool:
        self.controller.dismiss()
        return True


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
