"""Ticket printers over file, serial, USB and network transports, with one factory."""

from __future__ import annotations

import contextlib
import enum
import logging
import math
import os
import re
import tempfile
import termios
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self, cast
from urllib.parse import parse_qsl

import serial
from escpos.escpos import Escpos
from escpos.exceptions import Error as EscposError
from escpos.printer import Network, Serial, Usb

from kiosk.errors import PrinterError

_LOGGER = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 2.0
DEFAULT_BAUDRATE = 9600
DEFAULT_NETWORK_PORT = 9100

ACCEPTED_SPEC_FORMS = (
    "file:DIRECTORY, serial:DEVICE[?baudrate=N&timeout=SECONDS], "
    "usb:VID:PID in hex (for example usb:04b8:0202), "
    "network:HOST[:PORT] (port 9100 by default)"
)

# Real-time status requests (DLE EOT n) and the bits of their one-byte replies.
STATUS_REQUEST_PRINTER = b"\x10\x04\x01"
STATUS_REQUEST_PAPER = b"\x10\x04\x04"
# Every DLE EOT reply has the form 0xx1xx10 in binary, so bits 1 and 4 are set and
# bits 0 and 7 clear (DLE EOT tables of the Bixolon SRP-350 and Citizen iDP-3221).
STATUS_FIXED_MASK = 0x93
STATUS_FIXED_VALUE = 0x12
STATUS_OFFLINE_BIT = 0x08
PAPER_NEAR_END_BITS = 0x0C
PAPER_OUT_BITS = 0x60

# Errors that python-escpos, pyserial, pyusb and sockets raise for a failing device.
# pyserial lets termios.error, which is not an OSError, escape when it
# reconfigures or drains a port that has gone away.
_DEVICE_ERRORS = (EscposError, OSError, ValueError, termios.error)

# A serial line sends 10 bits per byte: start bit, 8 data bits and stop bit.
SERIAL_BITS_PER_BYTE = 10


class PrinterStatus(enum.Enum):
    """Printer condition as reported by its real-time status replies."""

    ONLINE = "online"
    PAPER_LOW = "paper_low"
    PAPER_OUT = "paper_out"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PrinterSpec:
    """Parsed printer address. Each transport has its own subclass."""


@dataclass(frozen=True)
class FileSpec(PrinterSpec):
    """Directory that receives one .escpos file per ticket."""

    directory: Path

    def __str__(self) -> str:
        return f"file:{self.directory}"


@dataclass(frozen=True)
class SerialSpec(PrinterSpec):
    """Serial port device, line speed and read/write timeout."""

    device: str
    baudrate: int = DEFAULT_BAUDRATE
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __str__(self) -> str:
        return f"serial:{self.device}?baudrate={self.baudrate}&timeout={self.timeout_s}"


@dataclass(frozen=True)
class UsbSpec(PrinterSpec):
    """USB vendor and product ID of the printer."""

    vendor_id: int
    product_id: int
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __str__(self) -> str:
        return f"usb:{self.vendor_id:04x}:{self.product_id:04x}"


@dataclass(frozen=True)
class NetworkSpec(PrinterSpec):
    """TCP host and port of a raw-socket (JetDirect) printer."""

    host: str
    port: int = DEFAULT_NETWORK_PORT
    timeout_s: float = DEFAULT_TIMEOUT_S

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"network:{host}:{self.port}"


def parse_printer_spec(text: str) -> PrinterSpec:
    """Parse a printer spec such as "serial:/dev/ttyUSB0?baudrate=19200".

    Raises PrinterError naming the spec and listing the accepted forms.
    """
    transport, separator, address = text.strip().partition(":")
    parser = _SPEC_PARSERS.get(transport.lower()) if separator else None
    if parser is None:
        raise _invalid_spec(text, "The transport must be file, serial, usb or network.")
    return parser(text, address)


def _invalid_spec(text: str, reason: str) -> PrinterError:
    return PrinterError(
        f"Invalid printer spec {text!r}. {reason} "
        f"Accepted forms are {ACCEPTED_SPEC_FORMS}."
    )


def _parse_file_spec(text: str, address: str) -> FileSpec:
    if not address:
        raise _invalid_spec(text, "The directory is missing.")
    return FileSpec(Path(address))


def _parse_serial_spec(text: str, address: str) -> SerialSpec:
    device, _, query = address.partition("?")
    if not device:
        raise _invalid_spec(text, "The serial device is missing.")

    options = _parse_query(text, query)
    unknown = sorted(set(options) - {"baudrate", "timeout"})
    if unknown:
        raise _invalid_spec(
            text, f"Unknown option {unknown[0]!r}. Only baudrate and timeout are known."
        )

    baudrate = DEFAULT_BAUDRATE
    if "baudrate" in options:
        baudrate = _parse_positive_int(text, "baudrate", options["baudrate"])
    timeout_s = DEFAULT_TIMEOUT_S
    if "timeout" in options:
        timeout_s = _parse_timeout(text, options["timeout"])
    return SerialSpec(device, baudrate, timeout_s)


