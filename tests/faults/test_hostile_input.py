"""Hostile command payloads: the decoder and the engine fuzzed with hypothesis,
then bursts of invalid and oversized payloads through the real Mosquitto.

Longer bursts: `python -m tests.faults --payloads 5000`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broker import contract
from broker.contract import (
    MAX_PAYLOAD_BYTES,
    Command,
    CommandKind,
    ContractError,
    ErrorCode,
    Role,
)
from broker.engine import Engine, Source
from broker.mosquitto import MESSAGE_SIZE_LIMIT
from broker.service import MALFORMED_LOG_EVERY, MALFORMED_LOGGED
from broker.site import load_site
from broker.store import Store
from tests.conftest import Office
from tests.faults.fault_runs import RawSender, run_payload_burst, table_rows

SITE = load_site()
FUZZ = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
ENGINE_FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

# The rules every decoded command must meet, written out again here from the
# contract's documentation so a slip in the decoder's own table shows up.
_COMMAND_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_FORMS: dict[str, re.Pattern[str]] = {
    "service": re.compile(r"[A-Z]"),
    "to_service": re.compile(r"[A-Z]"),
    "category": re.compile(r"[a-z0-9][a-z0-9_-]{0,39}"),
    "ticket": re.compile(r"[A-Z]-[0-9]{3}"),
    "code": re.compile(r"[A-Z0-9]{4,16}"),
    "officer": re.compile(r"[A-Za-z0-9]{1,32}"),
    "pin": re.compile(r"[0-9]{4,8}"),
}
_NUMBERS = {"counter", "to_counter"}
_TEXTS = {"reason": contract.MAX_REASON_LENGTH}
_FIELDS = [f.name for f in dataclasses.fields(Command)][2:]
# Values no field accepts: wrong types, out of range, blank, control and
# format characters, a lone surrogate and a trailing newline.
JUNK: tuple[Any, ...] = (
    True,
    0,
    -1,
    1000,
    1.5,
    "",
    " ",
    "x" * 200,
    "A\n",
    "a\u0000b",
    "\u200b",
    "\ud800",
    [],
    {},
)


def _meets_rules(command: Command) -> None:
    assert _COMMAND_ID.fullmatch(command.command_id)
    taken = contract.command_fields(command.kind)
    for name in _FIELDS:
        value = getattr(command, name)
        if value is None:
            assert not taken.get(name, False), f"{name} is required"
            continue
        assert name in taken, f"{command.kind} does not take {name}"
        if name in _NUMBERS:
            assert type(value) is int, (name, value)
            assert 1 <= value <= 999, (name, value)
        elif name in _TEXTS:
            assert isinstance(value, str) and value.isprintable(), (name, value)
            assert 0 < len(value) <= _TEXTS[name], (name, value)
            assert value.strip(), (name, value)
        else:
            assert _FORMS[name].fullmatch(value), (name, value)


def _decode_or_reject(payload: bytes) -> Command | None:
    try:
        command = contract.decode_command(payload)
    except ContractError:
        return None
    _meets_rules(command)
    return command


# Strategies ---------------------------------------------------------------------

_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "service": st.sampled_from("ABCDEZ"),
    "to_service": st.sampled_from("ABCDEZ"),
    "category": st.sampled_from(["lansia", "ibu_hamil", "balita", "disabilitas", "x"]),
    "counter": st.integers(1, 6) | st.integers(1, 999),
    "to_counter": st.integers(1, 6),
    "ticket": st.builds(
        "{}-{:03d}".format, st.sampled_from("ABCDZ"), st.integers(1, 6)
    ),
    "reason": st.text(
        st.characters(codec="utf-8", categories=["L", "N", "P", "Zs"]),
        min_size=1,
        max_size=contract.MAX_REASON_LENGTH,
    ).filter(lambda text: text.strip() and text.isprintable()),
    "code": st.from_regex(_FORMS["code"], fullmatch=True),
    "officer": st.from_regex(_FORMS["officer"], fullmatch=True),
    "pin": st.from_regex(_FORMS["pin"], fullmatch=True),
}
_KINDS = st.sampled_from(list(CommandKind))
_IDS = st.from_regex(_COMMAND_ID, fullmatch=True)


@st.composite
def commands(draw: st.DrawFn, command_id: str | None = None) -> Command:
    """Draw a command that passes the decoder, with site-level values valid or not."""
    kind = draw(_KINDS)
    values = {}
    for name, required in contract.command_fields(kind).items():
        if required or draw(st.booleans()):
            values[name] = draw(_VALUES[name])
    if kind is CommandKind.TRANSFER and not {"to_service", "to_counter"} & set(values):
        values["to_service"] = draw(_VALUES["to_service"])
    return Command(kind, command_id or draw(_IDS), **values)


_SOURCES = st.sampled_from(
    [
        Source(Role.KIOSK, "kiosk-1"),
        Source(Role.KIOSK, "kiosk-2"),
        Source(Role.KIOSK, "kiosk-9"),
        Source(Role.COUNTER, "1"),
        Source(Role.COUNTER, "2"),
        Source(Role.COUNTER, "4"),
        Source(Role.COUNTER, "lobby"),
        Source(Role.OPERATOR, "admin"),
        Source(Role.DISPLAY, "hall"),
        Source(Role.ENGINE, "lebong"),
    ]
)
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(JUNK[5:12]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
_FIELD_NAMES = st.sampled_from(["id", "type", *_FIELDS, "extra"])


@st.composite
def command_like_objects(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a JSON object that looks like a command: mostly a real id and type."""
    data: dict[str, Any] = {
        "id": draw(_IDS | _JSON),
        "type": draw(_KINDS.map(str) | _JSON),
    }
    for _ in range(draw(st.integers(0, 5))):
        name = draw(_FIELD_NAMES)
        data[name] = draw(_VALUES[name] | _JSON if name in _VALUES else _JSON)
    return data


