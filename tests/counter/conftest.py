"""Fixtures of the counter tests: a kiosk that issues tickets and counter 2."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from counter_helpers import WAIT_S, open_controller

from broker.client import OfficeClient
from broker.contract import DeviceStatus, Role
from counter.controller import CounterController


@pytest.fixture
def kiosk(office) -> Iterator[OfficeClient]:
    """A kiosk's OfficeClient connected to the test office.

    The fixture returns once the kiosk has received the engine's retained
    online status, as the counter controller requires before it sends.
    """
    engine_online = threading.Event()

    def watch_engine(status: DeviceStatus) -> None:
        if status.role is Role.ENGINE and status.online:
            engine_online.set()

    client = OfficeClient(
        office.site, Role.KIOSK, "kiosk-1", on_status=watch_engine, data_dir=office.data_dir
    )
    client.start()
    if not client.wait_connected(WAIT_S) or not engine_online.wait(WAIT_S):
        client.stop()
        raise RuntimeError("the kiosk client did not see the engine online")
    yield client
    client.stop()


@pytest.fixture
def counter2(office) -> Iterator[CounterController]:
    """Counter 2 of the Lebong site (services A and B, normal lane only), connected."""
    controller = open_controller(office, 2)
    yield controller
    controller.stop()
