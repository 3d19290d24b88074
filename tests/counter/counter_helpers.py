"""Helpers of the counter tests: a Kivy frame pump, ticket issuing, database reads."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable

from kivy.base import EventLoop
from kivy.clock import Clock
from officer_logins import OFFICER_PIN, add_office_officers, officer_of

from broker.client import OfficeClient, new_command_id
from broker.contract import Command, CommandKind, TicketView
from broker.service import DATABASE_NAME
from counter.controller import CounterController

WAIT_S = 10.0


def pump_until(condition: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Run Kivy frames until the condition is true or the timeout passes.

    Returns the last value of the condition.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if EventLoop.window is not None:
            EventLoop.idle()
        else:
            Clock.tick()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def pump_frames(count: int = 5) -> None:
    """Run a few frames so that callbacks already scheduled have run."""
    for _ in range(count):
        if EventLoop.window is not None:
            EventLoop.idle()
        else:
            Clock.tick()
        time.sleep(0.01)


def issue(kiosk: OfficeClient, service: str, category: str | None = None) -> TicketView:
    """Issue a ticket through the engine, as a kiosk does, and return it."""
    command = Command(
        CommandKind.ISSUE_TICKET,
        new_command_id("kiosk-1"),
        service=service,
        category=category,
    )
    reply = kiosk.request(command)
    if not reply.ok or reply.ticket is None:
        raise RuntimeError(f"issuing a {service} ticket failed: {reply.message}")
    return reply.ticket


def commands_of_kind(office, kind: CommandKind) -> int:
    """Count the commands of one kind the engine recorded, read from its database."""
    path = office.data_dir / DATABASE_NAME
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        row = connection.execute(
            "SELECT COUNT(*) FROM commands WHERE kind = ?", [kind.value]
        ).fetchone()
    return int(row[0])


def ticket_row(office, label: str) -> dict:
    """Return the engine's row of today's first visit of a ticket label."""
    path = office.data_dir / DATABASE_NAME
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        connection.row_factory = sqlite3.Row
        row = connection.execute(
            "SELECT * FROM tickets WHERE label = ? AND visit = 0", [label]
        ).fetchone()
    if row is None:
        raise LookupError(f"no ticket {label} in {path}")
    return dict(row)


def type_keys(controller: CounterController, keys: str) -> None:
    """Press and release keys on the terminal; a newline character stands for Enter."""
    for character in keys:
        key = 13 if character == "\n" else ord(character)
        controller.handle_key_down(key, "" if character == "\n" else character)
        controller.handle_key_up(key)


def log_in(controller: CounterController, number: int, pin: str = OFFICER_PIN) -> None:
    """Log the counter's test officer in by typing on the terminal's keypad."""
    type_keys(controller, f"{officer_of(number)}\n{pin}\n")
    if not pump_until(lambda: controller.logged_in):
        raise RuntimeError(f"login at counter {number} failed: {controller.feedback}")


def open_controller(office, number: int, logged_in: bool = True) -> CounterController:
    """Start a controller for one counter, connected and with its officer logged in."""
    controller = CounterController(
        office.site, office.site.counter(number), office.data_dir
    )
    controller.repeat_guard_s = 0.0
    controller.start()
    if not pump_until(lambda: controller.connected):
        controller.stop()
        raise RuntimeError(
            f"counter {number} did not connect: {controller.status_text}"
        )
    add_office_officers(office.data_dir, (number,))
    if logged_in:
        log_in(controller, number)
    return controller