# Decoder --------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=400))
def test_decoder_random_bytes(payload: bytes) -> None:
    _decode_or_reject(payload)


@FUZZ
@given(command_like_objects())
def test_decoder_command_like_json(data: dict[str, Any]) -> None:
    _decode_or_reject(json.dumps(data).encode())


@FUZZ
@given(commands())
def test_decoder_round_trip(command: Command) -> None:
    assert contract.decode_command(contract.encode(command)) == command


@FUZZ
@given(commands(), st.data())
def test_decoder_rejects_truncated(command: Command, data: st.DataObject) -> None:
    payload = contract.encode(command)
    cut = data.draw(st.integers(0, len(payload) - 1))

    with pytest.raises(ContractError):
        contract.decode_command(payload[:cut])


@pytest.mark.parametrize("name", _FIELDS)
def test_every_field_rejects_junk(name: str) -> None:
    kinds = [k for k in CommandKind if name in contract.command_fields(k)]
    assert kinds, f"no command takes the field {name}"
    kind = kinds[0]
    base = {"id": "junk-1", "type": kind.value}
    for other, required in contract.command_fields(kind).items():
        if required and other != name:
            base[other] = _EXAMPLES[other]
    for value in JUNK:
        payload = json.dumps({**base, name: value}).encode()

        with pytest.raises(ContractError, match=name):
            contract.decode_command(payload)


# One valid value per field, for the fields a kind requires besides the one tested.
_EXAMPLES: dict[str, Any] = {
    "service": "A",
    "category": "lansia",
    "counter": 2,
    "to_service": "B",
    "to_counter": 3,
    "ticket": "A-001",
    "reason": "istirahat siang",
    "code": "BK2026",
    "officer": "nip1984",
    "pin": "2468",
}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            b'{"id":"a","type":"next","counter":' + b"[" * 7000 + b"]" * 7000 + b"}",
            "deep",
        ),
        (b'{"id":"a","type":"next","counter":' + b"9" * 5000 + b"}", "not valid JSON"),
        (b'{"id":"a","type":"next","counter":NaN}', "NaN"),
        (b'{"id":"a","type":"next","counter":2,"counter":3}', "twice"),
        (b'{"id":"a","type":"next","counter":2}\n', None),
        (b'{"id":"a\\n","type":"next","counter":2}', "id"),
        (b'{"id":"a","type":["next"],"counter":2}', "type"),
        (b"\xff\xfe", "UTF-8"),
        (b"x" * (MAX_PAYLOAD_BYTES + 1), "exceeds the limit"),
    ],
)
def test_decoder_edge_payloads(payload: bytes, reason: str | None) -> None:
    if reason is None:
        assert contract.decode_command(payload).counter == 2
        return
    with pytest.raises(ContractError, match=reason):
        contract.decode_command(payload)


# Engine ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty database file that each example copies."""
    path = tmp_path_factory.mktemp("fuzz-template") / "antrean.sqlite"
    Store(path).close()
    return path


