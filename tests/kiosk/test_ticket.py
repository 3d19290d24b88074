"""Tests of the ticket layout, checked as bytes and as decoded ESC/POS lines.

After an intended layout change, run with ANTREAN_REGENERATE_GOLDEN=1 to rewrite
the golden files, then review their decoded text in test_golden_decodes_to_text.
"""

import logging
import os
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kiosk.errors import KioskError, TicketError
from kiosk.ticket import (
    PaperLayout,
    PrintedTicket,
    format_issued_at,
    format_wait,
    label_scale,
    render_ticket,
)

_LOGGER = logging.getLogger(__name__)

GOLDEN_DIR = Path(__file__).parent / "golden"
REGENERATE_GOLDEN = os.environ.get("ANTREAN_REGENERATE_GOLDEN") == "1"

OFFICE_ZONE = ZoneInfo("Asia/Jakarta")
OFFICE_NAME = "Kantor Imigrasi Kelas III Non TPI Lebong"

NORMAL_TICKET = PrintedTicket(
    office_name=OFFICE_NAME,
    label="A-001",
    service_name="Penerbitan Paspor Baru",
    priority=False,
    category_name=None,
    issued_at=datetime(2026, 12, 7, 14, 5, tzinfo=OFFICE_ZONE),
    people_ahead=12,
    ticket_id="20261207-A001",
    wait_range=(15, 25),
    documents=("KTP", "Kartu Keluarga", "Akta lahir atau ijazah asli dan fotokopinya"),
)
PRIORITY_TICKET = PrintedTicket(
    office_name=OFFICE_NAME,
    label="B-012",
    service_name="Penggantian Paspor Hilang atau Rusak",
    priority=True,
    category_name="Lansia",
    issued_at=datetime(2026, 12, 4, 9, 15, tzinfo=OFFICE_ZONE),
    people_ahead=0,
    ticket_id="20261204-B012",
)

# Python codecs for the code page slots that the tests select.
SLOT_CODECS = {0: "cp437", 19: "cp858", 52: "cp437"}

ESC = 0x1B
GS = 0x1D
LF = 0x0A


@dataclass(frozen=True)
class PrintedLine:
    """One decoded line and the print modes in force when it ended."""

    text: str
    bold: bool = False
    invert: bool = False
    scale: int = 1


@dataclass
class _DecoderState:
    bold: bool = False
    invert: bool = False
    width: int = 1
    height: int = 1
    codec: str = "cp437"
    aligned_centre: bool = False
    cut: bool = False
    feed_lines: int = 0
    # Contents of native QR codes (GS ( k) and the number of raster images (GS v 0).
    qr_codes: list[str] = field(default_factory=list)
    images: int = 0


def decode_escpos(data: bytes) -> tuple[list[PrintedLine], _DecoderState]:
    """Decode the commands that render_ticket sends into lines of text.

    Raises AssertionError on any command the ticket is not expected to send.
    """
    state = _DecoderState()
    lines: list[PrintedLine] = []
    text = bytearray()
    index = 0
    while index < len(data):
        byte = data[index]
        if byte == LF:
            lines.append(_finish_line(text, state))
            text.clear()
            index += 1
        elif byte in (ESC, GS):
            index = _apply_command(data, index, state)
        elif byte < 0x20:
            raise AssertionError(f"unexpected control byte 0x{byte:02x} at {index}")
        else:
            text.append(byte)
            index += 1
    assert not text, f"text {bytes(text)!r} is not ended by a line feed"
    return lines, state


def _finish_line(text: bytearray, state: _DecoderState) -> PrintedLine:
    assert state.width == state.height, "label scale is not square"
    return PrintedLine(
        bytes(text).decode(state.codec), state.bold, state.invert, state.width
    )


def _apply_command(data: bytes, index: int, state: _DecoderState) -> int:
    command = data[index : index + 2]
    if command == b"\x1d(":
        return _apply_2d_code(data, index, state)
    if command == b"\x1dv":
        return _skip_raster_image(data, index, state)
    argument = data[index + 2] if index + 2 < len(data) else None
    if command == b"\x1b@":
        state.bold, state.invert, state.width, state.height = False, False, 1, 1
        return index + 2
    assert argument is not None, f"command {command!r} has no argument"
    if command == b"\x1bt":
        state.codec = SLOT_CODECS[argument]
    elif command == b"\x1ba":
        state.aligned_centre = argument == 1
    elif command == b"\x1bE":
        state.bold = argument == 1
    elif command == b"\x1dB":
        state.invert = argument == 1
    elif command == b"\x1d!":
        state.width, state.height = (argument >> 4) + 1, (argument & 0x0F) + 1
    elif command == b"\x1bd":
        state.feed_lines += argument
    elif command == b"\x1dV":
        state.cut = True
    else:
        raise AssertionError(f"unexpected command {command!r} at {index}")
    return index + 3


