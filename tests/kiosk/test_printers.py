"""Tests of printer spec parsing and of the file, serial, network and USB printers.

The serial tests run against a pty pair made by socat, with a thread on the far
end that replies to DLE EOT status requests like a printer.
"""

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import usb.core
import usb.util
from pty_printer import FakeSerialPrinter, SocatPtyPair

from kiosk.errors import KioskError, PrinterError
from kiosk.printers import (
    FileSpec,
    NetworkSpec,
    PrinterSpec,
    PrinterStatus,
    SerialSpec,
    UsbSpec,
    open_printer,
    paper_status,
    parse_printer_spec,
)
from kiosk.ticket import PaperLayout, PrintedTicket, render_ticket

_LOGGER = logging.getLogger(__name__)

# Small timeouts keep the suite fast. The margin covers thread and socat latency.
STATUS_TIMEOUT_S = 0.3
TIMING_MARGIN_S = 0.25

TICKET = PrintedTicket(
    office_name="Kantor Imigrasi Kelas III Non TPI Lebong",
    label="A-001",
    service_name="Penerbitan Paspor Baru",
    priority=False,
    category_name=None,
    issued_at=datetime(2026, 12, 4, 9, 15, tzinfo=ZoneInfo("Asia/Jakarta")),
    people_ahead=3,
    ticket_id="ticket-1",
)


@pytest.fixture
def rendered() -> bytes:
    return render_ticket(TICKET, PaperLayout(58))


# --- spec parsing ---


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("file:/var/spool/antrean", FileSpec(Path("/var/spool/antrean"))),
        ("file:tickets/out", FileSpec(Path("tickets/out"))),
        ("serial:/dev/ttyUSB0", SerialSpec("/dev/ttyUSB0", 9600, 2.0)),
        ("serial:/dev/ttyUSB0?baudrate=19200", SerialSpec("/dev/ttyUSB0", 19200)),
        (
            "serial:/dev/ttyS1?baudrate=115200&timeout=0.5",
            SerialSpec("/dev/ttyS1", 115200, 0.5),
        ),
        ("serial:/dev/ttyS1?timeout=3", SerialSpec("/dev/ttyS1", 9600, 3.0)),
        (" serial:/dev/ttyUSB0 ", SerialSpec("/dev/ttyUSB0")),
        ("usb:04b8:0202", UsbSpec(0x04B8, 0x0202)),
        ("usb:4B8:202", UsbSpec(0x04B8, 0x0202)),
        ("USB:04b8:0e15", UsbSpec(0x04B8, 0x0E15)),
        ("network:printer.example", NetworkSpec("printer.example", 9100)),
        ("network:127.0.0.1:9101", NetworkSpec("127.0.0.1", 9101)),
        ("network:[::1]:9100", NetworkSpec("::1", 9100)),
        ("network:[::1]", NetworkSpec("::1", 9100)),
    ],
)
def test_parse_printer_spec_valid(text: str, expected: PrinterSpec) -> None:
    assert parse_printer_spec(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "transport must be"),
        ("lpt:/dev/lp0", "transport must be"),
        ("/dev/ttyUSB0", "transport must be"),
        ("file:", "directory is missing"),
        ("serial:", "serial device is missing"),
        ("serial:?baudrate=9600", "serial device is missing"),
        ("serial:/dev/ttyUSB0?baud=9600", "Unknown option 'baud'"),
        ("serial:/dev/ttyUSB0?baudrate=fast", "baudrate 'fast' is not an integer"),
        ("serial:/dev/ttyUSB0?baudrate=0", "greater than 0"),
        ("serial:/dev/ttyUSB0?baudrate=-9600", "greater than 0"),
        ("serial:/dev/ttyUSB0?timeout=0", "timeout '0' must be"),
        ("serial:/dev/ttyUSB0?timeout=inf", "timeout 'inf' must be"),
        ("serial:/dev/ttyUSB0?timeout=nan", "timeout 'nan' must be"),
        ("serial:/dev/ttyUSB0?timeout=soon", "timeout 'soon' is not a number"),
        ("serial:/dev/ttyUSB0?baudrate", "key=value"),
        ("serial:/dev/ttyUSB0?baudrate=1&baudrate=2", "'baudrate' is given twice"),
        ("usb:04b8", "VID:PID"),
        ("usb:04b8:0202:1", "VID:PID"),
        ("usb:xyz:0202", "VID:PID"),
        ("usb:12345:0202", "VID:PID"),
        ("usb:0000:0202", "must not be 0000"),
        ("usb:04b8:0", "must not be 0000"),
        ("network:", "host '' is missing"),
        ("network::9100", "host '' is missing"),
        ("network:printer example", "host 'printer example'"),
        ("network:printer.example:0", "port '0'"),
        ("network:printer.example:70000", "port '70000'"),
        ("network:printer.example:jetdirect", "port 'jetdirect'"),
        ("network:printer.example:", "port ''"),
        ("network:2001:db8::1", "IPv6 host in brackets"),
        ("network:[::1]:", "port ''"),
    ],
)
def test_parse_printer_spec_invalid(text: str, reason: str) -> None:
    with pytest.raises(PrinterError) as caught:
        parse_printer_spec(text)

    message = str(caught.value)
    assert f"Invalid printer spec {text!r}" in message
    assert reason in message
    assert "Accepted forms are file:DIRECTORY" in message
    assert "usb:VID:PID" in message
    assert "network:HOST[:PORT]" in message


