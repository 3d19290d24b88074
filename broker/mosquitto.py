"""Mosquitto for one office: its config written from the site file, and its process.

`ensure_broker` is what `antrean up` and the test fixtures call: it uses a
broker already listening at the site's address, or writes a config into the
data directory and starts Mosquitto with it.
"""

from __future__ import annotations

import ctypes
import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from broker.contract import MAX_STATE_BYTES
from broker.errors import AntreanError
from broker.security import tls_ca_path, write_access_files
from broker.site import BrokerAddress, Site
from broker.tls import create_certificates

_LOGGER = logging.getLogger(__name__)

BROKER_DIR = "mosquitto"
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
# The largest payload is the office state; a larger one is a bug or an attack.
MESSAGE_SIZE_LIMIT = MAX_STATE_BYTES
_PR_SET_PDEATHSIG = 1


class BrokerError(AntreanError):
    """Mosquitto cannot be found, configured or started."""


def find_mosquitto() -> str:
    """Return the path of the mosquitto executable."""
    for candidate in (
        shutil.which("mosquitto"),
        "/usr/sbin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise BrokerError(
        "mosquitto is not installed. Install it with: sudo apt-get install mosquitto"
    )


def is_listening(address: BrokerAddress, timeout: float = 0.5) -> bool:
    """Tell whether something accepts TCP connections at the address."""
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            return True
    except OSError:
        return False


def write_config(site: Site, data_dir: Path) -> Path:
    """Write mosquitto.conf, the password file and the ACL; return the config's path.

    Everything goes under data_dir/mosquitto. Anonymous clients are rejected:
    each device connects with its own credentials from data_dir/credentials.
    """
    address = site.broker
    directory = data_dir / BROKER_DIR
    directory.mkdir(parents=True, exist_ok=True)
    persistence = directory / "persistence"
    persistence.mkdir(exist_ok=True)
    password_file, acl_file = write_access_files(site, data_dir, directory)
    lines = [
        "# Written by antrean from the site file; changes here are overwritten.",
        "per_listener_settings false",
        "allow_anonymous false",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        f"listener {address.port} {address.host}",
    ]
    if address.tls_port:
        certificates = tls_ca_path(data_dir).parent
        if not (certificates / "server.crt").exists():
            create_certificates(site, data_dir)
        lines += [
            f"listener {address.tls_port} {address.tls_host}",
            f"cafile {certificates / 'ca.crt'}",
            f"certfile {certificates / 'server.crt'}",
            f"keyfile {certificates / 'server.key'}",
            "tls_version tlsv1.2",
        ]
    lines += [
        "persistence true",
        f"persistence_location {persistence}/",
        "autosave_interval 30",
        # Without it a request and its reply on one machine can take ~80 ms.
        "set_tcp_nodelay true",
        f"message_size_limit {MESSAGE_SIZE_LIMIT}",
        "max_queued_messages 10000",
        # Run as whoever runs antrean, so the data directory stays theirs
        # (as root, Mosquitto would otherwise switch to the mosquitto user).
        f"user {getpass.getuser()}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_timestamp_format %Y-%m-%dT%H:%M:%S",
        "",
    ]
    path = directory / "mosquitto.conf"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@dataclass
class MosquittoProcess:
    """A Mosquitto started by antrean, with its log file."""

    process: subprocess.Popen[bytes]
    address: BrokerAddress
    log_path: Path

    def stop(self) -> None:
        """Stop the broker (it saves its persistence file first) and wait for it."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            _LOGGER.warning(
                "Mosquitto (pid %d) did not stop in %.0f s; killing it",
                self.process.pid,
                STOP_TIMEOUT_S,
            )
            self.process.kill()
            self.process.wait()
        _LOGGER.info("Stopped Mosquitto (pid %d)", self.process.pid)


def _stop_with_parent() -> None:
    # Runs in the child before exec: Linux sends it SIGTERM when the process
    # that started it dies, even by SIGKILL, so no broker outlives its office.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_mosquitto(site: Site, data_dir: Path) -> MosquittoProcess:
    """Write the config and start Mosquitto; return once it accepts connections."""
    executable = find_mosquitto()
    address = site.broker
    config = write_config(site, data_dir)
    log_path = config.parent / "mosquitto.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [executable, "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_stop_with_parent,
            # Its own session, so Ctrl+C in the terminal reaches antrean up
            # alone, which stops the engine before the broker.
            start_new_session=True,
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
            raise BrokerError(
                f"Mosquitto exited with code {process.returncode} at start-up: {' | '.join(tail)}. See {log_path}."
            )
        if is_listening(address, timeout=0.2):
            _LOGGER.info(
                "Started Mosquitto (pid %d) on %s:%d",
                process.pid,
                address.host,
                address.port,
            )
            return MosquittoProcess(process, address, log_path)
        time.sleep(0.02)
    process.kill()
    process.wait()
    raise BrokerError(
        f"Mosquitto did not listen on {address.host}:{address.port} within {START_TIMEOUT_S:.0f} s. See {log_path}."
    )


def ensure_broker(site: Site, data_dir: Path) -> MosquittoProcess | None:
    """Use the broker already at the site's address, or start one.

    Returns None when a broker was already listening there.
    """
    address = site.broker
    if is_listening(address):
        _LOGGER.info(
            "Using the MQTT broker already listening on %s:%d",
            address.host,
            address.port,
        )
        return None
    return start_mosquitto(site, data_dir)
