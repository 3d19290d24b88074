"""Entry point of the counter terminal, called by the antrean command line."""

from __future__ import annotations

import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

from broker.errors import AntreanError
from broker.site import Site

if TYPE_CHECKING:
    from counter.terminal import CounterApp

_LOGGER = logging.getLogger(__name__)


class UnknownCounterError(AntreanError):
    """The counter given on the command line is not defined in the site file."""


def parse_counter(site: Site, device: str | None) -> int | None:
    """Return the counter number a device id names, or None to show the picker.

    Raises UnknownCounterError naming the counters of the site when the id is
    not the number of one of them.
    """
    if device is None:
        return None
    numbers = ", ".join(str(counter.number) for counter in site.counters)
    try:
        number = int(device.strip())
    except ValueError:
        number = None
    if number is None or site.counter(number) is None:
        raise UnknownCounterError(
            f"Counter {device!r} is not defined in {site.source or site.id}. "
            f"Use one of the counter numbers: {numbers}."
        )
    return number


def configure_window(fullscreen: bool, size: tuple[int, int] | None) -> None:
    """Set Kivy's graphics config, which takes effect only before the Window exists."""
    from kivy.config import Config

    from broker.rendering import configure_rendering

    configure_rendering()

    Config.set("graphics", "fullscreen", "auto" if fullscreen else "0")
    if size is not None:
        Config.set("graphics", "width", str(size[0]))
        Config.set("graphics", "height", str(size[1]))
    # Escape must not close a terminal that officers use all day.
    Config.set("kivy", "exit_on_escape", "0")
    # A right click would otherwise leave a red multitouch dot on the screen.
    Config.set("input", "mouse", "mouse,multitouch_on_demand")


def run(
    site: Site,
    data_dir: Path,
    device: str | None,
    fullscreen: bool,
    size: tuple[int, int] | None,
) -> None:
    """Run the counter terminal until its window closes.

    `device` is the counter number as text, and None shows the counter picker.
    The counter keeps no local data; `data_dir` holds its broker credentials.
    """
    number = parse_counter(site, device)
    configure_window(fullscreen, size)
    from counter.terminal import CounterApp

    _LOGGER.info(
        "Starting the counter terminal of %s (counter %s)",
        site.id,
        "picker" if number is None else number,
    )
    app = CounterApp(site, number, data_dir)
    _stop_on_sigterm(app)
    try:
        app.run()
    finally:
        app.close()
        _LOGGER.info("Counter terminal stopped")


def _stop_on_sigterm(app: CounterApp) -> None:
    """Close the app on SIGTERM, which `antrean up` sends to its windows.

    Closing stops the OfficeClient, which publishes the counter's offline status.
    """
    from kivy.clock import Clock

    def request_stop(signum: int, _frame: object) -> None:
        _LOGGER.info("Received signal %d, closing the counter terminal", signum)
        Clock.schedule_once(lambda _dt: app.stop())

    signal.signal(signal.SIGTERM, request_stop)
