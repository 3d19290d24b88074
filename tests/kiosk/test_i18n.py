"""The kiosk's gettext catalogs: the .po reader, the in-memory .mo, and coverage."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kiosk import messages
from kiosk.i18n import (
    LANGUAGES,
    CatalogError,
    catalog_path,
    compile_mo,
    parse_po,
    translate,
    translations,
)

KIOSK_DIR = Path(__file__).resolve().parents[2] / "kiosk"
KV_MESSAGE = re.compile(r'_\("((?:[^"\\]|\\.)*)"')
# Ids the widgets translate in Python rather than in kv.
PYTHON_IDS = {"{count} left", "None left today"}


def used_message_ids() -> set[str]:
    ids = set(PYTHON_IDS)
    for kv in KIOSK_DIR.glob("*.kv"):
        ids |= set(KV_MESSAGE.findall(kv.read_text(encoding="utf-8")))
    for name, value in vars(messages).items():
        if not name.isupper():
            continue
        if isinstance(value, str):
            ids.add(value)
        elif isinstance(value, dict):
            ids |= set(value.values())
    return ids


def test_every_message_has_indonesian() -> None:
    catalog = {
        entry.msgid: entry
        for entry in parse_po(catalog_path("id").read_text(encoding="utf-8"))
    }
    missing = sorted(i for i in used_message_ids() if i not in catalog)

    assert missing == []


def test_translations_keep_their_fields() -> None:
    for entry in parse_po(catalog_path("id").read_text(encoding="utf-8")):
        fields = sorted(re.findall(r"\{\w+\}", entry.msgid))

        assert sorted(re.findall(r"\{\w+\}", entry.msgstrs[0])) == fields, entry.msgid


def test_indonesian_is_default_and_english_is_source() -> None:
    assert LANGUAGES == ("id", "en")
    assert translate("Touch the service you need", "id") == (
        "Sentuh layanan yang Anda perlukan"
    )
    assert translate("Touch the service you need", "en") == (
        "Touch the service you need"
    )
    assert translate("Not in any catalog", "id") == "Not in any catalog"


def test_unknown_language_translates_nothing() -> None:
    assert translate("Back", "xx") == "Back"


PO_TEXT = r"""
# A comment
msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

msgid "Hello"
msgstr "Halo"

msgid ""
"Two "
"lines"
msgstr "Dua \"baris\"\n"

#, fuzzy
msgid "Unsure"
msgstr "Ragu"

msgid "Empty"
msgstr ""

msgid "{n} ticket"
msgid_plural "{n} tickets"
msgstr[0] "{n} tiket (satu)"
msgstr[1] "{n} tiket"
"""


def test_parse_po_entries() -> None:
    entries = {entry.msgid: entry for entry in parse_po(PO_TEXT)}

    assert entries["Hello"].msgstrs == ("Halo",)
    assert entries["Two lines"].msgstrs == ('Dua "baris"\n',)
    assert entries["Unsure"].fuzzy
    assert entries["{n} ticket"].msgid_plural == "{n} tickets"
    assert entries["{n} ticket"].msgstrs == ("{n} tiket (satu)", "{n} tiket")


def test_compiled_mo_read_by_gettext() -> None:
    import gettext
    import io

    mo = compile_mo(parse_po(PO_TEXT))
    catalog = gettext.GNUTranslations(io.BytesIO(mo))

    assert catalog.gettext("Hello") == "Halo"
    assert catalog.gettext("Two lines") == 'Dua "baris"\n'
    assert catalog.gettext("Unsure") == "Unsure"
    assert catalog.gettext("Empty") == "Empty"
    assert catalog.ngettext("{n} ticket", "{n} tickets", 1) == "{n} tiket (satu)"
    assert catalog.ngettext("{n} ticket", "{n} tickets", 3) == "{n} tiket"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('msgid "a"\nmsgstr b\n', "2: 'b' is not a double-quoted string"),
        ('msgid "a"\nmsgctxt "x"\n', "2: unknown keyword 'msgctxt'"),
        ('"orphan"\n', "1: a string continues no keyword"),
        ('msgstr "x"\n\n', "2: an entry has no msgid"),
        ('msgid "a"\nmsgstr[x] "b"\n', "2: unknown keyword 'msgstr[x]'"),
    ],
)
def test_parse_po_errors_name_line(text: str, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_po(text, "test.po")

    assert f"test.po:{problem}" in str(caught.value)


def test_bundled_catalog_loads() -> None:
    catalog = translations("id")

    assert catalog.gettext("Back") == "Kembali"