def _parse_query(text: str, query: str) -> dict[str, str]:
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as error:
        raise _invalid_spec(
            text, f"The options {query!r} are not of the form key=value&key=value."
        ) from error

    options: dict[str, str] = {}
    for key, value in pairs:
        if key in options:
            raise _invalid_spec(text, f"The option {key!r} is given twice.")
        options[key] = value
    return options


def _parse_positive_int(text: str, name: str, value: str) -> int:
    try:
        number = int(value)
    except ValueError as error:
        raise _invalid_spec(text, f"{name} {value!r} is not an integer.") from error
    if number <= 0:
        raise _invalid_spec(text, f"{name} {value!r} must be greater than 0.")
    return number


def _parse_timeout(text: str, value: str) -> float:
    try:
        seconds = float(value)
    except ValueError as error:
        raise _invalid_spec(text, f"timeout {value!r} is not a number.") from error
    if not math.isfinite(seconds) or seconds <= 0:
        raise _invalid_spec(
            text, f"timeout {value!r} must be a finite number of seconds above 0."
        )
    return seconds


def _parse_usb_spec(text: str, address: str) -> UsbSpec:
    match = re.fullmatch(r"([0-9a-fA-F]{1,4}):([0-9a-fA-F]{1,4})", address)
    if match is None:
        raise _invalid_spec(
            text, "The USB address must be VID:PID with 1 to 4 hex digits each."
        )

    vendor_id = int(match.group(1), 16)
    product_id = int(match.group(2), 16)
    # python-escpos drops a zero ID from its device filter, which would then
    # match any USB device.
    if vendor_id == 0 or product_id == 0:
        raise _invalid_spec(text, "The vendor and product IDs must not be 0000.")
    return UsbSpec(vendor_id, product_id)


def _parse_network_spec(text: str, address: str) -> NetworkSpec:
    bracketed = re.fullmatch(r"\[([^\]]+)\](?::(.*))?", address)
    if bracketed is not None:
        host, port_text = bracketed.group(1), bracketed.group(2)
    else:
        host, separator, port_text = address.partition(":")
        if not separator:
            port_text = None

    if not host or re.search(r"[\s/@?#]", host):
        raise _invalid_spec(text, f"The host {host!r} is missing or invalid.")
    if bracketed is None and ":" in (port_text or ""):
        raise _invalid_spec(text, "Write an IPv6 host in brackets, as in [::1]:9100.")
    if port_text is None:
        return NetworkSpec(host)
    return NetworkSpec(host, _parse_port(text, port_text))


