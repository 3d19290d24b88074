"""Mosquitto's config and process control."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.mosquitto import (
    BrokerError,
    MosquittoProcess,
    ensure_broker,
    start_mosquitto,
    write_config,
)
from broker.site import Site, load_site
from tests.conftest import free_port


def test_config_comes_from_the_site(tmp_path: Path) -> None:
    site = load_site().with_broker("127.0.0.1", 18555)

    path = write_config(site, tmp_path)
    lines = path.read_text().splitlines()

    assert "listener 18555 127.0.0.1" in lines
    assert "allow_anonymous false" in lines
    assert "set_tcp_nodelay true" in lines
    assert f"persistence_location {tmp_path / 'mosquitto' / 'persistence'}/" in lines
    assert (tmp_path / "mosquitto" / "persistence").is_dir()
    assert (tmp_path / "mosquitto" / "acl").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "mosquitto" / "passwords").stat().st_mode & 0o777 == 0o600


def test_running_broker_is_reused(mosquitto: tuple[Site, MosquittoProcess], tmp_path: Path) -> None:
    site, _ = mosquitto

    assert ensure_broker(site, tmp_path / "other") is None
    assert not (tmp_path / "other" / "mosquitto" / "mosquitto.conf").exists()


def test_broker_that_cannot_listen_reports_its_log(tmp_path: Path) -> None:
    # Not an IPv4 address at all, so Mosquitto cannot open the listener.
    site = load_site().with_broker("256.0.0.1", free_port())

    with pytest.raises(BrokerError, match="Mosquitto exited with code"):
        start_mosquitto(site, tmp_path)


def test_broker_persists_across_restart(tmp_path: Path) -> None:
    site = load_site().with_broker("127.0.0.1", free_port())
    first = start_mosquitto(site, tmp_path)
    first.stop()

    second = start_mosquitto(site, tmp_path)
    second.stop()

    assert (tmp_path / "mosquitto" / "persistence" / "mosquitto.db").exists()
