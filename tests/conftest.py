"""Fixtures shared by every test: a real Mosquitto on a free loopback port and a real engine."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# python-escpos leaves a temp dir behind at each import, and Kivy writes its
# config and logs under KIVY_HOME: keep both out of the user's folders.
_SCRATCH = Path(tempfile.mkdtemp(prefix="antrean-tests-"))
os.environ["TMPDIR"] = str(_SCRATCH)
tempfile.tempdir = None
os.environ.setdefault("KIVY_HOME", str(_SCRATCH / "kivy"))
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "offscreen")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from broker.client import OfficeClient  # noqa: E402
from broker.contract import Role  # noqa: E402
from broker.mosquitto import MosquittoProcess, start_mosquitto  # noqa: E402
from broker.service import EngineService  # noqa: E402
from broker.site import Site, load_site  # noqa: E402


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Office:
    """A running office for a test: broker, engine and their data directory."""

    site: Site
    data_dir: Path
    broker: MosquittoProcess
    engine: EngineService
    clients: list[OfficeClient] = field(default_factory=list)

    def client(self, role: Role, device: str, **options: Any) -> OfficeClient:
        """Connect a client with the device's own credentials; stopped at teardown."""
        client = OfficeClient(self.site, role, device, data_dir=self.data_dir, **options)
        client.start()
        if not client.wait_connected(10):
            client.stop()
            raise RuntimeError(f"{role.value} {device} did not connect to the test broker")
        self.clients.append(client)
        return client


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[tuple[Site, MosquittoProcess]]:
    """Start a Mosquitto of its own for one test, through the code `antrean up` uses.

    Its password file and ACL are written from the site file, and the devices'
    credentials land in tmp_path/data, the data directory the engine uses too.
    """
    site = load_site().with_broker("127.0.0.1", free_port())
    process = start_mosquitto(site, tmp_path / "data")
    yield site, process
    process.stop()


@pytest.fixture
def office(mosquitto: tuple[Site, MosquittoProcess], tmp_path: Path) -> Iterator[Office]:
    """Run the Lebong site's engine against the test's own Mosquitto."""
    site, process = mosquitto
    data_dir = tmp_path / "data"
    engine = EngineService(site, data_dir)
    engine.start()
    if not engine.wait_connected(10):
        raise RuntimeError("the engine did not connect to the test broker")
    running = Office(site, data_dir, process, engine)
    yield running
    for client in running.clients:
        client.stop()
    engine.stop()


def write_site_file(
    directory: Path, port: int, replace: dict[str, str] | None = None
) -> Path:
    """Write a copy of the bundled site file whose broker listens on `port`.

    `replace` maps exact lines of the bundled file to the lines that stand in
    for them, for tests of invalid files.
    """
    from broker.site import bundled_site_path

    text = bundled_site_path().read_text(encoding="utf-8")
    text = text.replace("port = 1883", f"port = {port}")
    for old, new in (replace or {}).items():
        if old not in text:
            raise ValueError(f"{old!r} is not a line of the bundled site file")
        text = text.replace(old, new)
    path = directory / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path
