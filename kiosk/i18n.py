"""The kiosk's languages: gettext catalogs read from the .po files under locale/.

Message ids are English, so English needs no catalog. Each .po file is compiled
to the .mo format in memory and handed to gettext.GNUTranslations, because the
standard library reads .mo files but has no .po compiler of its own.
"""

from __future__ import annotations

import ast
import functools
import gettext
import io
import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from kiosk.errors import KioskError

_LOGGER = logging.getLogger(__name__)

DOMAIN = "kiosk"
LOCALE_DIR = Path(__file__).with_name("locale")
DEFAULT_LANGUAGE = "id"
SOURCE_LANGUAGE = "en"
LANGUAGES = (DEFAULT_LANGUAGE, SOURCE_LANGUAGE)

MO_MAGIC = 0x950412DE
# The .mo header is seven 32-bit words; the string tables follow it.
MO_HEADER_BYTES = 7 * 4


class CatalogError(KioskError):
    """A .po catalog that cannot be read or parsed."""


@dataclass(frozen=True)
class CatalogEntry:
    """One message of a .po file: its id, plural id and translations."""

    msgid: str
    msgstrs: tuple[str, ...]
    msgid_plural: str | None = None
    fuzzy: bool = False


def catalog_path(language: str) -> Path:
    """Return the .po file of a language."""
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """Return a language's translations; English and unknown languages have none."""
    if language == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    path = catalog_path(language)
    if not path.exists():
        _LOGGER.warning("No catalog for language %r at %s", language, path)
        return gettext.NullTranslations()
    entries = parse_po(path.read_text(encoding="utf-8"), str(path))
    return gettext.GNUTranslations(io.BytesIO(compile_mo(entries)))


def translate(msgid: str, language: str) -> str:
    """Return a message in a language, or the English id when it has no translation."""
    return translations(language).gettext(msgid)


def compile_mo(entries: list[CatalogEntry]) -> bytes:
    """Return the .mo file of the entries; fuzzy and untranslated ones are left out."""
    pairs: dict[bytes, bytes] = {}
    for entry in entries:
        if entry.fuzzy or not any(entry.msgstrs):
            continue
        key = entry.msgid
        if entry.msgid_plural is not None:
            key = f"{entry.msgid}\0{entry.msgid_plural}"
        pairs[key.encode("utf-8")] = "\0".join(entry.msgstrs).encode("utf-8")
    keys = sorted(pairs)
    count = len(keys)
    # Layout: header, originals table, translations table, then the strings.
    strings_start = MO_HEADER_BYTES + 16 * count
    tables: list[int] = []
    blob = bytearray()
    for text in [*keys, *(pairs[key] for key in keys)]:
        tables += [len(text), strings_start + len(blob)]
        blob += text + b"\0"
    header = struct.pack(
        "<7I", MO_MAGIC, 0, count, MO_HEADER_BYTES, MO_HEADER_BYTES + 8 * count, 0, 0
    )
    return header + struct.pack(f"<{len(tables)}I", *tables) + bytes(blob)


def parse_po(text: str, source: str = "<po>") -> list[CatalogEntry]:
    """Parse the entries of a .po file; raises CatalogError naming the line at fault."""
    parser = _PoParser(source)
    for number, line in enumerate(text.splitlines(), start=1):
        parser.feed(number, line.strip())
    parser.finish()
    return parser.entries


class _PoParser:
    """A line-by-line reader of msgid, msgid_plural, msgstr and msgstr[n] entries."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.entries: list[CatalogEntry] = []
        self.fields: dict[str, str] = {}
        self.current: str | None = None
        self.fuzzy = False
        self.line = 0

    def feed(self, number: int, line: str) -> None:
        self.line = number
        if not line:
            self.finish()
        elif line.startswith("#,"):
            self.finish()
            self.fuzzy = "fuzzy" in line
        elif line.startswith("#"):
            self.finish()
        elif line.startswith('"'):
            if self.current is None:
                self.fail("a string continues no keyword")
            self.fields[self.current] += self.string(line)
        else:
            keyword, _, rest = line.partition(" ")
            if keyword == "msgid" and "msgid" in self.fields:
                self.finish()
            plural_form = (
                keyword.startswith("msgstr[")
                and keyword.endswith("]")
                and keyword[len("msgstr[") : -1].isdigit()
            )
            if keyword not in ("msgid", "msgid_plural", "msgstr") and not plural_form:
                self.fail(f"unknown keyword {keyword!r}")
            self.current = keyword
            self.fields[keyword] = self.string(rest.strip())

    def finish(self) -> None:
        if not self.fields:
            return
        if "msgid" not in self.fields:
            self.fail("an entry has no msgid")
        plural = self.fields.get("msgid_plural")
        if plural is None:
            msgstrs = (self.fields.get("msgstr", ""),)
        else:
            forms = sorted(
                (k for k in self.fields if k.startswith("msgstr[")),
                key=lambda k: int(k[len("msgstr[") : -1]),
            )
            msgstrs = tuple(self.fields[k] for k in forms)
        self.entries.append(
            CatalogEntry(self.fields["msgid"], msgstrs, plural, self.fuzzy)
        )
        self.fields, self.current, self.fuzzy = {}, None, False

    def string(self, token: str) -> str:
        if len(token) < 2 or not (token.startswith('"') and token.endswith('"')):
            self.fail(f"{token!r} is not a double-quoted string")
        try:
            # .po strings use C escapes, which Python string literals share.
            value = ast.literal_eval(token)
        except (SyntaxError, ValueError) as exc:
            raise CatalogError(
                f"{self.source}:{self.line}: {token!r} is not a valid string ({exc})"
            ) from exc
        return str(value)

    def fail(self, problem: str) -> None:
        raise CatalogError(
            f"{self.source}:{self.line}: {problem}. Fix the catalog with a .po editor."
        )
