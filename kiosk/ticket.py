"""Queue ticket content and its rendering to ESC/POS bytes for a thermal printer."""

from __future__ import annotations

import functools
import logging
import textwrap
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from escpos.capabilities import BaseProfile, get_profile
from escpos.magicencode import Encoder
from escpos.printer import Dummy

from kiosk.errors import TicketError

_LOGGER = logging.getLogger(__name__)

# Font A is 12 dots wide. The print width is 384 dots on 58 mm paper and 576 dots
# on 80 mm paper, at 8 dots per mm.
CHARS_PER_LINE: dict[int, int] = {58: 32, 80: 48}

# GS ! accepts width and height multipliers from 1 to 8.
MAX_TEXT_SCALE = 8

REPLACEMENT_CHAR = "?"
RULE_CHAR = "-"

# Indexed by datetime.weekday(), where Monday is 0.
DAY_NAMES = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")

HEADING = "NOMOR ANTREAN"
PRIORITY_HEADING = "PRIORITAS"
APPOINTMENT_HEADING = "JANJI TEMU"
REPRINT_HEADING = "CETAK ULANG"
PEOPLE_AHEAD_PREFIX = "Orang di depan Anda: "
WAIT_PREFIX = "Perkiraan menunggu "
DOCUMENTS_HEADING = "Dokumen yang perlu dibawa:"
DOCUMENT_BULLET = "- "
CLOSING_SENTENCES = ("Mohon menunggu panggilan.", "Terima kasih.")

# QR module size in printer dots: 6 dots is 0.75 mm at 8 dots per mm, so the
# ticket id (21 modules plus the quiet zone) prints about 17 mm wide.
QR_MODULE_DOTS = 6

# Code page slot that ESC/POS printers select at power-on.
DEFAULT_CODEPAGE_SLOT = "0"


@dataclass(frozen=True)
class PrintedTicket:
    """Content of one printed queue ticket."""

    office_name: str
    label: str
    service_name: str
    priority: bool
    category_name: str | None
    issued_at: datetime
    people_ahead: int
    ticket_id: str
    # The estimated wait in whole minutes, low and high; None prints no estimate.
    wait_range: tuple[int, int] | None = None
    documents: tuple[str, ...] = ()
    # The booked time of an appointment, in the office's zone; None for walk-ins.
    appointment_at: datetime | None = None
    reprint: bool = False

    def __post_init__(self) -> None:
        if not self.label.strip():
            raise TicketError(
                f"Ticket {self.ticket_id!r} has a blank label {self.label!r}. "
                "Give every ticket a label such as 'A-001'."
            )
        if self.issued_at.utcoffset() is None:
            raise TicketError(
                f"Ticket {self.ticket_id!r} has a naive issued_at {self.issued_at}. "
                "Pass a timezone-aware datetime in the office's local zone, "
                "for example with zoneinfo.ZoneInfo('Asia/Jakarta')."
            )
        if self.people_ahead < 0:
            raise TicketError(
                f"Ticket {self.ticket_id!r} has people_ahead={self.people_ahead}. "
                "Pass the number of waiting tickets ahead, 0 or more."
            )
        low, high = self.wait_range or (0, 0)
        if not 0 <= low <= high:
            raise TicketError(
                f"Ticket {self.ticket_id!r} has wait_range={self.wait_range}. "
                "Pass (low, high) minutes with 0 <= low <= high, or None."
            )


