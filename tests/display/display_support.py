"""Helpers of the display tests: a movable clock, frame pumping, office clients
and the commands that issue and call tickets through the real engine.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kivy.clock import Clock

from broker.client import OfficeClient, new_command_id
from broker.contract import Command, CommandKind, Role, TicketView
from broker.site import Site
from display.controller import DisplayController

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0


class ShiftedClock:
    """A time source that follows the real clock plus an offset the test moves."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float = 0.0, days: int = 0) -> None:
        self.offset += timedelta(seconds=seconds, days=days)


def pump(
    condition: Callable[[], bool],
    timeout: float = 10.0,
    step: Callable[[], object] = Clock.tick,
) -> bool:
    """Run Kivy frames until the condition is true or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@dataclass
class Clients:
    """Office clients of a test, started on demand and stopped at teardown."""

    site: Site
    started: list[OfficeClient]
    data_dir: Path | None = None

    def open(self, role: Role, device: str, **callbacks: Any) -> OfficeClient:
        client = OfficeClient(self.site, role, device, data_dir=self.data_dir, **callbacks)
        client.start()
        self.started.append(client)
        if not client.wait_connected(CONNECT_TIMEOUT_S):
            pytest.fail(f"{role.value} client {device} did not connect to the broker")
        return client

    def stop_all(self) -> None:
        for client in self.started:
            client.stop()


@dataclass
class DisplayUnderTest:
    """A display controller connected to the test office, and its client."""

    controller: DisplayController
    client: OfficeClient
    clock: ShiftedClock


def connect_display(
    clients: Clients,
    site: Site,
    clock: ShiftedClock,
    step: Callable[[], object] = Clock.tick,
) -> DisplayUnderTest:
    """Start a controller and its DISPLAY client, and wait for the first state."""
    controller = DisplayController(site, "hall", now=clock)
    client = clients.open(
        Role.DISPLAY,
        "hall",
        on_state=controller.post_state,
        on_call=controller.post_call,
        on_status=controller.post_status,
        on_link=controller.post_link,
    )
    if not pump(lambda: not controller.stale, step=step):
        pytest.fail(f"display stayed stale: {controller.stale_reason}")
    return DisplayUnderTest(controller, client, clock)


def issue(
    kiosk: OfficeClient, service: str = "A", category: str | None = None
) -> TicketView:
    """Issue a ticket through the engine and return it."""
    command = Command(
        CommandKind.ISSUE_TICKET,
        new_command_id("test-kiosk"),
        service=service,
        category=category,
    )
    reply = kiosk.request(command)
    if not reply.ok or reply.ticket is None:
        pytest.fail(f"issuing a {service} ticket failed: {reply.message}")
    return reply.ticket


def call_next(officer: OfficeClient, counter: int) -> TicketView:
    """Call the next ticket to a counter and return it."""
    command = Command(CommandKind.NEXT, new_command_id("test-counter"), counter=counter)
    reply = officer.request(command)
    if not reply.ok or reply.ticket is None:
        pytest.fail(f"calling at counter {counter} failed: {reply.message}")
    return reply.ticket


def recall(officer: OfficeClient, counter: int) -> TicketView:
    """Call the current ticket of a counter again and return it."""
    command = Command(
        CommandKind.RECALL, new_command_id("test-counter"), counter=counter
    )
    reply = officer.request(command)
    if not reply.ok or reply.ticket is None:
        pytest.fail(f"recalling at counter {counter} failed: {reply.message}")
    return reply.ticket
