"""The app side of the bench soak: one real app, controller and widgets, drawn
offscreen against the bench office for hours of speeded time.

Run as `python -m broker.bench_soak APP ...` with Kivy's offscreen settings in
the environment (bench_office.child_environment). It writes one JSON line per
simulated hour with its resident size and its count of Kivy textures, and
exits when stdin closes.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from broker.bench_office import (
    PRIORITY_EVERY,
    SpeededClock,
    emit,
    process_memory,
    read_site_data,
)
from broker.site import Site

_LOGGER = logging.getLogger(__name__)

APPS = ("kiosk", "counter", "display")
WINDOW_SIZE = (1920, 1080)
HOUR_S = 3600.0


@dataclass
class SoakApp:
    """A running app: its root widget, what it does each simulated step, and its end."""

    root: Any
    act: Callable[[int], None]
    close: Callable[[], None]


def count_textures() -> tuple[int, int]:
    """Count the Kivy textures alive in this process and their pixels' bytes (RGBA).

    gc tracks Texture objects, so a scan of its objects finds every one.
    """
    from kivy.graphics.texture import Texture

    gc.collect()
    textures = [item for item in gc.get_objects() if isinstance(item, Texture)]
    return len(textures), sum(4 * t.width * t.height for t in textures)


def open_display(site: Site, data_dir: Path, clock: SpeededClock) -> SoakApp:
    """Build the first hall display as display.app.run() does, on the speeded clock.

    Its announcer renders each call with espeak-ng and plays it on SDL's
    dummy audio driver, or stays silent where either is missing.
    """
    from broker.client import OfficeClient
    from broker.contract import Role
    from display.announcer import Announcer
    from display.app import SPEECH_DIR
    from display.controller import DisplayController
    from display.hall import HallDisplayApp

    display = next(d for d in site.displays if d.layout == "hall")
    announcer = Announcer(data_dir / SPEECH_DIR)
    controller = DisplayController(
        site, display.id, now=clock, announce=announcer.announce
    )
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
    root = HallDisplayApp(controller).build()
    controller.start_ticking()
    client.start()

    def close() -> None:
        controller.stop_ticking()
        client.stop()
        announcer.stop()

    return SoakApp(root, lambda _step: None, close)


def open_counter(site: Site, data_dir: Path) -> SoakApp:
    """Build the first counter's terminal as its app does; each step presses Next."""
    from broker.contract import CommandKind
    from counter.terminal import CounterApp

    app = CounterApp(site, site.counters[0].number, data_dir)
    root = app.build()

    def act(_step: int) -> None:
        if app.controller is not None:
            app.controller.press(CommandKind.NEXT)

    return SoakApp(root, act, app.close)


def open_kiosk(site: Site, data_dir: Path) -> SoakApp:
    """Build the first kiosk as the kiosk app does; each step takes a ticket."""
    from kiosk.controller import KioskController
    from kiosk.root import KioskApp

    controller = KioskController(site, site.kiosks[0], data_dir)
    controller.start()
    root = KioskApp(controller).build()
    services = [service.code for service in site.services]

    def act(step: int) -> None:
        controller.go_home()
        categories = site.priority_categories
        if step % PRIORITY_EVERY == 0 and categories:
            controller.open_priority()
            controller.choose_category(categories[0].key)
        controller.issue(services[step % len(services)])

    return SoakApp(root, act, controller.stop)


def configure_window(app_name: str) -> None:
    """Apply the window settings of app `app_name` at WINDOW_SIZE, not full screen."""
    if app_name == "display":
        from display.app import configure_kivy

        configure_kivy(False, WINDOW_SIZE)
    elif app_name == "counter":
        from counter.app import configure_window as configure_counter

        configure_counter(False, WINDOW_SIZE)
    else:
        from kiosk.app import configure_window as configure_kiosk

        configure_kiosk(False, WINDOW_SIZE)


def soak(
    app_name: str,
    site: Site,
    data_dir: Path,
    clock: SpeededClock,
    hours: float,
    step_s: float,
) -> int:
    """Run one app until `hours` of simulated time pass or stdin closes."""
    # The app's own configuration sets up the window, at its size from the
    # start as with the apps' --size. Under SDL's offscreen driver a window
    # resized later keeps the framebuffers of Kivy's default 800x600, which
    # would leave them out of the measured size.
    configure_window(app_name)
    from kivy.base import EventLoop

    EventLoop.ensure_window()
    window = EventLoop.window
    if app_name == "display":
        app = open_display(site, data_dir, clock)
    elif app_name == "counter":
        app = open_counter(site, data_dir)
    else:
        app = open_kiosk(site, data_dir)
    window.add_widget(app.root)
    stopped = threading.Event()
    threading.Thread(target=_watch_stdin, args=(stopped,), daemon=True).start()
    emit("ready", pid=os.getpid())
    _run(app, clock, hours, step_s, stopped, EventLoop.idle)
    app.close()
    window.remove_widget(app.root)
    emit("done", pid=os.getpid())
    stopped.wait()
    return 0


def _run(
    app: SoakApp,
    clock: SpeededClock,
    hours: float,
    step_s: float,
    stopped: threading.Event,
    frame: Callable[[], object],
) -> None:
    end = hours * HOUR_S
    step = 0
    hour = 0
    while not stopped.is_set():
        elapsed = clock.elapsed()
        # A slow frame can jump past an hour and the end at once, so every due
        # hour is sampled, late, before the final sample.
        if hour * HOUR_S < end and elapsed >= hour * HOUR_S:
            _report(hour)
            hour += 1
            continue
        if elapsed >= end:
            _report(hours)
            return
        if elapsed >= step * step_s:
            app.act(step)
            step += 1
        frame()


def _report(hour: float) -> None:
    textures, texture_bytes = count_textures()
    emit(
        "sample",
        hour=hour,
        memory=dataclasses.asdict(process_memory(os.getpid())),
        textures=textures,
        texture_bytes=texture_bytes,
    )


def _watch_stdin(stopped: threading.Event) -> None:
    sys.stdin.read()
    stopped.set()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one app of the soak and return its exit code."""
    parser = argparse.ArgumentParser(prog="python -m broker.bench_soak")
    parser.add_argument("app", choices=APPS, help="the app to run")
    parser.add_argument("--site-json", type=Path, required=True, help="site data file")
    parser.add_argument("--data-dir", type=Path, required=True, help="data directory")
    parser.add_argument("--start", required=True, help="simulated start (ISO 8601)")
    parser.add_argument("--origin", type=float, required=True, help="monotonic start")
    parser.add_argument("--speed", type=float, required=True, help="speed-up factor")
    parser.add_argument("--hours", type=float, required=True, help="simulated hours")
    parser.add_argument(
        "--step", type=float, required=True, help="simulated seconds between actions"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    site = read_site_data(args.site_json)
    clock = SpeededClock(datetime.fromisoformat(args.start), args.origin, args.speed)
    return soak(args.app, site, args.data_dir, clock, args.hours, args.step)


if __name__ == "__main__":
    sys.exit(main())