@dataclass(frozen=True)
class PaperLayout:
    """Paper roll width and printer settings that shape a rendered ticket.

    profile is a python-escpos capability profile name. A codepage of None selects
    the code page in the profile's slot 0, which printers use after power-on.
    """

    width_mm: int
    profile: str = "default"
    codepage: str | None = None

    def __post_init__(self) -> None:
        if self.width_mm not in CHARS_PER_LINE:
            raise TicketError(
                f"Unsupported paper width {self.width_mm!r} mm. "
                "Set width_mm to 58 or 80."
            )
        # Resolving the code page also checks the profile name.
        _ = self.active_codepage

    @property
    def chars_per_line(self) -> int:
        """Number of font A characters that fit on one line at normal size."""
        return CHARS_PER_LINE[self.width_mm]

    @property
    def active_codepage(self) -> str:
        """Name of the code page that the ticket text is encoded in."""
        profile = _load_profile(self.profile)
        usable = _usable_codepages(self.profile)
        if self.codepage is None:
            default: str = profile.codePages.get(DEFAULT_CODEPAGE_SLOT, "")
            if default not in usable:
                raise TicketError(
                    f"Printer profile {self.profile!r} has no usable code page in "
                    f"slot {DEFAULT_CODEPAGE_SLOT}. Set codepage to one of: "
                    f"{', '.join(usable)}."
                )
            return default

        name = self.codepage.upper()
        if name not in usable:
            raise TicketError(
                f"Code page {self.codepage!r} is not usable with printer profile "
                f"{self.profile!r}. Set codepage to one of: {', '.join(usable)}, "
                "or to None for the profile's default."
            )
        return name


def _load_profile(name: str) -> BaseProfile:
    try:
        return get_profile(name)
    except KeyError as error:
        raise TicketError(
            f"Unknown printer profile {name!r}. Use a python-escpos profile name "
            "such as 'default', 'TM-T20II' or 'POS-5890'."
        ) from error


@functools.cache
def _usable_codepages(profile_name: str) -> tuple[str, ...]:
    """List the profile's code pages that python-escpos has a character table for."""
    profile = _load_profile(profile_name)
    encoder = Encoder(profile.get_code_pages())
    usable = []
    for slot in sorted(profile.codePages, key=int):
        name = profile.codePages[slot]
        try:
            # can_encode returns False when the code page has no character table.
            if encoder.can_encode(name, "A"):
                usable.append(name)
        except KeyError:
            _LOGGER.debug("Code page %s has no entry in python-escpos", name)
    return tuple(usable)


class _TicketWriter:
    """Builder of centred ticket lines that fit the paper and use one code page.

    The bytes collect in a python-escpos Dummy printer.
    """

    def __init__(self, layout: PaperLayout) -> None:
        self.width = layout.chars_per_line
        self.codepage = layout.active_codepage
        self.printer = Dummy(profile=layout.profile)
        self.encoder = Encoder(self.printer.profile.get_code_pages())

        self.printer.hw("INIT")
        # charcode() sends ESC t once and then encodes all text in this code page,
        # with "?" for characters that it lacks, instead of switching code pages.
        self.printer.charcode(self.codepage)
        self.printer.set(align="center")

    def printable(self, text: str) -> str:
        """Collapse whitespace and replace characters that cannot be printed."""
        text = unicodedata.normalize("NFC", " ".join(text.split()))
        return "".join(self._printable_char(char) for char in text)

    def _printable_char(self, char: str) -> str:
        # Category C covers control, format, private-use and unassigned characters,
        # which would otherwise reach the printer as raw command bytes.
        if unicodedata.category(char).startswith("C"):
            return REPLACEMENT_CHAR
        if not self.encoder.can_encode(self.codepage, char):
            return REPLACEMENT_CHAR
        return char

    def wrapped(self, text: str, width: int | None = None) -> list[str]:
        """Split printable text into lines of at most width characters."""
        return textwrap.wrap(
            self.printable(text), width=width or self.width, break_on_hyphens=False
        )

    def line(self, text: str) -> None:
        self.printer.textln(text)

    def paragraph(self, text: str) -> None:
        for line in self.wrapped(text):
            self.line(line)

    def rule(self) -> None:
        self.line(RULE_CHAR * self.width)


