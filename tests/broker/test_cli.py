"""The antrean command, run as a user would: `antrean up --headless` and thin clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.cli import build_parser
from broker.mosquitto import is_listening
from broker.site import load_site
from tests.conftest import free_port, write_site_file


def antrean(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def headless(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Run `antrean up --headless` on a free port; yield its site file and data dir."""
    site_file = write_site_file(tmp_path, free_port())
    data_dir = tmp_path / "data"
    log = open(tmp_path / "up.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "up", "--headless", "--site", str(site_file), "--data-dir", str(data_dir)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 20
    while "is running" not in (tmp_path / "up.log").read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"antrean up did not start: {(tmp_path / 'up.log').read_text()}")
        time.sleep(0.05)
    yield site_file, data_dir
    # SIGTERM lets antrean up stop the Mosquitto it started.
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def test_headless_office_serves_thin_clients(headless: tuple[Path, Path]) -> None:
    site_file, data_dir = headless
    where = ["--site", str(site_file), "--data-dir", str(data_dir)]

    ticket = antrean("ticket", "A", *where)
    priority = antrean("ticket", "b", "--priority", "lansia", *where)
    called = antrean("next", "2", *where)
    status = antrean("status", "--json", *where)

    assert ticket.returncode == 0, ticket.stderr
    assert ticket.stdout.startswith("A-001")
    assert priority.stdout.startswith("B-001 [PRIORITAS: lansia]")
    assert "A-001 called to Loket 2" in called.stdout
    state = json.loads(status.stdout)
    assert state["counters"][1]["current"]["label"] == "A-001"
    assert state["services"][1]["waiting_priority"] == 1
    assert (data_dir / "antrean.sqlite").exists()


def test_rejected_command_exits_non_zero(headless: tuple[Path, Path]) -> None:
    site_file, data_dir = headless

    result = antrean("next", "3", "--site", str(site_file), "--data-dir", str(data_dir))

    assert result.returncode == 1
    assert "Nobody is waiting for Loket 3" in result.stderr


def test_plain_status_lists_counters(headless: tuple[Path, Path]) -> None:
    site_file, data_dir = headless
    antrean("ticket", "C", "--site", str(site_file), "--data-dir", str(data_dir))

    result = antrean("status", "--site", str(site_file), "--data-dir", str(data_dir))

    assert result.returncode == 0
    assert "Loket 4" in result.stdout
    assert "Pengambilan Paspor" in result.stdout


def test_up_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    site_file = write_site_file(tmp_path, port)
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "up", "--headless", "--site", str(site_file), "--data-dir", str(tmp_path / "d")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    site = load_site(site_file)
    deadline = time.monotonic() + 20
    while not is_listening(site.broker) and time.monotonic() < deadline:
        time.sleep(0.05)

    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)

    assert process.returncode == 0, stderr
    assert "Stopped Mosquitto" in stderr
    assert not is_listening(site.broker)


def test_client_without_credentials_is_rejected(headless: tuple[Path, Path], tmp_path: Path) -> None:
    site_file, _ = headless

    result = antrean("ticket", "A", "--site", str(site_file), "--data-dir", str(tmp_path / "elsewhere"))

    assert result.returncode == 1
    assert "rejected the operator login" in result.stderr
    assert "--data-dir" in result.stderr


def test_client_without_office_says_how_to_start_it(tmp_path: Path) -> None:
    site_file = write_site_file(tmp_path, free_port())

    result = antrean("ticket", "A", "--site", str(site_file))

    assert result.returncode == 1
    assert "Start the office with `antrean up` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_subcommand_has_help() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command")

    for name, sub in subparsers.choices.items():
        assert any(choice.dest == name and choice.help for choice in subparsers._choices_actions), name
        for action in sub._actions:
            assert action.help, f"{name} {action.dest} has no help text"


def test_default_data_dir_follows_xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from broker.cli import default_data_dir

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))

    assert default_data_dir(load_site()) == tmp_path / "antrean" / "lebong"
    assert os.path.isabs(default_data_dir(load_site()))


def test_broker_credentials_writes_private_logins(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"

    first = antrean("broker", "credentials", "--data-dir", str(data_dir))
    again = antrean("broker", "credentials", "--data-dir", str(data_dir))
    login = data_dir / "credentials" / "counter-2.json"
    before = login.read_text()
    rotated = antrean("broker", "credentials", "--rotate", "--data-dir", str(data_dir))

    assert first.returncode == 0, first.stderr
    assert "counter-2" in first.stdout
    assert "already has a login" in again.stdout
    assert rotated.returncode == 0
    assert login.read_text() != before
    assert login.stat().st_mode & 0o777 == 0o600
    assert (data_dir / "mosquitto" / "acl").exists()
