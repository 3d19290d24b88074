"""Mosquitto stopped and started again during traffic: clients come back by
themselves, commands apply once, and the hall display shows it is stale while
the broker is gone. Longer runs: `python -m tests.faults --restarts 20`."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kivy.clock import Clock as KivyClock

from broker.client import MAX_QUEUED_MESSAGES, OfficeClient
from broker.contract import Command, CommandKind, Role
from broker.site import load_site
from display.controller import DisplayController, Staleness
from tests.faults.fault_office import FaultOffice, Traffic, check_database, free_port
from tests.faults.fault_runs import run_broker_restarts


def _pump(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        KivyClock.tick()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_restart_applies_each_command_once(tmp_path: Path) -> None:
    summary = run_broker_restarts(tmp_path, restarts=1, seed=5)

    assert summary.traffic.problems == ()
    assert summary.traffic.answered == summary.traffic.commands
    assert summary.traffic.tickets > 0
    assert summary.stale_after_restart == 0
    assert summary.reconnect_max_s > 0


def test_display_stale_while_broker_down(tmp_path: Path) -> None:
    office = FaultOffice(tmp_path)
    office.start()
    traffic = Traffic(office, seed=9)
    controller = DisplayController(office.site, "hall")
    office.client(
        Role.DISPLAY,
        "hall",
        on_state=controller.post_state,
        on_link=controller.post_link,
        on_status=controller.post_status,
    )
    try:
        traffic.start()
        assert _pump(lambda: not controller.stale)
        office.stop_broker()
        down = _pump(lambda: controller.stale_reason == Staleness.DISCONNECTED)
        stale_while_down = controller.stale
        office.start_broker()
        back = _pump(lambda: not controller.stale)
        deliveries = traffic.stop()
        problems = check_database(office, deliveries)
    finally:
        traffic.stop()
        office.close()

    assert down
    assert stale_while_down is True
    assert controller.stale_detail_en == ""
    assert back
    assert problems == []
    assert all(delivery.reply is not None for delivery in deliveries)


def test_queued_command_survives_restart(tmp_path: Path) -> None:
    # The engine is away, so the command waits in the engine's persistent
    # session; Mosquitto saves it on SIGTERM and delivers it after the restart,
    # next to the kiosk's own resends of the same id.
    office = FaultOffice(tmp_path)
    office.start()
    try:
        office.stop_engine()
        kiosk = office.client(Role.KIOSK, "kiosk-2")
        command = Command(CommandKind.ISSUE_TICKET, "queued-1", service="D")
        pending = kiosk.send(command, timeout=40)
        office.stop_broker()
        office.start_broker()
        assert kiosk.wait_connected(30)
        time.sleep(2.0)
        seen = office.start_engine()
        assert office.wait_engine_online(seen)
        reply = pending.result(timeout=45)
        issued = office.read(
            "SELECT COUNT(*) FROM events WHERE kind = 'issue' AND command_id = ?",
            ("queued-1",),
        )
    finally:
        office.close()

    assert reply.ok, reply.message
    assert reply.ticket is not None
    assert reply.ticket.label == "D-001"
    assert kiosk.resends >= 1
    assert issued == [(1,)]


def test_full_queue_drops_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Never started, so every message waits in paho's queue as it would while
    # the broker is away.
    site = load_site().with_broker("127.0.0.1", free_port())
    client = OfficeClient(site, Role.DISPLAY, "hall")
    caplog.set_level(logging.WARNING, logger="broker.client")

    for number in range(MAX_QUEUED_MESSAGES + 2):
        client.publish(client.topics.state, f"{number}".encode())

    assert client.dropped == 2
    drops = [r for r in caplog.records if "dropped a message" in r.getMessage()]
    assert len(drops) == 1
