"""Loading and validating site files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from broker.site import Lane, SiteError, load_site
from tests.conftest import write_site_file


def test_bundled_site_is_lebong() -> None:
    site = load_site()

    assert site.id == "lebong"
    assert site.timezone.key == "Asia/Jakarta"
    assert [s.name_id for s in site.services] == [
        "Paspor Baru",
        "Penggantian Paspor",
        "Pengambilan Paspor",
        "Informasi dan Pengaduan",
    ]
    assert [c.number for c in site.counters] == [1, 2, 3, 4]
    assert site.counter(1).lanes[0] is Lane.PRIORITY
    assert {c.key for c in site.priority_categories} == {
        "lansia",
        "ibu_hamil",
        "disabilitas",
        "balita",
    }


@pytest.mark.parametrize(
    ("old", "new", "key", "words"),
    [
        (
            'timezone = "Asia/Jakarta"',
            'timezone = "Asia/Lebong"',
            "site.timezone",
            "unknown time zone",
        ),
        ("minutes = 15", 'minutes = "15"', "services[0].minutes", "must be a number"),
        (
            'daily_quota = 60\ndocuments = ["KTP", "Kartu',
            'daily_quota = 0\ndocuments = ["KTP", "Kartu',
            "services[0].daily_quota",
            "out of range",
        ),
        (
            'services = ["A", "B"]\nlanes = ["normal"]\n\n[[counters]]\nnumber = 3',
            'services = ["A", "X"]\nlanes = ["normal"]\n\n[[counters]]\nnumber = 3',
            "counters[1].services",
            "'X', which is not defined",
        ),
        (
            'lanes = ["normal", "priority"]',
            'lanes = ["normal", "vip"]',
            "counters[3].lanes",
            "not a lane",
        ),
        ("number = 4", "number = 3", "counters[3].number", "used twice"),
        ('open = "08:00"', 'open = "8 am"', "hours.open", "not a valid value"),
        ('close = "15:00"', 'close = "07:00"', "hours.close", "not after open"),
        (
            "width_mm = 80",
            "width_mm = 75",
            "kiosks[0].printer.width_mm",
            "Use 58 or 80",
        ),
        ('code = "A"', 'code = "AB"', "services[0].code", "one capital letter"),
        ('name = "Layanan Imigrasi Lebong"', "", "site.name", "is missing"),
        ("[hours]", "[hour]", "hour", "not a known setting"),
        ("running_text =", "runing_text =", "site.runing_text", "not a known setting"),
        ('lanes = ["priority", "normal"]', 'lane = ["priority", "normal"]', "counters[0].lane", "not a known setting"),
        ('spec = "file:"\nwidth_mm = 80', 'spec = "lpt:"\nwidth_mm = 80', "kiosks[0].printer.spec", "not a valid value"),
    ],
)
def test_invalid_site_names_key_and_fix(
    tmp_path: Path, old: str, new: str, key: str, words: str
) -> None:
    path = write_site_file(tmp_path, 1883, {old: new})

    with pytest.raises(SiteError) as caught:
        load_site(path)

    assert caught.value.key == key
    assert words in str(caught.value)
    assert str(path) in str(caught.value)
    assert caught.value.fix


def test_site_file_with_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[site\nid = 1\n", encoding="utf-8")

    with pytest.raises(SiteError, match="is not valid TOML"):
        load_site(path)


def test_missing_site_file(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match="file not found"):
        load_site(tmp_path / "nowhere.toml")


def test_cli_reports_bad_site_without_traceback(tmp_path: Path) -> None:
    path = write_site_file(tmp_path, 1883, {"minutes = 15": "minutes = -1"})

    result = subprocess.run(
        [sys.executable, "-m", "broker", "status", "--site", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert f"{path}: services[0].minutes: -1.0 is out of range" in result.stderr


def test_site_file_with_byte_order_mark(tmp_path: Path) -> None:
    plain = write_site_file(tmp_path, 1883)
    marked = tmp_path / "marked.toml"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())

    assert load_site(marked).id == "lebong"


def test_site_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(write_site_file(tmp_path, 1883).read_text().replace("Lebong", "L\u00e9bong").encode("latin-1"))

    with pytest.raises(SiteError, match="is not UTF-8 text"):
        load_site(path)
