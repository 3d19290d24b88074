"""Mosquitto's config and process control."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.mosquitto import BrokerError, MosquittoProcess, ensure_broker, start_mosquitto, write_config
from broker.site import BrokerAddress, Site
from tests.conftest import free_port


def test_config_comes_from_the_site_address(tmp_path: Path) -> None:
    path = write_config(BrokerAddress("127.0.0.1", 18555), tmp_path)
    lines = path.read_text().splitlines()

    assert "listener 18555 127.0.0.1" in lines
    assert "set_tcp_nodelay true" in lines
    assert f"persistence_location {tmp_path / 'persistence'}/" in lines
    assert (tmp_path / "persistence").is_dir()


def test_running_broker_is_reused(mosquitto: tuple[Site, MosquittoProcess], tmp_path: Path) -> None:
    site, _ = mosquitto

    assert ensure_broker(site.broker, tmp_path / "other") is None
    assert not (tmp_path / "other" / "mosquitto.conf").exists()


def test_broker_that_cannot_listen_reports_its_log(tmp_path: Path) -> None:
    # Not an IPv4 address at all, so Mosquitto cannot open the listener.
    address = BrokerAddress("256.0.0.1", free_port())

    with pytest.raises(BrokerError, match="Mosquitto exited with code"):
        start_mosquitto(address, tmp_path)


def test_broker_persists_across_restart(tmp_path: Path) -> None:
    address = BrokerAddress("127.0.0.1", free_port())
    first = start_mosquitto(address, tmp_path)
    first.stop()

    second = start_mosquitto(address, tmp_path)
    second.stop()

    assert (tmp_path / "persistence" / "mosquitto.db").exists()
