"""The largest office a site may describe: its state must still reach every client."""

from __future__ import annotations

import itertools
import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broker import contract
from broker.bench_office import office_site_data
from broker.commands import Source
from broker.contract import (
    MAX_PAYLOAD_BYTES,
    MAX_STATE_BYTES,
    Command,
    CommandKind,
    Role,
)
from broker.engine import Engine
from broker.site import MAX_COUNTER_NAME, MAX_COUNTERS, SiteError, parse_site
from broker.store import Store
from tests.conftest import Office

# A weekday at 10:00 in Jakarta.
NOW = datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
OPERATOR = Source(Role.OPERATOR, "test")


def _site_data(counters: int, name_length: int = MAX_COUNTER_NAME) -> dict:
    """Return a site of this many counters, each name `name_length` characters."""
    data = office_site_data(counters, kiosks=2, port=1883)
    for counter in data["counters"]:
        counter["name"] = f"Loket {counter['number']}".ljust(name_length, ".")
    return data


def test_site_rejects_too_many_counters(tmp_path: Path) -> None:
    with pytest.raises(SiteError) as error:
        parse_site(_site_data(MAX_COUNTERS + 1), tmp_path / "site.toml")

    assert f"more than the {MAX_COUNTERS}" in str(error.value)


def test_site_rejects_long_counter_name(tmp_path: Path) -> None:
    data = _site_data(2, name_length=MAX_COUNTER_NAME + 1)

    with pytest.raises(SiteError) as error:
        parse_site(data, tmp_path / "site.toml")

    assert f"more than {MAX_COUNTER_NAME}" in str(error.value)


def test_largest_office_state_fits(tmp_path: Path) -> None:
    site = parse_site(_site_data(MAX_COUNTERS), tmp_path / "site.toml")
    store = Store(tmp_path / "antrean.sqlite")
    engine = Engine(site, store, clock=lambda: NOW)
    ids = itertools.count()
    kiosk = Source(Role.KIOSK, site.kiosks[0].id)
    # Every counter serves a ticket, and twice as many wait behind them.
    for index in range(3 * MAX_COUNTERS):
        service = site.services[index % len(site.services)].code
        command = Command(CommandKind.ISSUE_TICKET, f"t{next(ids)}", service=service)
        assert engine.handle(command, kiosk).reply.ok
    for counter in site.counters:
        command = Command(CommandKind.NEXT, f"n{next(ids)}", counter=counter.number)
        assert engine.handle(command, OPERATOR).reply.ok

    payload = contract.encode(engine.snapshot())
    state = contract.decode_state(payload)
    store.close()

    assert len(payload) > MAX_PAYLOAD_BYTES
    assert len(payload) < MAX_STATE_BYTES
    assert len(state.counters) == MAX_COUNTERS
    assert all(counter.current is not None for counter in state.counters)


def test_state_limit_applies_to_state_only() -> None:
    command = b'{"id": "x", "type": "next", "counter": 1, "pad": "' + b" " * (
        MAX_PAYLOAD_BYTES
    ) + b'"}'

    with pytest.raises(contract.ContractError, match="exceeds the limit"):
        contract.decode_command(command)


def test_oversized_state_not_published(
    office: Office, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Mosquitto drops a client that publishes over its payload limit, so the
    # engine must keep such a state to itself.
    monkeypatch.setattr(contract, "MAX_STATE_BYTES", 100)

    with caplog.at_level(logging.ERROR, logger="broker.service"):
        office.engine.publish_state()

    assert "Not publishing an office state" in caplog.text
    assert office.engine.client.connected