def _parse_port(text: str, value: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise _invalid_spec(text, f"The port {value!r} must be from 1 to 65535.")
    return int(value)


_SPEC_PARSERS = {
    "file": _parse_file_spec,
    "serial": _parse_serial_spec,
    "usb": _parse_usb_spec,
    "network": _parse_network_spec,
}


def _check_timeout(timeout_s: float) -> None:
    if not math.isfinite(timeout_s) or timeout_s <= 0:
        raise PrinterError(
            f"Invalid status timeout {timeout_s!r} s. Pass a finite number above 0."
        )


class Printer(ABC):
    """Ticket printer that accepts rendered ESC/POS bytes."""

    spec: PrinterSpec

    @abstractmethod
    def send(self, data: bytes, name: str) -> None:
        """Send one rendered ticket. name identifies it in files and logs.

        Raises PrinterError when the printer cannot be opened or written.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the device. A later send opens it again."""

    def query_status(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> PrinterStatus:
        """Return the printer status within timeout_s seconds.

        This base version returns UNKNOWN for transports that are not queried.
        """
        # NOTE: USB and network printers can also reply to DLE EOT, but only the
        # serial transport sends the requests so far.
        _check_timeout(timeout_s)
        return PrinterStatus.UNKNOWN

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class FilePrinter(Printer):
    """Printer that stores each ticket as DIRECTORY/<name>.escpos."""

    spec: FileSpec

    def __init__(self, spec: FileSpec) -> None:
        self.spec = spec
        self._create_directory()

    def send(self, data: bytes, name: str) -> None:
        """Write the ticket atomically, so readers never see a partial file."""
        path = self.spec.directory / f"{_check_file_name(name)}.escpos"
        self._create_directory()
        try:
            _write_atomically(path, data)
        except OSError as error:
            raise PrinterError(
                f"Writing ticket {name!r} to {path} failed: {error}. Check that "
                f"{self.spec.directory} is a writable directory with free space."
            ) from error
        _LOGGER.info("Wrote ticket %s (%d bytes) to %s", name, len(data), path)

    def close(self) -> None:
        """Release nothing, because each send opens and closes its own file."""

    def query_status(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> PrinterStatus:
        """Return ONLINE, because a directory has no paper to run out of."""
        _check_timeout(timeout_s)
        return PrinterStatus.ONLINE

    def _create_directory(self) -> None:
        try:
            self.spec.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise PrinterError(
                f"Creating ticket directory {self.spec.directory} failed: {error}. "
                "Check that the path is not a file and that its parent is writable."
            ) from error


def _check_file_name(name: str) -> str:
    if name in {"", ".", ".."} or "/" in name or "\0" in name:
        raise PrinterError(
            f"Invalid ticket name {name!r} for a file printer. Use a name without "
            "'/' or NUL, such as the ticket label or ID."
        )
    return name


def _write_atomically(path: Path, data: bytes) -> None:
    """Write data to a temporary file in the same directory, then rename it."""
    descriptor, temp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise


class _EscposPrinter(Printer):
    """Printer driven through a python-escpos device object.

    The device opens in the constructor. After a failed write it is closed, and
    the next send opens it again, so a printer that was unplugged can recover.
    """

    def __init__(self, spec: PrinterSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._device: Escpos | None = None
        with self._lock:
            self._opened_device()

    @abstractmethod
    def _create_device(self) -> Escpos:
        """Create the python-escpos object without opening it."""

    @abstractmethod
    def _hint(self) -> str:
        """Return a sentence on what to check when the device fails."""

    def send(self, data: bytes, name: str) -> None:
        with self._lock:
            device = self._opened_device()
            try:
                self._write(device, data)
            except _DEVICE_ERRORS as error:
                self._discard_device()
                raise PrinterError(
                    f"Writing ticket {name!r} to printer {self.spec} failed: "
                    f"{error}. {self._hint()}"
                ) from error
        _LOGGER.info("Sent ticket %s (%d bytes) to %s", name, len(data), self.spec)

    def close(self) -> None:
        with self._lock:
            self._discard_device()

    def _write(self, device: Escpos, data: bytes) -> None:
        device._raw(data)

    def _opened_device(self) -> Escpos:
        if self._device is not None:
            return self._device

        device = self._create_device()
        try:
            device.open()
        except _DEVICE_ERRORS as error:
            message = " ".join(str(error).split())
            raise PrinterError(
                f"Opening printer {self.spec} failed: {message}. {self._hint()}"
            ) from error
        # python-escpos reports a missing USB device with assert, which
        # python -O removes, so check the result here too.
        if device.device is None:
            raise PrinterError(f"Printer {self.spec} was not found. {self._hint()}")

        _LOGGER.info("Opened printer %s", self.spec)
        self._device = device
        return device

    def _discard_device(self) -> None:
        if self._device is None:
            return
        device, self._device = self._device, None
        try:
            device.close()
        except _DEVICE_ERRORS as error:
            _LOGGER.warning("Closing printer %s failed: %s", self.spec, error)
            # Stop Escpos.__del__ from closing the broken device a second time.
            device.device = False
            return
        _LOGGER.info("Closed printer %s", self.spec)


class SerialPrinter(_EscposPrinter):
    """Printer on a serial port, the only transport whose status is queried."""

    spec: SerialSpec

    def _create_device(self) -> Escpos:
        return Serial(
            devfile=self.spec.device,
            baudrate=self.spec.baudrate,
            timeout=self.spec.timeout_s,
        )

    def _hint(self) -> str:
        return (
            f"Check that {self.spec.device} exists, the cable is connected, the "
            f"printer is on and set to {self.spec.baudrate} baud, and this user may "
            "open the port (group dialout)."
        )

    def _write(self, device: Escpos, data: bytes) -> None:
        # Allow the time the bytes take on the line, on top of the timeout.
        line_time_s = len(data) * SERIAL_BITS_PER_BYTE / self.spec.baudrate
        _serial_port(device).write_timeout = self.spec.timeout_s + line_time_s
        device._raw(data)

    def query_status(self, timeout_s: float = DEFAULT_TIMEOUT_S) -> PrinterStatus:
        """Query DLE EOT 1 and then DLE EOT 4, taking at most about timeout_s.

        Returns OFFLINE when the printer cannot be opened, stays silent, sends an
        invalid reply or reports itself offline.
        """
        _check_timeout(timeout_s)
        deadline = time.monotonic() + timeout_s
        with self._lock:
            try:
                port = _serial_port(self._opened_device())
                status = self._query_replies(port, deadline)
            except (PrinterError, *_DEVICE_ERRORS) as error:
                self._discard_device()
                _LOGGER.warning("Status query on %s failed: %s", self.spec, error)
                return PrinterStatus.OFFLINE
        _LOGGER.debug("Printer %s status is %s", self.spec, status.name)
        return status

    def _query_replies(self, port: serial.Serial, deadline: float) -> PrinterStatus:
        # python-escpos 3.1 paper_status() reads 16 bytes and so always waits the
        # whole timeout, and it reports paper present when the printer is silent.
        printer_byte = _request_status_byte(port, STATUS_REQUEST_PRINTER, deadline)
        if printer_byte is None:
            _LOGGER.warning("Printer %s sent no reply to DLE EOT 1", self.spec)
            return PrinterStatus.OFFLINE
        if printer_byte & STATUS_OFFLINE_BIT:
            return PrinterStatus.OFFLINE

        paper_byte = _request_status_byte(port, STATUS_REQUEST_PAPER, deadline)
        if paper_byte is None:
            _LOGGER.warning("Printer %s sent no reply to DLE EOT 4", self.spec)
            return PrinterStatus.OFFLINE
        return paper_status(paper_byte)


def _serial_port(device: Escpos) -> serial.Serial:
    return cast(serial.Serial, device.device)


def _request_status_byte(
    port: serial.Serial, request: bytes, deadline: float
) -> int | None:
    """Send a DLE EOT request and return the reply byte, or None if none came.

    Returns None also for a byte that lacks the fixed bits of a status reply.
    """
    remaining_s = deadline - time.monotonic()
    if remaining_s <= 0:
        return None

    # Drop late replies to an earlier request that timed out.
    port.reset_input_buffer()
    port.write_timeout = remaining_s
    port.write(request)
    port.timeout = max(0.0, deadline - time.monotonic())
    reply: bytes = port.read(1)
    if not reply:
        return None
    status_byte = reply[0]
    if status_byte & STATUS_FIXED_MASK != STATUS_FIXED_VALUE:
        _LOGGER.warning(
            "Invalid status byte 0x%02x for request %r", status_byte, request
        )
        return None
    return status_byte


def paper_status(paper_byte: int) -> PrinterStatus:
    """Map the roll paper sensor byte of DLE EOT 4 to a status."""
    if paper_byte & PAPER_OUT_BITS == PAPER_OUT_BITS:
        return PrinterStatus.PAPER_OUT
    if paper_byte & PAPER_NEAR_END_BITS == PAPER_NEAR_END_BITS:
        return PrinterStatus.PAPER_LOW
    return PrinterStatus.ONLINE


class UsbPrinter(_EscposPrinter):
    """Printer on USB, reached through pyusb and libusb."""

    spec: UsbSpec

    def _create_device(self) -> Escpos:
        # pyusb takes its timeout in milliseconds.
        return Usb(
            idVendor=self.spec.vendor_id,
            idProduct=self.spec.product_id,
            timeout=round(self.spec.timeout_s * 1000),
        )

    def _hint(self) -> str:
        return (
            f"Check that the printer {self.spec.vendor_id:04x}:"
            f"{self.spec.product_id:04x} is plugged in and on (see lsusb), that "
            "libusb is installed, and that a udev rule lets this user open it."
        )


class NetworkPrinter(_EscposPrinter):
    """Printer that takes raw ESC/POS over TCP, usually on port 9100."""

    spec: NetworkSpec

    def _create_device(self) -> Escpos:
        return Network(
            host=self.spec.host, port=self.spec.port, timeout=self.spec.timeout_s
        )

    def _hint(self) -> str:
        return (
            f"Check that the printer is on, that {self.spec.host} is reachable "
            f"from this machine, and that it listens on TCP port {self.spec.port}."
        )


def open_printer(spec: PrinterSpec | str) -> Printer:
    """Open the printer for a spec or spec text, raising PrinterError on failure."""
    if isinstance(spec, str):
        spec = parse_printer_spec(spec)

    if isinstance(spec, FileSpec):
        return FilePrinter(spec)
    if isinstance(spec, SerialSpec):
        return SerialPrinter(spec)
    if isinstance(spec, UsbSpec):
        return UsbPrinter(spec)
    if isinstance(spec, NetworkSpec):
        return NetworkPrinter(spec)
    raise PrinterError(
        f"Unsupported printer spec {spec!r}. Pass a string or one of FileSpec, "
        "SerialSpec, UsbSpec or NetworkSpec."
    )
