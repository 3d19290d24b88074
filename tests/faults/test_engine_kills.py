"""The engine killed with SIGKILL during traffic and restarted, against a real
Mosquitto and SQLite file; longer runs: `python -m tests.faults --kills 200`."""

from __future__ import annotations

from pathlib import Path

from broker.contract import Command, CommandKind, Role
from tests.faults.fault_office import FaultOffice, issued_tickets
from tests.faults.fault_runs import run_kills


def test_kills_lose_no_command(tmp_path: Path) -> None:
    summary = run_kills(tmp_path, kills=4, seed=11)

    assert summary.lost_after_kill == 0
    assert summary.traffic.problems == ()
    assert summary.traffic.answered == summary.traffic.commands
    assert summary.traffic.tickets > 0


def test_unanswered_command_resent_same_id(tmp_path: Path) -> None:
    # With no engine subscribed yet the broker drops the command, so only a
    # resend can reach the engine once it starts.
    office = FaultOffice(tmp_path)
    office.start_broker()
    try:
        office.watch_engine()
        kiosk = office.client(Role.KIOSK, "kiosk-1")
        command = Command(CommandKind.ISSUE_TICKET, "resend-1", service="A")
        pending = kiosk.send(command, timeout=30)
        seen = office.start_engine()
        assert office.wait_engine_online(seen)
        reply = pending.result(timeout=40)
        again = kiosk.request(command)
    finally:
        office.close()

    assert reply.ok, reply.message
    assert kiosk.resends >= 1
    assert again.ticket is not None and reply.ticket is not None
    assert again.ticket.id == reply.ticket.id
    assert issued_tickets(office) == 1
