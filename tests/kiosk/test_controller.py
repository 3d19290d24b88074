"""KioskController against a real Mosquitto and engine, without a window."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kiosk_support import ticket_status
from kivy.clock import Clock

from broker.client import OfficeClient, new_command_id
from broker.contract import Command, CommandKind, DeviceStatus, Role
from broker.mosquitto import start_mosquitto
from broker.site import Kiosk, Lane, PrinterConfig, Site
from kiosk import controller as controller_module
from kiosk import messages
from kiosk.controller import (
    KioskController,
    ScreenName,
    printer_spec_for,
    select_kiosk,
)
from kiosk.errors import KioskError

DEADLINE_S = 15.0


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
    """Run the Kivy clock until the condition holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        Clock.tick()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def ticket_files(data_dir: Path) -> list[Path]:
    directory = data_dir / "tickets"
    if not directory.is_dir():
        return []
    return sorted(directory.glob("*.escpos"))


def make_controller(site: Site, data_dir: Path, kiosk: Kiosk | None = None):
    controller = KioskController(site, kiosk or site.kiosks[0], data_dir)
    controller.start()
    return controller


@pytest.fixture
def kiosk(office) -> Iterator[KioskController]:
    controller = make_controller(office.site, office.data_dir)
    if not wait_until(lambda: controller.online and bool(controller.remaining)):
        raise RuntimeError("the kiosk did not receive the office state")
    yield controller
    controller.stop()


def test_issue_prints_ticket_file(kiosk, office):
    assert kiosk.issue("A")
    assert kiosk.busy
    assert kiosk.screen == ScreenName.WAIT

    assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)
    assert kiosk.ticket_label == "A-001"
    assert kiosk.ticket_service_id == "Paspor Baru"
    assert not kiosk.ticket_priority
    assert kiosk.people_ahead == 0
    assert not kiosk.busy
    files = ticket_files(office.data_dir)
    assert len(files) == 1
    assert b"A-001" in files[0].read_bytes()


def test_issue_updates_remaining(kiosk):
    assert kiosk.remaining["A"] == 60

    kiosk.issue("A")

    assert wait_until(lambda: kiosk.remaining.get("A") == 59)
    assert kiosk.remaining["B"] == 60


def test_people_ahead_counts_waiting(kiosk):
    kiosk.issue("A")
    assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)
    assert wait_until(kiosk.dismiss)

    kiosk.issue("A")

    assert wait_until(lambda: kiosk.ticket_label == "A-002")
    assert kiosk.people_ahead == 1


def test_priority_ticket(kiosk, office):
    assert kiosk.open_priority()
    assert kiosk.screen == ScreenName.CATEGORIES
    assert kiosk.choose_category("lansia")
    assert kiosk.screen == ScreenName.PRIORITY_SERVICES
    assert kiosk.category_name_id == "Lansia (60 tahun ke atas)"

    assert kiosk.issue("B")

    assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)
    assert kiosk.ticket_label == "B-001"
    assert kiosk.ticket_priority
    assert kiosk.ticket_category_id == "Lansia (60 tahun ke atas)"
    assert kiosk.last_ticket.lane is Lane.PRIORITY
    assert kiosk.last_ticket.category == "lansia"
    data = ticket_files(office.data_dir)[0].read_bytes()
    assert b"B-001" in data
    assert b"PRIORITAS" in data


def test_home_forgets_category(kiosk):
    kiosk.open_priority()
    kiosk.choose_category("balita")

    assert kiosk.go_home()

    assert kiosk.screen == ScreenName.HOME
    assert kiosk.category == ""
    kiosk.issue("C")
    assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)
    assert kiosk.last_ticket.lane is Lane.NORMAL


def test_back_from_priority_services(kiosk):
    kiosk.open_priority()
    kiosk.choose_category("ibu_hamil")

    kiosk.go_back()
    assert kiosk.screen == ScreenName.CATEGORIES

    kiosk.go_back()
    assert kiosk.screen == ScreenName.HOME


def test_unknown_category_changes_nothing(kiosk):
    kiosk.open_priority()

    assert not kiosk.choose_category("vip")

    assert kiosk.screen == ScreenName.CATEGORIES
    assert kiosk.category == ""


def test_unknown_service_shows_message(kiosk, office):
    assert kiosk.issue("Z")

    assert wait_until(lambda: kiosk.screen == ScreenName.NOTICE)
    assert "'Z' does not exist" in kiosk.notice_detail
    assert kiosk.notice == "This service is not offered at this office."
    assert kiosk.notice_label == ""
    assert not kiosk.busy
    assert ticket_files(office.data_dir) == []


def test_quota_reached_shows_message(kiosk, office):
    issuer = OfficeClient(office.site, Role.OPERATOR, "quota-test", data_dir=office.data_dir)
    issuer.start()
    assert issuer.wait_connected(10)
    try:
        for _ in range(60):
            command = Command(
                CommandKind.ISSUE_TICKET, new_command_id("test"), service="A"
            )
            assert issuer.request(command).ok
    finally:
        issuer.stop()
    assert wait_until(lambda: kiosk.remaining.get("A") == 0)

    assert not kiosk.issue("A")

    assert kiosk.screen == ScreenName.NOTICE
    assert kiosk.notice == messages.QUOTA_REACHED
    assert not kiosk.busy
    assert ticket_files(office.data_dir) == []
    assert ticket_status(office, "A-061") is None


