"""A kiosk whose serial printer runs out of paper, against a real engine and a
socat pty printer: the applicant sees a message, no ghost ticket waits, and a
reprint from a counter brings the ticket back and prints it again."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kiosk_support import StateWatcher, ticket_status
from kivy.clock import Clock
from pty_printer import FakeSerialPrinter, SocatPtyPair

from broker.client import new_command_id
from broker.contract import Command, CommandKind, DeviceStatus, Role, TicketStatus
from kiosk import messages
from kiosk.controller import KioskController, ScreenName

DEADLINE_S = 15.0
ONLINE = {1: 0x12, 4: 0x12}
PAPER_OUT = {1: 0x12, 4: 0x72}
PAPER_LOW = {1: 0x12, 4: 0x1E}
CUT = b"\x1dV"


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        Clock.tick()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


class PaperRunsOut(FakeSerialPrinter):
    """A printer that reports paper out from the first ticket it receives on."""

    def _answer_requests(self, pending: bytearray) -> bytearray:
        if CUT in self.received():
            self.replies = PAPER_OUT
        return super()._answer_requests(pending)


@pytest.fixture
def serial_kiosk(office, pty_pair: SocatPtyPair) -> Iterator[KioskController]:
    base = office.site.kiosks[0]
    printer = dataclasses.replace(
        base.printer, spec=f"serial:{pty_pair.printer_path}?timeout=1"
    )
    controller = KioskController(
        office.site, dataclasses.replace(base, printer=printer), office.data_dir
    )
    controller.start()
    yield controller
    controller.stop()


@pytest.fixture
def state(office) -> StateWatcher:
    return StateWatcher(office)


def test_paper_out_after_printing_leaves_no_ghost(
    office, pty_pair: SocatPtyPair, serial_kiosk: KioskController, state: StateWatcher
) -> None:
    fake = PaperRunsOut(pty_pair.host_path, dict(ONLINE))
    try:
        assert wait_until(lambda: serial_kiosk.online)
        assert wait_until(lambda: bool(serial_kiosk.remaining))
        started = time.monotonic()
        assert serial_kiosk.issue("A")

        assert wait_until(lambda: serial_kiosk.screen == ScreenName.NOTICE)
        message_after_s = time.monotonic() - started
        assert serial_kiosk.notice == messages.PRINT_FAILED
        assert serial_kiosk.notice_label == "A-001"
        assert serial_kiosk.printer_status == "paper_out"
        assert wait_until(lambda: ticket_status(office, "A-001") == "not_printed")
        assert state.wait_for(lambda s: s.service("A").issued == 1)
        assert state.wait_for(lambda s: s.service("A").waiting_normal == 0)
        print(f"paper-out message after {message_after_s:.2f} s")
    finally:
        fake.stop()


def test_reprint_puts_ticket_back_and_prints(
    office, pty_pair: SocatPtyPair, serial_kiosk: KioskController, state: StateWatcher
) -> None:
    fake = PaperRunsOut(pty_pair.host_path, dict(ONLINE))
    try:
        assert wait_until(lambda: serial_kiosk.online)
        assert wait_until(lambda: bool(serial_kiosk.remaining))
        serial_kiosk.issue("B")
        assert wait_until(lambda: serial_kiosk.screen == ScreenName.NOTICE)
        assert wait_until(lambda: ticket_status(office, "B-001") == "not_printed")
        assert state.wait_for(lambda s: s.service("B").waiting_normal == 0)
        first_copy = len(fake.received())
    finally:
        fake.stop()

    # The paper is refilled, so the printer reports online again.
    refilled = FakeSerialPrinter(pty_pair.host_path, dict(ONLINE))
    try:
        operator = office.client(Role.OPERATOR, "staff")
        command = Command(
            CommandKind.REPRINT, new_command_id("test"), ticket="B-001", counter=1
        )
        reply = operator.request(command)
        assert reply.ok, reply.message

        assert state.wait_for(lambda s: s.service("B").waiting_normal == 1)
        assert ticket_status(office, "B-001") == "waiting"
        assert wait_until(lambda: b"CETAK ULANG" in refilled.received())
        assert b"B-001" in refilled.received()
        assert first_copy > 0
        view = reply.ticket
        assert view.status is TicketStatus.WAITING
    finally:
        refilled.stop()


def test_paper_out_before_printing_issues_nothing(
    office, pty_pair: SocatPtyPair, serial_kiosk: KioskController, state: StateWatcher
) -> None:
    fake = FakeSerialPrinter(pty_pair.host_path, dict(PAPER_OUT))
    try:
        assert wait_until(lambda: serial_kiosk.online)
        assert wait_until(lambda: bool(serial_kiosk.remaining))
        serial_kiosk.issue("C")

        assert wait_until(lambda: serial_kiosk.screen == ScreenName.NOTICE)
        assert serial_kiosk.notice == messages.PAPER_OUT
        assert serial_kiosk.notice_label == ""
        assert state.wait_for(lambda s: s.service("C").issued == 0)
        assert ticket_status(office, "C-001") is None
        assert CUT not in fake.received()
    finally:
        fake.stop()


def test_silent_printer_told_and_nothing_issued(
    office, pty_pair: SocatPtyPair, serial_kiosk: KioskController
) -> None:
    fake = FakeSerialPrinter(pty_pair.host_path, {})
    try:
        assert wait_until(lambda: serial_kiosk.online)
        assert wait_until(lambda: bool(serial_kiosk.remaining))
        started = time.monotonic()
        serial_kiosk.issue("D")

        assert wait_until(lambda: serial_kiosk.screen == ScreenName.NOTICE)
        print(f"silent-printer message after {time.monotonic() - started:.2f} s")
        assert serial_kiosk.notice == messages.PRINTER_DOWN
        assert serial_kiosk.printer_status == "offline"
        assert ticket_status(office, "D-001") is None
    finally:
        fake.stop()


def test_paper_low_published_in_status(
    office, pty_pair: SocatPtyPair, serial_kiosk: KioskController, state: StateWatcher
) -> None:
    statuses: list[DeviceStatus] = []
    low = threading.Event()

    def collect(status: DeviceStatus) -> None:
        if status.role is Role.KIOSK and status.detail.get("printer") == "paper_low":
            statuses.append(status)
            low.set()

    office.client(Role.OPERATOR, "watch", on_status=collect)
    fake = FakeSerialPrinter(pty_pair.host_path, dict(PAPER_LOW))
    try:
        assert wait_until(lambda: serial_kiosk.online)
        assert wait_until(lambda: bool(serial_kiosk.remaining))
        serial_kiosk.issue("A")

        assert wait_until(lambda: serial_kiosk.screen == ScreenName.TICKET)
        assert low.wait(DEADLINE_S)
        assert statuses[-1].device == "kiosk-1"
        assert serial_kiosk.printer_text == messages.PRINTER_WARNINGS["paper_low"]
        assert state.wait_for(lambda s: s.service("A").waiting_normal == 1)
    finally:
        fake.stop()