def _apply_2d_code(data: bytes, index: int, state: _DecoderState) -> int:
    # GS ( k pL pH cn fn [parameters]: only the QR functions are expected.
    assert data[index + 2 : index + 3] == b"k", f"unexpected GS ( at {index}"
    length = data[index + 3] + 256 * data[index + 4]
    body = data[index + 5 : index + 5 + length]
    assert body[:1] == b"1", f"2D code {body!r} is not a QR code"
    if body[1:3] == b"P0":
        state.qr_codes.append(body[3:].decode("ascii"))
    return index + 5 + length


def _skip_raster_image(data: bytes, index: int, state: _DecoderState) -> int:
    # GS v 0 m xL xH yL yH, then xL + 256 xH bytes per row for yL + 256 yH rows.
    assert data[index + 2] == ord("0"), f"unexpected GS v at {index}"
    width = data[index + 4] + 256 * data[index + 5]
    height = data[index + 6] + 256 * data[index + 7]
    state.images += 1
    return index + 8 + width * height


def texts(lines: list[PrintedLine]) -> list[str]:
    return [line.text for line in lines]


def golden_path(name: str, width_mm: int) -> Path:
    return GOLDEN_DIR / f"{name}_{width_mm}mm.escpos"


GOLDEN_CASES = [
    ("normal", NORMAL_TICKET, 58),
    ("normal", NORMAL_TICKET, 80),
    ("priority", PRIORITY_TICKET, 58),
    ("priority", PRIORITY_TICKET, 80),
]

EXPECTED_LINES = {
    ("normal", 58): [
        "Kantor Imigrasi Kelas III Non",
        "TPI Lebong",
        "-" * 32,
        "NOMOR ANTREAN",
        "A-001",
        "Penerbitan Paspor Baru",
        "Senin, 07-12-2026 14:05",
        "Orang di depan Anda: 12",
        "Perkiraan menunggu 15-25 menit",
        "-" * 32,
        "Dokumen yang perlu dibawa:",
        "- KTP",
        "- Kartu Keluarga",
        "- Akta lahir atau ijazah asli",
        "  dan fotokopinya",
        "-" * 32,
        "",
        "20261207-A001",
        "Mohon menunggu panggilan.",
        "Terima kasih.",
    ],
    ("normal", 80): [
        "Kantor Imigrasi Kelas III Non TPI Lebong",
        "-" * 48,
        "NOMOR ANTREAN",
        "A-001",
        "Penerbitan Paspor Baru",
        "Senin, 07-12-2026 14:05",
        "Orang di depan Anda: 12",
        "Perkiraan menunggu 15-25 menit",
        "-" * 48,
        "Dokumen yang perlu dibawa:",
        "- KTP",
        "- Kartu Keluarga",
        "- Akta lahir atau ijazah asli dan fotokopinya",
        "-" * 48,
        "",
        "20261207-A001",
        "Mohon menunggu panggilan. Terima kasih.",
    ],
    ("priority", 58): [
        "Kantor Imigrasi Kelas III Non",
        "TPI Lebong",
        "-" * 32,
        "NOMOR ANTREAN",
        "B-012",
        " PRIORITAS - Lansia ",
        "Penggantian Paspor Hilang atau",
        "Rusak",
        "Jumat, 04-12-2026 09:15",
        "Orang di depan Anda: 0",
        "-" * 32,
        "",
        "20261204-B012",
        "Mohon menunggu panggilan.",
        "Terima kasih.",
    ],
    ("priority", 80): [
        "Kantor Imigrasi Kelas III Non TPI Lebong",
        "-" * 48,
        "NOMOR ANTREAN",
        "B-012",
        " PRIORITAS - Lansia ",
        "Penggantian Paspor Hilang atau Rusak",
        "Jumat, 04-12-2026 09:15",
        "Orang di depan Anda: 0",
        "-" * 48,
        "",
        "20261204-B012",
        "Mohon menunggu panggilan. Terima kasih.",
    ],
}


