"""The TLS listener for the office's other machines, with a certificate from a local CA."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from broker.client import OfficeClient
from broker.contract import Role
from broker.mosquitto import start_mosquitto
from broker.security import SecurityError, tls_ca_path
from broker.site import Site, load_site
from broker.tls import create_certificates
from tests.conftest import free_port


def tls_site() -> Site:
    site = load_site().with_broker("127.0.0.1", free_port())
    broker = dataclasses.replace(site.broker, tls_host="127.0.0.1", tls_port=free_port())
    return dataclasses.replace(site, broker=broker)


def test_client_connects_over_tls(tmp_path: Path) -> None:
    site = tls_site()
    broker = start_mosquitto(site, tmp_path)
    kiosk = OfficeClient(site, Role.KIOSK, "kiosk-1", data_dir=tmp_path)
    try:
        kiosk.start()

        assert kiosk.wait_connected(10)
        assert kiosk.address == ("127.0.0.1", site.broker.tls_port)
    finally:
        kiosk.stop()
        broker.stop()


def test_certificate_names_the_listener(tmp_path: Path) -> None:
    site = tls_site()

    directory = create_certificates(site, tmp_path)

    context = ssl.create_default_context(cafile=str(directory / "ca.crt"))
    context.load_cert_chain(directory / "server.crt", directory / "server.key")
    assert (directory / "server.key").stat().st_mode & 0o777 == 0o600
    assert (directory / "ca.key").stat().st_mode & 0o777 == 0o600


def test_client_rejects_a_broker_signed_by_another_ca(tmp_path: Path) -> None:
    site = tls_site()
    broker = start_mosquitto(site, tmp_path / "office")
    # The client machine holds the CA of some other office.
    other = tmp_path / "other"
    create_certificates(site, other)
    (tmp_path / "client" / "credentials").mkdir(parents=True)
    for login in (tmp_path / "office" / "credentials").iterdir():
        (tmp_path / "client" / "credentials" / login.name).write_bytes(login.read_bytes())
    tls_ca_path(tmp_path / "client").parent.mkdir()
    tls_ca_path(tmp_path / "client").write_bytes(tls_ca_path(other).read_bytes())
    kiosk = OfficeClient(site, Role.KIOSK, "kiosk-1", data_dir=tmp_path / "client")
    try:
        kiosk.start()

        assert not kiosk.wait_connected(3)
    finally:
        kiosk.stop()
        broker.stop()


def test_client_without_ca_says_what_to_copy(tmp_path: Path) -> None:
    site = tls_site()

    with pytest.raises(SecurityError, match="Copy tls/ca.crt"):
        OfficeClient(site, Role.KIOSK, "kiosk-1", data_dir=tmp_path)


def test_tls_needs_a_port(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match="Add tls_host and tls_port"):
        create_certificates(load_site(), tmp_path)