class StepClock:
    """A clock that starts at 09:00 in Lebong and moves seven seconds a reading."""

    def __init__(self) -> None:
        self.now = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=7)
        return self.now


def _rows_but_log(store: Store) -> dict[str, list[tuple[object, ...]]]:
    rows = table_rows(lambda query: store.db.execute(query).fetchall())
    # Every command, rejected or not, is logged with its reply in `commands`.
    del rows["commands"]
    return rows


def _logged(store: Store, command_id: str) -> int:
    query = "SELECT COUNT(*) FROM commands WHERE command_id = ?"
    return int(store.db.execute(query, [command_id]).fetchone()[0])


@ENGINE_FUZZ
@given(st.lists(st.tuples(commands(), _SOURCES), min_size=1, max_size=20))
def test_engine_random_commands(
    template_database: Path, steps: list[tuple[Command, Source]]
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "antrean.sqlite"
        shutil.copy(template_database, path)
        store = Store(path)
        engine = Engine(SITE, store, clock=StepClock())
        try:
            for number, (drawn, source) in enumerate(steps):
                command = dataclasses.replace(drawn, command_id=f"step-{number}")
                _check_one_command(engine, command, source)
        finally:
            store.close()


def _check_one_command(engine: Engine, command: Command, source: Source) -> None:
    before = _rows_but_log(engine.store)
    outcome = engine.handle(command, source)
    after = _rows_but_log(engine.store)
    repeated = engine.handle(command, source)
    reply = outcome.reply

    assert reply.command_id == command.command_id
    assert contract.decode_reply(contract.encode(reply)) == reply
    assert _logged(engine.store, command.command_id) == 1
    if not reply.ok and reply.error is not ErrorCode.NOBODY_WAITING:
        assert after == before, f"rejected {command.kind} changed rows: {reply}"
    assert repeated.repeat is True
    assert repeated.reply == reply
    assert _rows_but_log(engine.store) == after


# Through Mosquitto ----------------------------------------------------------------


def _reader(office: Office) -> Any:
    database = office.data_dir / "antrean.sqlite"

    def read(query: str) -> list[tuple[object, ...]]:
        connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            return connection.execute(query).fetchall()
        finally:
            connection.close()

    return read


def test_burst_changes_nothing(
    office: Office, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="broker.service")
    payloads = 300

    summary = run_payload_burst(
        office.site, office.data_dir, _reader(office), payloads, 4
    )
    kiosk = office.client(Role.KIOSK, "kiosk-1")
    after = kiosk.request(Command(CommandKind.ISSUE_TICKET, "after-burst", service="A"))
    warnings = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]

    assert summary.invalid_replies == payloads
    assert summary.other_replies == 0
    assert summary.unanswered == 0
    assert summary.changed_tables == ()
    assert after.ok, after.message
    assert any("from kiosk kiosk-1" in line for line in warnings)
    assert any("from operator fuzz" in line for line in warnings)
    per_sender = MALFORMED_LOGGED + payloads // 2 // MALFORMED_LOG_EVERY
    assert len(warnings) <= 2 * per_sender


def test_oversized_payloads_rejected(office: Office) -> None:
    # Mosquitto 2.0 drops the connection of a client that publishes more than
    # message_size_limit; the engine rejects what passes the broker but exceeds
    # MAX_PAYLOAD_BYTES. Each goes from its own connection, because paho sends
    # a dropped connection's unacknowledged messages again on reconnecting.
    read = _reader(office)
    before = table_rows(read)
    huge = RawSender(office.site, office.data_dir, Role.OPERATOR, "huge")
    large = RawSender(office.site, office.data_dir, Role.OPERATOR, "large")
    command = {"id": "large-1", "type": "pause_counter", "counter": 1, "reason": "x"}
    try:
        huge.send(b"x" * (MESSAGE_SIZE_LIMIT + 1), b"huge-1")
        with huge.lock:
            dropped = huge.lock.wait_for(lambda: huge.disconnects > 0, 10)
        large.send(json.dumps(command).encode() + b" " * MAX_PAYLOAD_BYTES, b"large-1")
        answered = large.wait_replies(1)
    finally:
        huge.close()
        large.close()

    assert dropped
    assert huge.replies == {}
    assert answered
    assert large.replies[b"large-1"].error is ErrorCode.INVALID
    assert "exceeds the limit" in large.replies[b"large-1"].message
    assert table_rows(read) == before
