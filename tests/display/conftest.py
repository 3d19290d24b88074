"""Fixtures of the display tests: office clients and a display on the test office."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from display_support import Clients, DisplayUnderTest, ShiftedClock, connect_display

from broker.client import OfficeClient
from broker.contract import Role


@pytest.fixture
def clients(office: Any) -> Iterator[Clients]:
    """Open office clients for a test and stop them afterwards."""
    opened = Clients(office.site, [], office.data_dir)
    yield opened
    opened.stop_all()


@pytest.fixture
def kiosk(clients: Clients) -> OfficeClient:
    """A kiosk client that issues tickets."""
    return clients.open(Role.KIOSK, "kiosk-1")


@pytest.fixture
def officer(clients: Clients) -> OfficeClient:
    """An operator client that calls tickets at any counter."""
    return clients.open(Role.OPERATOR, "officer")


@pytest.fixture
def display(office: Any, clients: Clients) -> DisplayUnderTest:
    """A display controller on the test office, with current state and its own clock."""
    return connect_display(clients, office.site, ShiftedClock())
