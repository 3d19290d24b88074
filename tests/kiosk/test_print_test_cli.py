"""`antrean print-test` against a file printer and a socat pty printer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pty_printer import FakeSerialPrinter, SocatPtyPair
from test_ticket import decode_escpos, texts


def antrean(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "broker", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_print_test_to_file(tmp_path: Path) -> None:
    result = antrean("print-test", "--printer", f"file:{tmp_path}", "--width", "58")

    assert result.returncode == 0, result.stderr
    assert "Printed a test ticket" in result.stdout
    [ticket] = list(tmp_path.glob("*.escpos"))
    lines, state = decode_escpos(ticket.read_bytes())
    assert "A-000" in texts(lines)
    assert "Perkiraan menunggu 15-25 menit" in texts(lines)
    assert max(len(line.text) * line.scale for line in lines) <= 32
    assert state.qr_codes == [ticket.stem]
    assert state.cut


def test_print_test_to_serial(pty_pair: SocatPtyPair, start_fake_printer) -> None:
    fake: FakeSerialPrinter = start_fake_printer({1: 0x12, 4: 0x12})

    result = antrean(
        "print-test", "--printer", f"serial:{pty_pair.printer_path}?timeout=1"
    )

    assert result.returncode == 0, result.stderr
    assert "is online" in result.stdout
    data = fake.wait_for_bytes(200)
    assert b"A-000" in data
    assert data.count(b"\x10\x04\x01") == 2
    assert b"\x1dV" in data


def test_print_test_paper_out_fails(pty_pair: SocatPtyPair, start_fake_printer) -> None:
    fake: FakeSerialPrinter = start_fake_printer({1: 0x12, 4: 0x72})

    result = antrean(
        "print-test", "--printer", f"serial:{pty_pair.printer_path}?timeout=1"
    )

    assert result.returncode == 1
    assert "is paper_out" in result.stdout
    assert "did not print" in result.stderr
    assert "the printer reports paper_out" in result.stderr
    assert b"\x1dV" not in fake.received()


def test_print_test_rejects_bad_spec(tmp_path: Path) -> None:
    result = antrean("print-test", "--printer", "lpt:/dev/lp0")

    assert result.returncode == 1
    assert "Invalid printer spec 'lpt:/dev/lp0'" in result.stderr