def render_ticket(ticket: PrintedTicket, layout: PaperLayout) -> bytes:
    """Render the ticket as ESC/POS bytes that end with a feed and a paper cut.

    Every line fits layout.chars_per_line. Characters that the code page lacks
    print as "?". The same ticket and layout always give the same bytes.
    """
    writer = _TicketWriter(layout)

    writer.printer.set(bold=True)
    writer.paragraph(ticket.office_name)
    writer.printer.set(bold=False)
    writer.rule()

    writer.line(HEADING)
    _write_label(writer, ticket.label)
    if ticket.priority:
        _write_priority(writer, ticket.category_name)

    if ticket.appointment_at is not None:
        writer.printer.set(bold=True)
        writer.line(f"{APPOINTMENT_HEADING} {ticket.appointment_at:%H:%M}")
        writer.printer.set(bold=False)

    writer.paragraph(ticket.service_name)
    writer.line(format_issued_at(ticket.issued_at))
    writer.line(f"{PEOPLE_AHEAD_PREFIX}{ticket.people_ahead}")
    if ticket.wait_range is not None:
        writer.paragraph(format_wait(*ticket.wait_range))
    writer.rule()
    if ticket.documents:
        _write_documents(writer, ticket.documents)
        writer.rule()
    _write_qr(writer, ticket.ticket_id)
    if ticket.reprint:
        writer.printer.set(bold=True)
        writer.line(REPRINT_HEADING)
        writer.printer.set(bold=False)
    _write_closing(writer)

    writer.printer.cut()
    _LOGGER.debug(
        "Rendered ticket %s (%s) for %d mm paper",
        ticket.ticket_id,
        ticket.label,
        layout.width_mm,
    )
    output: bytes = writer.printer.output
    return output


def label_scale(label: str, chars_per_line: int) -> int:
    """Return the largest text scale, up to 8, at which the label fits one line.

    Returns 1 when the label is longer than a line even at normal size.
    """
    return max(1, min(MAX_TEXT_SCALE, chars_per_line // max(1, len(label))))


def _write_label(writer: _TicketWriter, label: str) -> None:
    text = writer.printable(label)
    scale = label_scale(text, writer.width)
    writer.printer.set(bold=True, custom_size=True, width=scale, height=scale)
    # A label longer than a line still prints, broken over several lines.
    for line in writer.wrapped(text):
        writer.line(line)
    writer.printer.set(bold=False, custom_size=True, width=1, height=1)


def _write_priority(writer: _TicketWriter, category_name: str | None) -> None:
    text = PRIORITY_HEADING
    if category_name and category_name.strip():
        text = f"{PRIORITY_HEADING} - {category_name}"

    writer.printer.set(bold=True, invert=True)
    # One space each side keeps the inverted band wider than the letters.
    for line in writer.wrapped(text, width=writer.width - 2):
        writer.line(f" {line} ")
    writer.printer.set(bold=False, invert=False)


def _write_documents(writer: _TicketWriter, documents: tuple[str, ...]) -> None:
    writer.printer.set(align="left")
    writer.paragraph(DOCUMENTS_HEADING)
    indent = " " * len(DOCUMENT_BULLET)
    for document in documents:
        lines = writer.wrapped(document, width=writer.width - len(indent))
        for index, line in enumerate(lines):
            writer.line((DOCUMENT_BULLET if index == 0 else indent) + line)
    writer.printer.set(align="center")


def _write_qr(writer: _TicketWriter, ticket_id: str) -> None:
    """Print the ticket id as a QR code, centred by the justification in force."""
    text = writer.printable(ticket_id)
    if writer.printer.profile.supports("qrCode"):
        writer.printer.qr(text, size=QR_MODULE_DOTS, native=True)
        # The QR print command ends without a line feed.
        writer.line("")
    else:
        # Printers without native QR get it as a raster image.
        writer.printer.qr(text, size=QR_MODULE_DOTS, native=False)
    writer.line(text)


def _write_closing(writer: _TicketWriter) -> None:
    closing = " ".join(CLOSING_SENTENCES)
    if len(closing) <= writer.width:
        writer.line(closing)
        return
    # On narrow paper each sentence starts its own line.
    for sentence in CLOSING_SENTENCES:
        writer.paragraph(sentence)


def format_wait(low: int, high: int) -> str:
    """Format an estimated wait range, for example "Perkiraan menunggu 15-25 menit"."""
    if high < 1:
        return f"{WAIT_PREFIX}kurang dari 1 menit"
    if low == high:
        return f"{WAIT_PREFIX}{high} menit"
    return f"{WAIT_PREFIX}{low}-{high} menit"


def format_issued_at(issued_at: datetime) -> str:
    """Format the time in Indonesian style, for example "Jumat, 04-12-2026 09:15"."""
    day_name = DAY_NAMES[issued_at.weekday()]
    return f"{day_name}, {issued_at:%d-%m-%Y %H:%M}"