@pytest.mark.parametrize(
    "spec",
    [
        FileSpec(Path("/var/spool/antrean")),
        SerialSpec("/dev/ttyUSB0", 19200, 0.5),
        UsbSpec(0x04B8, 0x0202),
        NetworkSpec("printer.example", 9101),
        NetworkSpec("::1", 9100),
    ],
)
def test_spec_str_parses_back(spec: PrinterSpec) -> None:
    assert parse_printer_spec(str(spec)) == spec


def test_invalid_spec_error_chained() -> None:
    with pytest.raises(PrinterError) as caught:
        parse_printer_spec("serial:/dev/ttyUSB0?baudrate=fast")

    assert isinstance(caught.value.__cause__, ValueError)


def test_open_printer_rejects_base_spec() -> None:
    with pytest.raises(PrinterError, match="Unsupported printer spec"):
        open_printer(PrinterSpec())


def test_printer_error_is_kiosk_error() -> None:
    assert issubclass(PrinterError, KioskError)


@pytest.mark.parametrize(
    ("paper_byte", "expected"),
    [
        (0x12, PrinterStatus.ONLINE),
        (0x1E, PrinterStatus.PAPER_LOW),
        (0x72, PrinterStatus.PAPER_OUT),
        (0x7E, PrinterStatus.PAPER_OUT),
        (0x16, PrinterStatus.ONLINE),
    ],
)
def test_paper_status_bits(paper_byte: int, expected: PrinterStatus) -> None:
    assert paper_status(paper_byte) == expected


# --- file printer ---


def test_file_send_writes_rendered_bytes(tmp_path: Path, rendered: bytes) -> None:
    directory = tmp_path / "spool" / "kiosk-1"
    printer = open_printer(f"file:{directory}")
    printer.send(rendered, "A-001")
    printer.close()

    assert (directory / "A-001.escpos").read_bytes() == rendered
    assert os.listdir(directory) == ["A-001.escpos"]


def test_file_send_replaces_old_ticket(tmp_path: Path, rendered: bytes) -> None:
    with open_printer(f"file:{tmp_path}") as printer:
        printer.send(b"old ticket", "A-001")
        printer.send(rendered, "A-001")

    assert (tmp_path / "A-001.escpos").read_bytes() == rendered


def test_file_status_online(tmp_path: Path) -> None:
    printer = open_printer(FileSpec(tmp_path))

    assert printer.query_status(STATUS_TIMEOUT_S) == PrinterStatus.ONLINE