@pytest.mark.parametrize(("name", "ticket", "width_mm"), GOLDEN_CASES)
def test_render_matches_golden(name: str, ticket: PrintedTicket, width_mm: int) -> None:
    rendered = render_ticket(ticket, PaperLayout(width_mm))
    path = golden_path(name, width_mm)
    if REGENERATE_GOLDEN:
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_bytes(rendered)
        _LOGGER.warning("Rewrote golden file %s", path)

    assert path.exists(), f"{path} is missing; run with ANTREAN_REGENERATE_GOLDEN=1"
    assert rendered == path.read_bytes()


@pytest.mark.parametrize(("name", "ticket", "width_mm"), GOLDEN_CASES)
def test_golden_decodes_to_text(
    name: str, ticket: PrintedTicket, width_mm: int
) -> None:
    lines, state = decode_escpos(golden_path(name, width_mm).read_bytes())

    assert texts(lines) == EXPECTED_LINES[(name, width_mm)]
    assert state.aligned_centre
    assert state.cut
    assert state.feed_lines > 0
    assert state.qr_codes == [ticket.ticket_id]
    assert state.images == 0


@pytest.mark.parametrize(("name", "ticket", "width_mm"), GOLDEN_CASES)
def test_golden_print_modes(name: str, ticket: PrintedTicket, width_mm: int) -> None:
    lines, _ = decode_escpos(golden_path(name, width_mm).read_bytes())
    by_text = {line.text: line for line in lines}

    label = by_text[ticket.label]
    assert label.scale == label_scale(
        ticket.label, PaperLayout(width_mm).chars_per_line
    )
    assert label.bold
    assert by_text["NOMOR ANTREAN"].scale == 1
    assert lines[0].bold
    assert not by_text["NOMOR ANTREAN"].bold

    inverted = [line.text for line in lines if line.invert]
    if ticket.priority:
        assert inverted == [" PRIORITAS - Lansia "]
        assert by_text[" PRIORITAS - Lansia "].bold
    else:
        assert inverted == []


def test_label_scale_bigger_on_80mm() -> None:
    narrow, _ = decode_escpos(render_ticket(NORMAL_TICKET, PaperLayout(58)))
    wide, _ = decode_escpos(render_ticket(NORMAL_TICKET, PaperLayout(80)))
    narrow_label = next(line for line in narrow if line.text == "A-001")
    wide_label = next(line for line in wide if line.text == "A-001")

    assert narrow_label.scale == 6
    assert wide_label.scale == 8


@pytest.mark.parametrize(
    ("label", "chars_per_line", "expected"),
    [
        ("A-001", 32, 6),
        ("A-001", 48, 8),
        ("A-0001", 32, 5),
        ("PRIO-0001", 48, 5),
        ("X", 48, 8),
        ("L" * 32, 32, 1),
        ("L" * 33, 32, 1),
    ],
)
def test_label_scale_values(label: str, chars_per_line: int, expected: int) -> None:
    assert label_scale(label, chars_per_line) == expected


LONG_NAMES_TICKET = replace(
    PRIORITY_TICKET,
    office_name="Direktorat Jenderal Imigrasi Kementerian Imigrasi dan "
    "Pemasyarakatan Republik Indonesia Kantor Imigrasi Lebong",
    service_name="Permohonan Izin Tinggal Terbatas Perpanjangan "
    "KeteranganKeimigrasianYangSangatPanjangSekaliTanpaSpasi",
    category_name="Penyandang Disabilitas dan Ibu Hamil atau Membawa Balita",
    label="ANTREAN-PRIORITAS-0000000000000000000000000001",
    people_ahead=1234567,
    wait_range=(100, 1000),
    documents=(
        "SuratKeteranganKehilanganDariKepolisianYangSangatPanjang",
        "Kartu Keluarga asli yang masih berlaku dan fotokopinya",
    ),
    reprint=True,
)


@pytest.mark.parametrize("width_mm", [58, 80])
def test_every_line_fits_width(width_mm: int) -> None:
    layout = PaperLayout(width_mm)
    lines, _ = decode_escpos(render_ticket(LONG_NAMES_TICKET, layout))

    assert len(lines) > 10
    for line in lines:
        assert len(line.text) * line.scale <= layout.chars_per_line, line


