"""The notice screen: why no ticket came out, or that it could not be printed."""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.input.motionevent import MotionEvent
from kivy.lang import Builder

from kiosk.widgets import ControlledScreen

_LOGGER = logging.getLogger(__name__)


class NoticeScreen(ControlledScreen):
    """The controller's message, the ticket number when one was issued, and a hint."""

    def on_touch_down(self, touch: MotionEvent) -> bool:
        self.controller.dismiss()
        return True


Builder.load_file(str(Path(__file__).with_suffix(".kv")))
