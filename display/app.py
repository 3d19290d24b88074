"""Entry point of the hall display: window settings, office connection and Kivy app.

Kivy is imported only inside run(), after its settings are written, because the
window reads them once when it is created.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from broker.client import OfficeClient
from broker.contract import Role
from broker.errors import AntreanError
from broker.site import Display, Site

_LOGGER = logging.getLogger(__name__)

WindowSetting = tuple[str, str, str]
# Rendered speech and the chime, under the data directory.
SPEECH_DIR = "speech"


class DisplaySetupError(AntreanError):
    """The display id or window size given at start-up is invalid."""


def choose_display(site: Site, device: str | None) -> Display:
    """Return the display the id names, or the first one the site defines for None."""
    if not site.displays:
        raise DisplaySetupError(
            f"The site file {site.source} defines no display. "
            'Add a [[displays]] table with id = "hall" and layout = "hall".'
        )
    if device is None:
        return site.displays[0]
    display = site.display(device)
    if display is None:
        known = ", ".join(d.id for d in site.displays)
        raise DisplaySetupError(
            f"Display {device!r} is not defined in {site.source}. Use one of: {known}."
        )
    return display


def window_settings(
    fullscreen: bool, size: tuple[int, int] | None
) -> list[WindowSetting]:
    """Return the kivy.config entries for a full-screen or fixed-size window."""
    # A mouse right-click must not leave Kivy's multitouch marks on a wall screen.
    settings = [("input", "mouse", "mouse,disable_multitouch")]
    if fullscreen:
        settings.append(("graphics", "fullscreen", "auto"))
        settings.append(("graphics", "show_cursor", "0"))
        return settings
    if size is not None:
        width, height = size
        if width < 1 or height < 1:
            raise DisplaySetupError(
                f"Window size {width}x{height} is invalid. Give a positive width "
                "and height in pixels, for example 1920x1080."
            )
        settings.append(("graphics", "width", str(width)))
        settings.append(("graphics", "height", str(height)))
    return settings


def configure_kivy(fullscreen: bool, size: tuple[int, int] | None) -> None:
    """Write the window settings into kivy.config before any window exists."""
    # Without this Kivy parses the antrean command line as its own options.
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    from kivy.config import Config

    from broker.rendering import configure_rendering

    configure_rendering()

    for section, key, value in window_settings(fullscreen, size):
        Config.set(section, key, value)


def run(
    site: Site,
    data_dir: Path,
    device: str | None,
    fullscreen: bool,
    size: tuple[int, int] | None,
) -> None:
    """Show a display, in its hall or counter layout, until its window is closed.

    data_dir contains the display's broker credentials and, for the hall, its
    rendered speech (data_dir/speech), a cache that may be deleted.
    """
    display = choose_display(site, device)
    configure_kivy(fullscreen, size)

    from display.controller import DisplayController

    announcer = None
    if display.layout == "hall":
        from display.announcer import Announcer
        from display.hall import HallDisplayApp

        announcer = Announcer(data_dir / SPEECH_DIR)
        controller = DisplayController(
            site, display.id, announce=announcer.announce
        )
        app = HallDisplayApp(controller)
    else:
        from display.counter_screen import CounterDisplayApp

        controller = DisplayController(site, display.id, counter=display.counter)
        app = CounterDisplayApp(controller)
    client = OfficeClient(
        site,
        Role.DISPLAY,
        display.id,
        on_state=controller.post_state,
        on_call=controller.post_call,
        on_status=controller.post_status,
        on_link=controller.post_link,
        data_dir=data_dir,
    )
    _LOGGER.info(
        "Starting display %s (%s layout) of %s against %s:%d",
        display.id,
        display.layout,
        site.id,
        *client.address,
    )
    # The retained presence then shows operators that the screen itself runs,
    # not only its connection.
    app.bind(on_start=lambda _app: client.publish_status({"screen": "running"}))
    client.start()
    try:
        app.run()
    finally:
        client.stop()
        if announcer is not None:
            announcer.stop()
