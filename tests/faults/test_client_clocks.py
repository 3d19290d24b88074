"""Clients whose clocks are wrong change nothing: tickets carry the engine's time.

The skewed clients run under libfaketime (`faketime -f +7m`), which shifts
every clock call of the process, Python's included.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kivy.clock import Clock as KivyClock

from broker.client import Link, new_command_id
from broker.contract import Command, CommandKind, OfficeState, Role
from broker.site import load_site
from display.controller import DisplayController, Staleness
from tests.conftest import Office, write_site_file
from tests.faults.fault_office import REPO

SKEW = timedelta(minutes=7)
# Far below the skew, and far above a request's round trip on loopback.
TOLERANCE = timedelta(seconds=60)

_KIOSK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from broker.client import OfficeClient, new_command_id
    from broker.contract import Command, CommandKind, Role
    from broker.site import load_site

    site = load_site().with_broker("127.0.0.1", int(sys.argv[1]))
    client = OfficeClient(site, Role.KIOSK, "kiosk-1", data_dir=Path(sys.argv[2]))
    client.start()
    assert client.wait_connected(10), "kiosk did not connect"
    command = Command(CommandKind.ISSUE_TICKET, new_command_id("skewed"), service="C")
    reply = client.request(command)
    client.stop()
    print(json.dumps({
        "local_now": datetime.now(UTC).isoformat(),
        "ok": reply.ok,
        "label": reply.ticket.label if reply.ticket else None,
        "issued_at": reply.ticket.issued_at.isoformat() if reply.ticket else None,
    }))
    """
)


def _faketime() -> str:
    path = shutil.which("faketime")
    if path is None:
        pytest.skip("faketime is not installed; ./scripts/install adds it")
    return path


def _skewed(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_faketime(), "-f", "+7m", *command],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _engine_now(office: Office) -> datetime:
    return office.engine.engine.clock()


def _issued_at(office: Office, label: str) -> datetime:
    rows = office.engine.store.db.execute(
        "SELECT issued_at FROM tickets WHERE label = ?", [label]
    ).fetchall()
    assert len(rows) == 1, f"{label} is stored {len(rows)} times"
    return datetime.fromisoformat(rows[0][0])


def test_fast_kiosk_clock_ignored(office: Office) -> None:
    before = _engine_now(office)
    run = _skewed(
        sys.executable,
        "-c",
        _KIOSK_SCRIPT,
        str(office.site.broker.port),
        str(office.data_dir),
    )
    after = _engine_now(office)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    issued_at = datetime.fromisoformat(result["issued_at"])

    assert datetime.fromisoformat(result["local_now"]) - after > SKEW - TOLERANCE
    assert result["ok"] is True
    assert result["label"] == "C-001"
    assert before <= issued_at <= after
    assert _issued_at(office, "C-001") == issued_at


def test_fast_cli_clock_ignored(office: Office, tmp_path: Path) -> None:
    site_file = write_site_file(tmp_path, office.site.broker.port)
    before = _engine_now(office)
    run = _skewed(
        sys.executable,
        "-m",
        "broker",
        "ticket",
        "D",
        "--site",
        str(site_file),
        "--data-dir",
        str(office.data_dir),
    )
    after = _engine_now(office)
    received = office.engine.store.db.execute(
        "SELECT received_at FROM commands WHERE kind = 'issue_ticket'"
    ).fetchall()

    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("D-001")
    assert before <= _issued_at(office, "D-001") <= after
    assert len(received) == 1
    assert before <= datetime.fromisoformat(received[0][0]) <= after


def test_fast_kiosk_keeps_queue_order(office: Office) -> None:
    # A ticket taken a moment later at a correct kiosk still queues behind the
    # one from the fast kiosk, because arrival order is the engine's order.
    run = _skewed(
        sys.executable,
        "-c",
        _KIOSK_SCRIPT,
        str(office.site.broker.port),
        str(office.data_dir),
    )
    assert run.returncode == 0, run.stderr
    kiosk = office.client(Role.KIOSK, "kiosk-2")
    kiosk.request(Command(CommandKind.ISSUE_TICKET, new_command_id("t"), service="C"))
    operator = office.client(Role.OPERATOR, "clock-test")
    called = operator.request(Command(CommandKind.NEXT, new_command_id("n"), counter=4))

    assert called.ok, called.message
    assert called.ticket is not None
    assert called.ticket.label == "C-001"


class _SkewedClock:
    """This machine's time plus a skew that the test can move."""

    def __init__(self, skew: timedelta) -> None:
        self.skew = skew

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.skew

    def advance(self, seconds: float) -> None:
        self.skew += timedelta(seconds=seconds)


def _pump(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        KivyClock.tick()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_fast_display_clock_fresh(office: Office) -> None:
    controller = DisplayController(office.site, "hall", now=_SkewedClock(SKEW))
    office.client(
        Role.DISPLAY,
        "hall",
        on_state=controller.post_state,
        on_link=controller.post_link,
        on_status=controller.post_status,
    )

    assert _pump(lambda: controller.stale_reason != Staleness.DISCONNECTED)
    assert _pump(lambda: not controller.stale)
    assert controller.stale_reason == Staleness.FRESH


@pytest.mark.parametrize("skew", [SKEW, -SKEW])
def test_skewed_display_sees_silence(skew: timedelta) -> None:
    clock = _SkewedClock(skew)
    controller = DisplayController(load_site(), "hall", now=clock)
    controller.apply_link(Link.CONNECTED)
    engine_now = datetime.now(UTC)
    day = engine_now.astimezone(controller.site.timezone).date().isoformat()
    controller.apply_state(OfficeState(site="lebong", at=engine_now, day=day))
    fresh = controller.stale_reason

    clock.advance(16.0)
    controller.tick()

    assert fresh == Staleness.FRESH
    assert controller.stale_reason == Staleness.OLD_STATE