def test_engine_unreachable_shows_offline(kiosk, office):
    office.engine.stop()

    kiosk.issue("A")

    assert wait_until(lambda: kiosk.screen == ScreenName.NOTICE)
    assert kiosk.notice == messages.UNREACHABLE
    assert not kiosk.busy
    assert ticket_files(office.data_dir) == []


def test_broker_down_then_back(kiosk, office, tmp_path):
    office.broker.stop()
    assert wait_until(lambda: not kiosk.connected)
    assert kiosk.connection_text == messages.DISCONNECTED
    assert not kiosk.online

    assert not kiosk.issue("A")
    assert kiosk.screen == ScreenName.NOTICE
    assert kiosk.notice == messages.UNREACHABLE
    assert ticket_files(office.data_dir) == []
    assert wait_until(kiosk.dismiss)

    broker = start_mosquitto(office.site, office.data_dir)
    try:
        assert wait_until(lambda: kiosk.online, timeout=30)
        assert kiosk.connection_text == messages.CONNECTED
        assert office.engine.wait_connected(30)
        kiosk.issue("A")
        assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)
        assert kiosk.ticket_label == "A-001"
    finally:
        broker.stop()


def test_double_issue_gives_one_ticket(kiosk, office):
    assert kiosk.issue("A")
    assert not kiosk.issue("A")

    assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)
    assert wait_until(lambda: kiosk.remaining.get("A") == 59)
    assert len(ticket_files(office.data_dir)) == 1


def test_broken_printer_issues_nothing(office, tmp_path):
    # A directory below a regular file cannot be created, so opening fails.
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    base = office.site.kiosks[0]
    broken = dataclasses.replace(
        base, printer=PrinterConfig(spec=f"file:{blocker / 'tickets'}")
    )
    controller = make_controller(office.site, office.data_dir, broken)
    try:
        assert wait_until(lambda: controller.online)
        controller.issue("D")
        assert wait_until(lambda: controller.screen == ScreenName.NOTICE)
        assert controller.notice == messages.PRINTER_DOWN
        assert controller.notice_label == ""
        assert controller.printer_status == "error"
        assert controller.printer_text == messages.PRINTER_WARNINGS["error"]
        assert not controller.busy
        assert ticket_status(office, "D-001") is None
    finally:
        controller.stop()


def test_publishes_printer_status(office):
    statuses: list[DeviceStatus] = []
    received = threading.Event()

    def collect(status: DeviceStatus) -> None:
        if status.role is Role.KIOSK and status.detail.get("printer"):
            statuses.append(status)
            received.set()

    watcher = OfficeClient(
        office.site, Role.OPERATOR, "watch", on_status=collect, data_dir=office.data_dir
    )
    watcher.start()
    controller = make_controller(office.site, office.data_dir)
    try:
        assert received.wait(DEADLINE_S)
        assert statuses[-1].device == "kiosk-1"
        assert statuses[-1].online
        assert statuses[-1].detail["printer"] == "online"
        assert wait_until(lambda: controller.printer_status == "online")
        assert controller.printer_text == ""
    finally:
        controller.stop()
        watcher.stop()


def test_dismiss_waits_for_guard(kiosk):
    kiosk.issue("A")
    assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)

    assert not kiosk.dismiss()
    assert kiosk.screen == ScreenName.TICKET
    assert wait_until(kiosk.dismiss)
    assert kiosk.screen == ScreenName.HOME


def test_ticket_screen_returns_home(kiosk, monkeypatch):
    monkeypatch.setattr(controller_module, "TICKET_SCREEN_S", 0.2)
    kiosk.issue("A")
    assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)

    assert wait_until(lambda: kiosk.screen == ScreenName.HOME)


def test_navigation_blocked_while_busy(kiosk):
    kiosk.issue("A")

    assert not kiosk.open_priority()
    assert not kiosk.go_home()
    assert kiosk.screen == ScreenName.WAIT
    assert wait_until(lambda: kiosk.screen == ScreenName.TICKET)


def test_select_kiosk(office):
    site = office.site

    assert select_kiosk(site, None).id == "kiosk-1"
    assert select_kiosk(site, "kiosk-1").id == "kiosk-1"
    with pytest.raises(KioskError, match="kiosk-9"):
        select_kiosk(site, "kiosk-9")
    with pytest.raises(KioskError, match="no kiosk"):
        select_kiosk(dataclasses.replace(site, kiosks=()), None)


def test_printer_spec_for(tmp_path):
    bare = Kiosk("k", "", PrinterConfig(spec="file:"))
    network = Kiosk("k", "", PrinterConfig(spec="network:10.0.0.5"))

    assert printer_spec_for(bare, tmp_path) == f"file:{tmp_path / 'tickets'}"
    assert printer_spec_for(network, tmp_path) == "network:10.0.0.5"
