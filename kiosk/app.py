"""Entry point of the touch kiosk: window settings, the office connection, the App."""

from __future__ import annotations

import logging
from pathlib import Path

from kivy.config import Config

from broker.rendering import configure_rendering
from broker.site import Site
from kiosk.controller import KioskController, select_kiosk

_LOGGER = logging.getLogger(__name__)


def configure_window(fullscreen: bool, size: tuple[int, int] | None) -> None:
    """Set Kivy's graphics and input config; call it before the Window exists."""
    configure_rendering()
    if fullscreen:
        Config.set("graphics", "fullscreen", "auto")
        Config.set("graphics", "show_cursor", "0")
        # A stray Escape from a keyboard must not close a public kiosk.
        Config.set("kivy", "exit_on_escape", "0")
    else:
        Config.set("graphics", "fullscreen", "0")
    if size is not None:
        width, height = size
        Config.set("graphics", "width", str(width))
        Config.set("graphics", "height", str(height))
    # A touch screen can send each touch through the mouse provider and a touch
    # provider. disable_on_activity drops the mouse event then, and
    # disable_multitouch stops right clicks from drawing emulated touches
    # (see kivy/input/providers/mouse.py, Kivy 2.3).
    Config.set("input", "mouse", "mouse,disable_on_activity,disable_multitouch")


def run(
    site: Site,
    data_dir: Path,
    device: str | None,
    fullscreen: bool,
    size: tuple[int, int] | None,
) -> None:
    """Run the kiosk `device` (None for the site's first kiosk) until its window closes.

    Raises KioskError when the site defines no such kiosk.
    """
    kiosk = select_kiosk(site, device)
    configure_window(fullscreen, size)
    # Importing the widgets creates the Window, so it comes after the config.
    from kiosk.root import KioskApp

    controller = KioskController(site, kiosk, data_dir)
    _LOGGER.info("Starting kiosk %s of site %s", kiosk.id, site.id)
    controller.start()
    try:
        KioskApp(controller).run()
    finally:
        controller.stop()