@pytest.mark.parametrize("width_mm", [58, 80])
def test_long_label_still_prints(width_mm: int) -> None:
    layout = PaperLayout(width_mm)
    lines, _ = decode_escpos(render_ticket(LONG_NAMES_TICKET, layout))
    # The label lines are the bold, not inverted lines after the heading.
    start = texts(lines).index("NOMOR ANTREAN") + 1
    label_lines = []
    for line in lines[start:]:
        if not line.bold or line.invert:
            break
        label_lines.append(line.text)

    assert all(line.scale == 1 for line in lines[start : start + len(label_lines)])
    assert "".join(label_lines) == LONG_NAMES_TICKET.label


@pytest.mark.parametrize(
    ("office_name", "expected"),
    [
        ("Kantor Imigrasi ✓ Lebong", "Kantor Imigrasi ? Lebong"),
        ("入境事务处 Lebong", "????? Lebong"),
        ("Kantor\x1b@Imigrasi", "Kantor?@Imigrasi"),
        ("Kantor\u200bImigrasi", "Kantor?Imigrasi"),
        ("Kantor   Imigrasi\n\tLebong", "Kantor Imigrasi Lebong"),
        ("Café Lebong", "Café Lebong"),
        ("Cafe\u0301 Lebong", "Café Lebong"),
    ],
)
def test_unprintable_chars_become_question_marks(
    office_name: str, expected: str
) -> None:
    ticket = replace(NORMAL_TICKET, office_name=office_name)
    lines, _ = decode_escpos(render_ticket(ticket, PaperLayout(80)))

    assert lines[0].text == expected


def test_chinese_text_not_sent_as_gb18030() -> None:
    ticket = replace(NORMAL_TICKET, office_name="入境事务处")
    rendered = render_ticket(ticket, PaperLayout(58))

    assert "入".encode("gb18030") not in rendered
    assert b"?????\n" in rendered


def test_unprintable_label_still_prints() -> None:
    ticket = replace(NORMAL_TICKET, label="✓-001")
    lines, _ = decode_escpos(render_ticket(ticket, PaperLayout(58)))

    assert "?-001" in texts(lines)


def test_codepage_selects_slot_and_encoding() -> None:
    ticket = replace(NORMAL_TICKET, service_name="Biaya €350")
    rendered = render_ticket(ticket, PaperLayout(80, codepage="cp858"))
    lines, state = decode_escpos(rendered)

    assert rendered.startswith(b"\x1b@\x1bt\x13")
    assert state.codec == "cp858"
    assert "Biaya €350" in texts(lines)


def test_default_codepage_lacks_euro_sign() -> None:
    ticket = replace(NORMAL_TICKET, service_name="Biaya €350")
    lines, state = decode_escpos(render_ticket(ticket, PaperLayout(80)))

    assert state.codec == "cp437"
    assert "Biaya ?350" in texts(lines)


def test_priority_without_category() -> None:
    ticket = replace(PRIORITY_TICKET, category_name=None)
    lines, _ = decode_escpos(render_ticket(ticket, PaperLayout(58)))
    inverted = [line.text for line in lines if line.invert]

    assert inverted == [" PRIORITAS "]


def test_render_is_deterministic() -> None:
    first = render_ticket(PRIORITY_TICKET, PaperLayout(58))
    second = render_ticket(replace(PRIORITY_TICKET), PaperLayout(58))

    assert first == second


def test_render_ends_with_feed_and_cut() -> None:
    rendered = render_ticket(NORMAL_TICKET, PaperLayout(80))

    assert rendered.endswith(b"\x1bd\x06\x1dV\x00")


@pytest.mark.parametrize(
    ("day_offset", "expected"),
    [
        (0, "Senin, 07-12-2026 14:05"),
        (1, "Selasa, 08-12-2026 14:05"),
        (2, "Rabu, 09-12-2026 14:05"),
        (3, "Kamis, 10-12-2026 14:05"),
        (4, "Jumat, 11-12-2026 14:05"),
        (5, "Sabtu, 12-12-2026 14:05"),
        (6, "Minggu, 13-12-2026 14:05"),
    ],
)
def test_format_issued_at_day_names(day_offset: int, expected: str) -> None:
    issued_at = NORMAL_TICKET.issued_at + timedelta(days=day_offset)

    assert format_issued_at(issued_at) == expected


@pytest.mark.parametrize("width_mm", [0, 57, 76, 112, -58])
def test_paper_width_rejected(width_mm: int) -> None:
    with pytest.raises(TicketError) as caught:
        PaperLayout(width_mm)

    assert f"{width_mm!r} mm" in str(caught.value)
    assert "58 or 80" in str(caught.value)


def test_paper_layout_chars_per_line() -> None:
    assert PaperLayout(58).chars_per_line == 32
    assert PaperLayout(80).chars_per_line == 48


