"""Officers: salted scrypt hashes of their PINs, their logins at counters and
their counts of the day, as rows of the office's SQLite file.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from broker.contract import OFFICER_ID, PIN_PATTERN, ErrorCode, TicketStatus
from broker.errors import AntreanError
from broker.store import Store, timestamp

_LOGGER = logging.getLogger(__name__)

# scrypt cost parameters (RFC 7914): N=2^14 and r=8 take 16 MiB and about
# 50 ms per hash, which is slow for guessing and quick enough for a login.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
KEY_BYTES = 32
SALT_BYTES = 16
HASH_SCHEME = "scrypt"
# Wrong PINs for one officer id, or from one device, within the window that
# lock further logins of that id or from that device until the window passes.
LOGIN_FAILURE_LIMIT = 5
LOGIN_LOCK_MINUTES = 10


class OfficerError(AntreanError):
    """An officer id, name or PIN is invalid, or the officer is unknown or exists."""


@dataclass(frozen=True)
class Officer:
    """An officer as `antrean officers list` shows one."""

    id: str
    name: str
    created_at: str
    updated_at: str


# PIN hashing -----------------------------------------------------------------


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """Hash a PIN with scrypt and a random salt into "scrypt$N$r$p$salt$key" (hex)."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = _derive(pin, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return "$".join(
        [
            HASH_SCHEME,
            str(SCRYPT_N),
            str(SCRYPT_R),
            str(SCRYPT_P),
            salt.hex(),
            key.hex(),
        ]
    )


def verify_pin(pin: str, stored: str) -> bool:
    """Tell whether a PIN matches a stored hash, in time independent of the match."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != HASH_SCHEME:
            raise ValueError(f"unknown scheme {scheme!r}")
        expected = bytes.fromhex(key)
        actual = _derive(pin, bytes.fromhex(salt), int(n), int(r), int(p))
    except ValueError as exc:
        _LOGGER.error("An officer's PIN hash is unreadable: %s", exc)
        return False
    return hmac.compare_digest(actual, expected)


def verify_unknown(pin: str) -> bool:
    """Spend the time of one PIN check and return False, for an unknown officer id.

    Without it a wrong id would be rejected faster than a wrong PIN, which
    would show a guesser which ids exist.
    """
    verify_pin(pin, _dummy_hash())
    return False


@cache
def _dummy_hash() -> str:
    return hash_pin(secrets.token_hex(8))


def _derive(pin: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    # maxmem leaves room above the 128 * N * r bytes scrypt needs.
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r, dklen=KEY_BYTES
    )


# Input checks ----------------------------------------------------------------


def check_officer_id(officer_id: str) -> str:
    """Return an officer id unchanged, or raise OfficerError naming the rule."""
    if not OFFICER_ID.match(officer_id):
        raise OfficerError(
            f"officer id {officer_id!r} is invalid. Use 1 to 32 letters or digits, "
            "for example the officer's NIP."
        )
    return officer_id


def check_pin(pin: str) -> str:
    """Return a PIN unchanged, or raise OfficerError without echoing it."""
    if not PIN_PATTERN.match(pin):
        raise OfficerError("the PIN is invalid. Use 4 to 8 digits.")
    return pin


def check_name(name: str) -> str:
    """Return a trimmed officer name, or raise OfficerError."""
    trimmed = " ".join(name.split())
    if not 1 <= len(trimmed) <= 60:
        raise OfficerError(f"name {name!r} is invalid. Use 1 to 60 characters.")
    return trimmed


# The officers table ----------------------------------------------------------


def add_officer(
    store: Store,
    officer_id: str,
    name: str,
    pin: str,
    now: datetime,
    *,
    replace: bool = False,
) -> None:
    """Store an officer with a new PIN hash; replace=True overwrites one that exists."""
    check_officer_id(officer_id)
    name = check_name(name)
    check_pin(pin)
    existing = find_officer(store, officer_id)
    if existing is not None and not replace:
        raise OfficerError(
            f"officer {officer_id} already exists ({existing['name']}). "
            "Pass --replace to set a new name and PIN."
        )
    stamp = timestamp(now)
    row = {
        "id": officer_id,
        "name": name,
        "pin_hash": hash_pin(pin),
        "created_at": existing["created_at"] if existing else stamp,
        "updated_at": stamp,
    }
    with store.transaction():
        store.db["officers"].upsert(row, pk="id")
    _LOGGER.info("%s officer %s", "Replaced" if existing else "Added", officer_id)


def find_officer(store: Store, officer_id: str) -> dict[str, Any] | None:
    """Return an officer's row, with its PIN hash, or None."""
    rows = list(store.db.query("SELECT * FROM officers WHERE id = ?", [officer_id]))
    return rows[0] if rows else None


def list_officers(store: Store) -> list[Officer]:
    """Return every officer, ordered by id, without PIN hashes."""
    rows = store.db.query(
        "SELECT id, name, created_at, updated_at FROM officers ORDER BY id"
    )
    return [Officer(**row) for row in rows]


def officer_names(store: Store) -> dict[str, str]:
    """Return the name of every officer by id."""
    return {
        officer_id: name
        for officer_id, name in store.db.execute("SELECT id, name FROM officers")
    }


# Logins ----------------------------------------------------------------------


def active_logins(store: Store, day: str) -> dict[int, dict[str, Any]]:
    """Return the open login of each counter on a day; logins end with their day."""
    rows = store.db.query(
        "SELECT * FROM officer_logins WHERE day = ? AND logout_at IS NULL ORDER BY seq",
        [day],
    )
    return {row["counter"]: row for row in rows}


def active_login(store: Store, day: str, counter: int) -> dict[str, Any] | None:
    """Return the open login of one counter on a day, or None."""
    return store.first_row(
        "SELECT * FROM officer_logins WHERE day = ? AND counter = ? "
        "AND logout_at IS NULL ORDER BY seq DESC LIMIT 1",
        [day, counter],
    )


def start_login(
    store: Store, day: str, counter: int, officer_id: str, at: str, command_id: str
) -> None:
    """Record an officer's login at a counter."""
    store.db["officer_logins"].insert(
        {
            "day": day,
            "counter": counter,
            "officer": officer_id,
            "login_at": at,
            "login_command_id": command_id,
        }
    )


def end_login(store: Store, seq: int, at: str, command_id: str, ended_by: str) -> None:
    """Close a login; ended_by records why (logout, or another officer's login)."""
    store.db["officer_logins"].update(
        seq, {"logout_at": at, "logout_command_id": command_id, "ended_by": ended_by}
    )


def recent_failures(store: Store, officer_id: str, device: str, since: datetime) -> int:
    """Count wrong-PIN logins for an officer id or from a device since a moment."""
    row = store.db.execute(
        """
        SELECT COUNT(*) FROM commands
        WHERE kind = 'login' AND error = ? AND received_at >= ?
          AND (json_extract(payload, '$.officer') = ? OR device = ?)
        """,
        [ErrorCode.LOGIN_FAILED.value, timestamp(since), officer_id, device],
    ).fetchone()
    return int(row[0])


def day_counts(store: Store, day: str) -> dict[str, tuple[int, int]]:
    """Return each officer's finished and no-show visits of a day."""
    rows = store.db.execute(
        """
        SELECT officer,
               SUM(status = ?) AS served,
               SUM(status = ?) AS no_shows
        FROM tickets WHERE day = ? AND officer IS NOT NULL GROUP BY officer
        """,
        [TicketStatus.FINISHED.value, TicketStatus.NO_SHOW.value, day],
    )
    return {officer: (int(served), int(no_shows)) for officer, served, no_shows in rows}