def test_file_directory_is_file(tmp_path: Path) -> None:
    blocker = tmp_path / "spool"
    blocker.write_bytes(b"not a directory")

    with pytest.raises(PrinterError) as caught:
        open_printer(f"file:{blocker}")

    assert str(blocker) in str(caught.value)
    assert "Check that" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    assert blocker.read_bytes() == b"not a directory"


def test_file_failed_rename_leaves_nothing(tmp_path: Path, rendered: bytes) -> None:
    printer = open_printer(f"file:{tmp_path}")
    # A directory where the ticket file should go makes the rename fail.
    (tmp_path / "A-001.escpos").mkdir()

    with pytest.raises(PrinterError) as caught:
        printer.send(rendered, "A-001")

    assert "'A-001'" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    assert os.listdir(tmp_path) == ["A-001.escpos"]
    assert os.listdir(tmp_path / "A-001.escpos") == []


def test_file_failed_write_keeps_old_ticket(
    tmp_path: Path, rendered: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    printer = open_printer(f"file:{tmp_path}")
    printer.send(b"old ticket", "A-001")

    def fail_fsync(descriptor: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail_fsync)
    with pytest.raises(PrinterError, match="No space left"):
        printer.send(rendered, "A-001")

    assert os.listdir(tmp_path) == ["A-001.escpos"]
    assert (tmp_path / "A-001.escpos").read_bytes() == b"old ticket"


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../escape", "a\0b"])
def test_file_unsafe_name_rejected(tmp_path: Path, name: str) -> None:
    printer = open_printer(f"file:{tmp_path}")

    with pytest.raises(PrinterError, match="Invalid ticket name"):
        printer.send(b"data", name)

    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("timeout_s", [0.0, -1.0, math.nan, math.inf])
def test_status_timeout_rejected(tmp_path: Path, timeout_s: float) -> None:
    printer = open_printer(f"file:{tmp_path}")

    with pytest.raises(PrinterError, match="Invalid status timeout"):
        printer.query_status(timeout_s)


# --- serial printer on a pty pair ---


def serial_spec(pair: SocatPtyPair) -> str:
    return f"serial:{pair.printer_path}?timeout={STATUS_TIMEOUT_S}"


def test_serial_send_delivers_ticket_bytes(
    pty_pair: SocatPtyPair,
    start_fake_printer: Callable[[dict[int, int]], FakeSerialPrinter],
    rendered: bytes,
) -> None:
    fake = start_fake_printer({})
    with open_printer(serial_spec(pty_pair)) as printer:
        printer.send(rendered, "A-001")

    assert fake.wait_for_bytes(len(rendered)) == rendered


@pytest.mark.parametrize(
    ("replies", "expected"),
    [
        ({1: 0x12, 4: 0x12}, PrinterStatus.ONLINE),
        ({1: 0x12, 4: 0x1E}, PrinterStatus.PAPER_LOW),
        ({1: 0x12, 4: 0x72}, PrinterStatus.PAPER_OUT),
        ({1: 0x1A, 4: 0x12}, PrinterStatus.OFFLINE),
        ({}, PrinterStatus.OFFLINE),
        ({1: 0x12}, PrinterStatus.OFFLINE),
        ({1: 0x00, 4: 0x12}, PrinterStatus.OFFLINE),
        ({1: 0x12, 4: 0xFF}, PrinterStatus.OFFLINE),
    ],
    ids=[
        "online",
        "paper-low",
        "paper-out",
        "offline-bit",
        "silent",
        "paper-sensor-silent",
        "invalid-printer-byte",
        "invalid-paper-byte",
    ],
)
def test_serial_status(
    pty_pair: SocatPtyPair,
    start_fake_printer: Callable[[dict[int, int]], FakeSerialPrinter],
    replies: dict[int, int],
    expected: PrinterStatus,
) -> None:
    start_fake_printer(replies)
    with open_printer(serial_spec(pty_pair)) as printer:
        started = time.monotonic()
        status = printer.query_status(STATUS_TIMEOUT_S)
        elapsed_s = time.monotonic() - started

    assert status == expected
    assert elapsed_s < STATUS_TIMEOUT_S + TIMING_MARGIN_S


def test_serial_status_sends_two_requests(
    pty_pair: SocatPtyPair,
    start_fake_printer: Callable[[dict[int, int]], FakeSerialPrinter],
) -> None:
    fake = start_fake_printer({1: 0x12, 4: 0x12})
    with open_printer(serial_spec(pty_pair)) as printer:
        started = time.monotonic()
        status = printer.query_status(STATUS_TIMEOUT_S)
        elapsed_s = time.monotonic() - started

    assert status == PrinterStatus.ONLINE
    assert fake.wait_for_bytes(6) == b"\x10\x04\x01\x10\x04\x04"
    # A printer that replies must not cost the whole timeout.
    assert elapsed_s < STATUS_TIMEOUT_S / 2


def test_serial_silent_skips_paper_request(
    pty_pair: SocatPtyPair,
    start_fake_printer: Callable[[dict[int, int]], FakeSerialPrinter],
) -> None:
    fake = start_fake_printer({})
    with open_printer(serial_spec(pty_pair)) as printer:
        status = printer.query_status(STATUS_TIMEOUT_S)

    assert status == PrinterStatus.OFFLINE
    assert fake.wait_for_bytes(3) == b"\x10\x04\x01"


def test_serial_status_drops_stale_bytes(
    pty_pair: SocatPtyPair,
    start_fake_printer: Callable[[dict[int, int]], FakeSerialPrinter],
) -> None:
    fake = start_fake_printer({1: 0x12, 4: 0x1E})
    with open_printer(serial_spec(pty_pair)) as printer:
        # A late 0x7e reply would read as paper out if it were not dropped.
        fake.send_unsolicited(b"\x7e\x7e")
        time.sleep(0.05)
        status = printer.query_status(STATUS_TIMEOUT_S)

    assert status == PrinterStatus.PAPER_LOW


def test_serial_missing_device(tmp_path: Path) -> None:
    device = tmp_path / "ttyUSB9"

    with pytest.raises(PrinterError) as caught:
        open_printer(f"serial:{device}?timeout={STATUS_TIMEOUT_S}")

    assert f"Opening printer serial:{device}" in str(caught.value)
    assert "Check that" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_serial_recovers_after_unplug(
    pty_pair: SocatPtyPair,
    start_fake_printer: Callable[[dict[int, int]], FakeSerialPrinter],
    rendered: bytes,
) -> None:
    first = start_fake_printer({1: 0x12, 4: 0x12})
    printer = open_printer(serial_spec(pty_pair))
    printer.send(b"first", "A-001")
    assert first.wait_for_bytes(5) == b"first"

    first.stop()
    pty_pair.stop()
    with pytest.raises(PrinterError, match="'A-002'"):
        printer.send(rendered, "A-002")
    assert printer.query_status(STATUS_TIMEOUT_S) == PrinterStatus.OFFLINE

    pty_pair.start()
    second = start_fake_printer({1: 0x12, 4: 0x12})
    printer.send(rendered, "A-002")
    assert second.wait_for_bytes(len(rendered)) == rendered
    assert printer.query_status(STATUS_TIMEOUT_S) == PrinterStatus.ONLINE
    printer.close()


# --- network printer on a local TCP server ---


class TcpSink:
    """TCP server on 127.0.0.1 that stores the bytes of one connection."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.received = bytearray()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._server.settimeout(5.0)
        connection, _ = self._server.accept()
        with connection:
            connection.settimeout(5.0)
            while chunk := connection.recv(4096):
                self.received += chunk

    def wait(self) -> bytes:
        self._thread.join(timeout=5.0)
        return bytes(self.received)

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def tcp_sink() -> Iterator[TcpSink]:
    sink = TcpSink()
    yield sink
    sink.close()


def test_network_send_delivers_bytes(tcp_sink: TcpSink, rendered: bytes) -> None:
    printer = open_printer(f"network:127.0.0.1:{tcp_sink.port}")
    printer.send(rendered, "A-001")
    status = printer.query_status(STATUS_TIMEOUT_S)
    printer.close()

    assert tcp_sink.wait() == rendered
    assert status == PrinterStatus.UNKNOWN


def test_network_refused() -> None:
    # A bound socket that never listens refuses connections on its port.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
        with pytest.raises(PrinterError) as caught:
            open_printer(NetworkSpec("127.0.0.1", port, timeout_s=STATUS_TIMEOUT_S))

    assert f"network:127.0.0.1:{port}" in str(caught.value)
    assert f"TCP port {port}" in str(caught.value)
    assert caught.value.__cause__ is not None


# --- USB printer with pyusb replaced by a fake device ---


class FakeUsbBackend:
    """Backend whose module name makes python-escpos skip kernel driver detaching."""


class FakeUsbDevice:
    """Stand-in for usb.core.Device that records bulk writes."""

    def __init__(self, write_error: Exception | None = None) -> None:
        self.backend = FakeUsbBackend()
        self.writes: list[tuple[int, bytes, int]] = []
        self.write_error = write_error

    def set_configuration(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def write(self, endpoint: int, data: bytes, timeout: int) -> int:
        if self.write_error is not None:
            raise self.write_error
        self.writes.append((endpoint, bytes(data), timeout))
        return len(data)


@pytest.fixture
def fake_usb(monkeypatch: pytest.MonkeyPatch) -> Callable[[object], list[dict]]:
    """Make usb.core.find return the given result and record its arguments."""
    calls: list[dict] = []

    def install(result: object) -> list[dict]:
        def find(**kwargs: object) -> object:
            calls.append(kwargs)
            if isinstance(result, Exception):
                raise result
            return result

        monkeypatch.setattr(usb.core, "find", find)
        monkeypatch.setattr(usb.util, "dispose_resources", lambda device: None)
        return calls

    return install


def test_usb_send_writes_out_endpoint(
    fake_usb: Callable[[object], list[dict]], rendered: bytes
) -> None:
    device = FakeUsbDevice()
    calls = fake_usb(device)
    printer = open_printer("usb:04b8:0202")
    printer.send(rendered, "A-001")
    status = printer.query_status(STATUS_TIMEOUT_S)
    printer.close()

    assert calls == [{"idVendor": 0x04B8, "idProduct": 0x0202}]
    assert device.writes == [(0x01, rendered, 2000)]
    assert status == PrinterStatus.UNKNOWN


def test_usb_device_not_found(fake_usb: Callable[[object], list[dict]]) -> None:
    fake_usb(None)

    with pytest.raises(PrinterError) as caught:
        open_printer("usb:04b8:0202")

    assert "Opening printer usb:04b8:0202 failed" in str(caught.value)
    assert "lsusb" in str(caught.value)


def test_usb_without_libusb(fake_usb: Callable[[object], list[dict]]) -> None:
    fake_usb(usb.core.NoBackendError("No backend available"))

    with pytest.raises(PrinterError, match="No backend available") as caught:
        open_printer("usb:04b8:0202")

    assert isinstance(caught.value.__cause__, usb.core.NoBackendError)


def test_usb_write_timeout(fake_usb: Callable[[object], list[dict]]) -> None:
    fake_usb(FakeUsbDevice(write_error=usb.core.USBTimeoutError("Operation timed out")))
    printer = open_printer("usb:04b8:0202")

    with pytest.raises(PrinterError, match="Writing ticket 'A-001'") as caught:
        printer.send(b"data", "A-001")

    assert isinstance(caught.value.__cause__, usb.core.USBTimeoutError)