def test_unknown_profile_rejected() -> None:
    with pytest.raises(TicketError, match="'no-such-printer'"):
        PaperLayout(58, profile="no-such-printer")


@pytest.mark.parametrize("codepage", ["CP999", "Unknown", ""])
def test_unusable_codepage_rejected(codepage: str) -> None:
    with pytest.raises(TicketError) as caught:
        PaperLayout(58, codepage=codepage)

    assert repr(codepage) in str(caught.value)
    assert "CP437" in str(caught.value)


def test_other_profile_renders() -> None:
    layout = PaperLayout(58, profile="TM-T20II")
    lines, _ = decode_escpos(render_ticket(NORMAL_TICKET, layout))

    assert texts(lines) == EXPECTED_LINES[("normal", 58)]


def test_naive_issued_at_rejected() -> None:
    with pytest.raises(TicketError, match="timezone-aware"):
        replace(NORMAL_TICKET, issued_at=datetime(2026, 12, 7, 14, 5))


def test_negative_people_ahead_rejected() -> None:
    with pytest.raises(TicketError, match="people_ahead=-1"):
        replace(NORMAL_TICKET, people_ahead=-1)


@pytest.mark.parametrize("label", ["", "   "])
def test_blank_label_rejected(label: str) -> None:
    with pytest.raises(TicketError, match="blank label"):
        replace(NORMAL_TICKET, label=label)


def test_ticket_error_is_kiosk_error() -> None:
    assert issubclass(TicketError, KioskError)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (15, 25, "Perkiraan menunggu 15-25 menit"),
        (10, 10, "Perkiraan menunggu 10 menit"),
        (0, 5, "Perkiraan menunggu 0-5 menit"),
        (0, 0, "Perkiraan menunggu kurang dari 1 menit"),
    ],
)
def test_format_wait(low: int, high: int, expected: str) -> None:
    assert format_wait(low, high) == expected


def test_no_wait_line_without_estimate() -> None:
    lines, _ = decode_escpos(render_ticket(PRIORITY_TICKET, PaperLayout(80)))

    assert not any(line.text.startswith("Perkiraan") for line in lines)


@pytest.mark.parametrize("wait_range", [(-1, 5), (10, 5)])
def test_invalid_wait_range_rejected(wait_range: tuple[int, int]) -> None:
    with pytest.raises(TicketError, match="wait_range"):
        replace(NORMAL_TICKET, wait_range=wait_range)


def test_profile_without_native_qr_prints_image() -> None:
    layout = PaperLayout(58, profile="POS-5890")
    lines, state = decode_escpos(render_ticket(NORMAL_TICKET, layout))

    assert state.qr_codes == []
    assert state.images == 1
    assert NORMAL_TICKET.ticket_id in texts(lines)
    assert "Mohon menunggu panggilan." in texts(lines)


def test_unprintable_document_becomes_question_mark() -> None:
    ticket = replace(NORMAL_TICKET, documents=("KTP ✓",))
    lines, _ = decode_escpos(render_ticket(ticket, PaperLayout(80)))

    assert "- KTP ?" in texts(lines)


def test_documents_left_aligned() -> None:
    rendered = render_ticket(NORMAL_TICKET, PaperLayout(80))
    heading = rendered.index(b"Dokumen yang perlu dibawa:")

    assert rendered[heading - 3 : heading] == b"\x1ba\x00"
    assert rendered.index(b"\x1ba\x01", heading) < rendered.index(b"\x1d(k")


def test_reprint_marked() -> None:
    reprinted = render_ticket(replace(NORMAL_TICKET, reprint=True), PaperLayout(58))
    first, _ = decode_escpos(render_ticket(NORMAL_TICKET, PaperLayout(58)))
    lines, _ = decode_escpos(reprinted)
    by_text = {line.text: line for line in lines}

    assert by_text["CETAK ULANG"].bold
    assert "CETAK ULANG" not in texts(first)


def test_appointment_time_printed() -> None:
    booked = datetime(2026, 12, 7, 14, 30, tzinfo=OFFICE_ZONE)
    ticket = replace(NORMAL_TICKET, appointment_at=booked)
    lines, _ = decode_escpos(render_ticket(ticket, PaperLayout(58)))

    assert "JANJI TEMU 14:30" in texts(lines)
    assert texts(lines).index("JANJI TEMU 14:30") < texts(lines).index(
        "Penerbitan Paspor Baru"
    )
