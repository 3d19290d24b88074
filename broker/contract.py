"""The MQTT contract of an office: topics, message types and their one JSON codec.

Only this module spells topic strings and payload fields. Every message is a
frozen dataclass; `encode` turns one into bytes and the `decode_*` functions
turn bytes back, raising ContractError with the field at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

from broker.errors import AntreanError
from broker.site import Lane

T = TypeVar("T")

TOPIC_ROOT = "antrean"
MAX_PAYLOAD_BYTES = 16 * 1024
# The retained office state lists every counter, so it alone may be larger: a
# site has at most site.MAX_COUNTERS, with names of up to site.MAX_COUNTER_NAME
# characters. 200 such counters, each serving a ticket, make a state of about
# 100 KB (tests/broker/test_large_office.py).
MAX_STATE_BYTES = 256 * 1024
MAX_COMMAND_ID_LENGTH = 64
_COMMAND_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_TICKET_LABEL = re.compile(r"^[A-Z]-[0-9]{3}$")
# Officer ids are letters and digits only, so "-" and "." stay free as keypad keys.
OFFICER_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
PIN_PATTERN = re.compile(r"^[0-9]{4,8}$")
# Appointment codes are compared in capitals; the kiosk upper-cases what it reads.
APPOINTMENT_CODE = re.compile(r"^[A-Z0-9]{4,16}$")
MAX_REASON_LENGTH = 120


class ContractError(AntreanError):
    """A payload does not follow the contract."""


class Role(StrEnum):
    """The kinds of client an office has."""

    ENGINE = "engine"
    KIOSK = "kiosk"
    COUNTER = "counter"
    DISPLAY = "display"
    OPERATOR = "operator"


class CommandKind(StrEnum):
    """Every command the engine applies."""

    ISSUE_TICKET = "issue_ticket"
    NEXT = "next"
    RECALL = "recall"
    NO_SHOW = "no_show"
    FINISH = "finish"
    TRANSFER = "transfer"
    CALL = "call"
    CANCEL = "cancel"
    OPEN_COUNTER = "open_counter"
    PAUSE_COUNTER = "pause_counter"
    CLOSE_COUNTER = "close_counter"
    CHECK_IN = "check_in"
    PRINT_FAILED = "print_failed"
    REPRINT = "reprint"
    LOGIN = "login"
    LOGOUT = "logout"
    START = "start"


class TicketStatus(StrEnum):
    """Where a ticket is in its life."""

    WAITING = "waiting"
    CALLED = "called"
    SERVING = "serving"
    FINISHED = "finished"
    NO_SHOW = "no_show"
    TRANSFERRED = "transferred"
    VOID = "void"
    # Issued, but the kiosk could not print it: out of the queue until a reprint.
    NOT_PRINTED = "not_printed"


class ErrorCode(StrEnum):
    """Why the engine did not apply a command."""

    INVALID = "invalid"
    UNKNOWN_SERVICE = "unknown_service"
    UNKNOWN_CATEGORY = "unknown_category"
    UNKNOWN_COUNTER = "unknown_counter"
    QUOTA_REACHED = "quota_reached"
    NOBODY_WAITING = "nobody_waiting"
    NO_CURRENT_TICKET = "no_current_ticket"
    NOT_SERVED = "not_served"
    UNAVAILABLE = "unavailable"
    FORBIDDEN = "forbidden"
    UNKNOWN_TICKET = "unknown_ticket"
    APPOINTMENT_NOT_FOUND = "appointment_not_found"
    APPOINTMENT_USED = "appointment_used"
    APPOINTMENT_TOO_EARLY = "appointment_too_early"
    APPOINTMENT_TOO_LATE = "appointment_too_late"
    NOT_REPRINTABLE = "not_reprintable"
    NOT_LOGGED_IN = "not_logged_in"
    LOGIN_FAILED = "login_failed"
    LOGIN_LOCKED = "login_locked"
    LOGGED_IN_ELSEWHERE = "logged_in_elsewhere"
    ALREADY_STARTED = "already_started"
    TICKET_AT_COUNTER = "ticket_at_counter"


class CounterAvailability(StrEnum):
    """Whether a counter takes tickets now, as its officer last declared or its calls show."""

    OPEN = "open"
    PAUSED = "paused"
    CLOSED = "closed"


class Topics:
    """Topic names of one site, all under antrean/<site id>/."""

    def __init__(self, site_id: str) -> None:
        self.root = f"{TOPIC_ROOT}/{site_id}"
        self.state = f"{self.root}/state"
        self.calls = f"{self.root}/event/call"
        self.commands = f"{self.root}/cmd/+/+"
        self.statuses = f"{self.root}/status/+/+"
        self.print_requests = f"{self.root}/print/+"

    def command(self, role: Role, device: str) -> str:
        """Return the topic a device sends its commands to."""
        return f"{self.root}/cmd/{role.value}/{device}"

    def reply(self, username: str, client_id: str) -> str:
        """Return the response topic of one client connection.

        The broker ACL lets each username read only replies under its own name.
        """
        return f"{self.root}/reply/{username}/{client_id}"

    def status(self, role: Role, device: str) -> str:
        """Return the retained online/offline topic of a device."""
        return f"{self.root}/status/{role.value}/{device}"

    def print_request(self, kiosk: str) -> str:
        """Return the topic on which the engine asks one kiosk to print a ticket."""
        return f"{self.root}/print/{kiosk}"

    def parse_command_topic(self, topic: str) -> tuple[Role, str]:
        """Return the role and device id a command topic names."""
        parts = topic.split("/")
        prefix = self.root.split("/")
        if (
            len(parts) != len(prefix) + 3
            or parts[: len(prefix)] != prefix
            or parts[len(prefix)] != "cmd"
        ):
            raise ContractError(f"{topic!r} is not a command topic of {self.root}")
        try:
            role = Role(parts[-2])
        except ValueError as exc:
            raise ContractError(f"{parts[-2]!r} in {topic!r} is not a role") from exc
        return role, parts[-1]

    def parse_status_topic(self, topic: str) -> tuple[Role, str]:
        """Return the role and device id a status topic names."""
        parts = topic.split("/")
        if len(parts) < 2:
            raise ContractError(f"{topic!r} is not a status topic")
        try:
            return Role(parts[-2]), parts[-1]
        except ValueError as exc:
            raise ContractError(f"{parts[-2]!r} in {topic!r} is not a role") from exc


@dataclass(frozen=True)
class Command:
    """A request to change the queue, sent by a kiosk, a counter or an operator."""

    kind: CommandKind
    command_id: str
    service: str | None = None
    category: str | None = None
    counter: int | None = None
    to_service: str | None = None
    to_counter: int | None = None
    ticket: str | None = None
    reason: str | None = None
    code: str | None = None
    officer: str | None = None
    # Kept out of repr so that a logged command never shows it.
    pin: str | None = field(default=None, repr=False)


# Which fields each command kind takes, and whether each is required.
_COMMAND_FIELDS: dict[CommandKind, dict[str, bool]] = {
    CommandKind.ISSUE_TICKET: {"service": True, "category": False},
    CommandKind.NEXT: {"counter": True},
    CommandKind.RECALL: {"counter": True},
    CommandKind.NO_SHOW: {"counter": True},
    CommandKind.FINISH: {"counter": True},
    CommandKind.TRANSFER: {"counter": True, "to_service": False, "to_counter": False},
    CommandKind.CALL: {"counter": True, "ticket": True},
    CommandKind.CANCEL: {"ticket": True, "reason": False},
    CommandKind.OPEN_COUNTER: {"counter": True},
    CommandKind.PAUSE_COUNTER: {"counter": True, "reason": False},
    CommandKind.CLOSE_COUNTER: {"counter": True, "reason": False},
    CommandKind.CHECK_IN: {"code": True},
    CommandKind.PRINT_FAILED: {"ticket": True, "reason": False},
    CommandKind.REPRINT: {"ticket": True, "counter": True},
    CommandKind.LOGIN: {"counter": True, "officer": True, "pin": True},
    CommandKind.LOGOUT: {"counter": True},
    CommandKind.START: {"counter": True},
}
# The same forms the site file allows for service codes and category keys.
_SERVICE_CODE = re.compile(r"[A-Z]")
_CATEGORY_KEY = re.compile(r"[a-z0-9][a-z0-9_-]{0,39}")
# Values quoted in error messages are cut to this many characters.
_SHOWN_LENGTH = 40


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) <= _SHOWN_LENGTH:
        return text
    return f"{text[: _SHOWN_LENGTH - 3]}..."


@dataclass(frozen=True)
class FieldRule:
    """The values one command field accepts: a whole number from 1 to 999, a
    string that matches a pattern in full, or printable text of bounded length."""

    form: str
    pattern: re.Pattern[str] | None = None
    max_length: int = 0
    number: bool = False
    # A secret value (a PIN) is never quoted back in an error message.
    secret: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raise ContractError naming the field unless `value` follows the rule."""
        if self.number:
            valid = type(value) is int and 0 < value < 1000
        elif not isinstance(value, str):
            valid = False
        elif self.pattern is not None:
            valid = self.pattern.fullmatch(value) is not None
        else:
            valid = (
                0 < len(value) <= self.max_length
                and value.isprintable()
                and not value.isspace()
            )
        if not valid:
            quoted = "" if self.secret else f", not {_shown(value)}"
            raise ContractError(f"{name} must be {self.form}{quoted}")


_COUNTER_RULE = FieldRule("a counter number from 1 to 999", number=True)
_SERVICE_RULE = FieldRule("a service code: one capital letter", _SERVICE_CODE)
# Every field of Command, each checked by decode_command before the engine gets it.
_FIELD_RULES: dict[str, FieldRule] = {
    "service": _SERVICE_RULE,
    "category": FieldRule(
        "a priority category key: lowercase letters, digits, - and _", _CATEGORY_KEY
    ),
    "counter": _COUNTER_RULE,
    "to_service": _SERVICE_RULE,
    "to_counter": _COUNTER_RULE,
    "ticket": FieldRule(
        "a label like A-001 (a service letter, a dash and three digits)",
        _TICKET_LABEL,
    ),
    "reason": FieldRule(
        f"text of 1 to {MAX_REASON_LENGTH} printable characters",
        max_length=MAX_REASON_LENGTH,
    ),
    "code": FieldRule("4 to 16 capital letters or digits", APPOINTMENT_CODE),
    "officer": FieldRule("1 to 32 letters or digits", OFFICER_ID),
    # The value is never quoted: it may be a mistyped real PIN.
    "pin": FieldRule("4 to 8 digits", PIN_PATTERN, secret=True),
}


def command_fields(kind: CommandKind) -> dict[str, bool]:
    """Return the fields a command kind takes, each mapped to whether it is required."""
    return dict(_COMMAND_FIELDS[kind])


@dataclass(frozen=True)
class WaitRange:
    """An estimated wait in whole minutes: the point estimate and its 80 % range."""

    minutes: int
    low: int
    high: int


@dataclass(frozen=True)
class TicketView:
    """A ticket as clients see it."""

    id: str
    label: str
    service: str
    lane: Lane
    status: TicketStatus
    issued_at: datetime
    category: str | None = None
    counter: int | None = None
    called_at: datetime | None = None
    people_ahead: int = 0
    # The wait estimated when the ticket was issued; None when it had no bound.
    estimate: WaitRange | None = None
    # The booked time of an appointment ticket; None for a walk-in ticket.
    appointment_at: datetime | None = None
    # When the officer started serving it (START); None before that.
    served_at: datetime | None = None


@dataclass(frozen=True)
class Reply:
    """The engine's answer to one command; repeats of a command id get the same one."""

    command_id: str
    ok: bool
    error: ErrorCode | None = None
    message: str = ""
    ticket: TicketView | None = None


@dataclass(frozen=True)
class CallEvent:
    """A ticket called (or called again) to a counter."""

    seq: int
    at: datetime
    ticket: TicketView
    counter: int
    counter_name: str
    recall: bool = False


@dataclass(frozen=True)
class CounterState:
    """A counter and the ticket it has called or is serving."""

    number: int
    name: str
    current: TicketView | None = None
    availability: CounterAvailability = CounterAvailability.OPEN
    reason: str = ""
    # The officer logged in here, "" for none, and that officer's counts today.
    officer: str = ""
    officer_name: str = ""
    served: int = 0
    no_shows: int = 0


@dataclass(frozen=True)
class ServiceLoad:
    """Today's figures of one service: who waits in each lane and what is left."""

    code: str
    waiting_normal: int
    waiting_priority: int
    issued: int
    quota: int
    # The wait a ticket issued now would be told, per lane; None without a bound.
    wait_normal: WaitRange | None = None
    wait_priority: WaitRange | None = None

    @property
    def remaining(self) -> int:
        """Tickets that can still be issued today."""
        return max(self.quota - self.issued, 0)


@dataclass(frozen=True)
class WaitingTicket:
    """A waiting ticket as the counters' waiting lists show it."""

    label: str
    service: str
    lane: Lane
    arrived_at: datetime
    category: str | None = None
    # The counter a transfer reserved it for; None when any counter may take it.
    target_counter: int | None = None


@dataclass(frozen=True)
class OfficeState:
    """The whole picture clients render, retained so a new client is current at once."""

    site: str
    at: datetime
    day: str
    counters: tuple[CounterState, ...] = ()
    services: tuple[ServiceLoad, ...] = ()
    recent_calls: tuple[CallEvent, ...] = ()
    # The oldest waiting tickets of each service and lane, in arrival order;
    # bounded by the engine (broker.state.WAITING_LISTED_PER_LANE).
    waiting: tuple[WaitingTicket, ...] = ()
    # Today's latest tickets that a kiosk could not print, newest first, so a
    # counter can reprint one (bounded by broker.state.UNPRINTED_LISTED).
    unprinted: tuple[WaitingTicket, ...] = ()

    def service(self, code: str) -> ServiceLoad | None:
        """Return the figures of one service, or None."""
        return next((s for s in self.services if s.code == code), None)

    def counter(self, number: int) -> CounterState | None:
        """Return one counter's state, or None."""
        return next((c for c in self.counters if c.number == number), None)


@dataclass(frozen=True)
class PrintRequest:
    """The engine asking the kiosk that issued a ticket to print it again."""

    at: datetime
    ticket: TicketView
    counter: int
    counter_name: str
    command_id: str


@dataclass(frozen=True)
class DeviceStatus:
    """A device's retained presence; its last will sets online to false."""

    role: Role
    device: str
    online: bool
    at: datetime | None = None
    detail: dict[str, Any] = field(default_factory=dict)


# Encoding ------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if hasattr(value, "__dataclass_fields__"):
        return {
            name: _plain(getattr(value, name)) for name in value.__dataclass_fields__
        }
    return value


def encode(message: Any) -> bytes:
    """Encode a contract dataclass as compact UTF-8 JSON."""
    if isinstance(message, Command):
        body = {"type": message.kind.value, "id": message.command_id}
        for name in _COMMAND_FIELDS[message.kind]:
            value = getattr(message, name)
            if value is not None:
                body[name] = value
        return json.dumps(body, separators=(",", ":")).encode()
    return json.dumps(
        _plain(message), separators=(",", ":"), ensure_ascii=False
    ).encode()


# Decoding ------------------------------------------------------------------


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        twice = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ContractError(f"payload names the field {_shown(twice)} twice")
    return data


def _no_constant(name: str) -> Any:
    raise ContractError(f"payload contains {name}, which is not valid JSON")


def _load(payload: bytes, limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    if len(payload) > limit:
        raise ContractError(
            f"payload of {len(payload)} bytes exceeds the limit of {limit}"
        )
    try:
        text = payload.decode("utf-8")
        data = json.loads(
            text, object_pairs_hook=_unique_keys, parse_constant=_no_constant
        )
    except UnicodeDecodeError as exc:
        raise ContractError(f"payload is not UTF-8: {exc}") from exc
    except RecursionError as exc:
        raise ContractError("payload nests lists or objects too deeply") from exc
    except ValueError as exc:
        # JSONDecodeError, and Python's limit on the digits of an integer.
        raise ContractError(f"payload is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ContractError("payload must be a JSON object")
    return data


def decode_command(payload: bytes) -> Command:
    """Decode and validate a command; the error names the field at fault.

    Every value is checked against its field's rule (type, range, pattern or
    printable length) here, so no malformed value reaches the engine.
    """
    data = _load(payload)
    command_id = data.get("id")
    if not isinstance(command_id, str) or not _COMMAND_ID.fullmatch(command_id):
        raise ContractError(
            "id must be a string of 1 to 64 letters, digits or . _ : -, "
            "made unique by the sender"
        )
    kind = _command_kind(data.get("type"))
    fields = _COMMAND_FIELDS[kind]
    unknown = set(data) - set(fields) - {"id", "type"}
    if unknown:
        raise ContractError(
            f"{kind.value} takes no field {_shown(sorted(unknown)[0])}; "
            f"it takes {sorted(fields)}"
        )
    values: dict[str, Any] = {}
    for name, required in fields.items():
        value = data.get(name)
        if value is None:
            if required:
                raise ContractError(f"{kind.value} needs the field {name!r}")
            continue
        _FIELD_RULES[name].check(name, value)
        values[name] = value
    if (
        kind is CommandKind.TRANSFER
        and "to_service" not in values
        and "to_counter" not in values
    ):
        raise ContractError("transfer needs to_service, to_counter or both")
    return Command(kind=kind, command_id=command_id, **values)


def _command_kind(name: Any) -> CommandKind:
    if not isinstance(name, str):
        raise ContractError(
            f"type must be a string naming a command, not {_shown(name)}"
        )
    try:
        return CommandKind(name)
    except ValueError as exc:
        kinds = ", ".join(k.value for k in CommandKind)
        raise ContractError(
            f"type {_shown(name)} is not a command; use one of {kinds}"
        ) from exc


def _get(data: dict[str, Any], name: str, convert: Callable[[Any], T]) -> T:
    try:
        return convert(data[name])
    except (KeyError, TypeError, ValueError) as exc:
        raise ContractError(f"field {name!r} is missing or invalid") from exc


def _optional(data: dict[str, Any], name: str, convert: Callable[[Any], T]) -> T | None:
    if data.get(name) is None:
        return None
    return _get(data, name, convert)


def _time(value: Any) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError("timestamp without a zone")
    return moment


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


def _wait(data: Any) -> WaitRange:
    if not isinstance(data, dict):
        raise ContractError("an estimate must be an object")
    return WaitRange(
        minutes=_get(data, "minutes", int),
        low=_get(data, "low", int),
        high=_get(data, "high", int),
    )


def _ticket(data: Any) -> TicketView:
    if not isinstance(data, dict):
        raise ContractError("ticket must be an object")
    return TicketView(
        id=_get(data, "id", str),
        label=_get(data, "label", str),
        service=_get(data, "service", str),
        lane=_get(data, "lane", Lane),
        status=_get(data, "status", TicketStatus),
        issued_at=_get(data, "issued_at", _time),
        category=_optional(data, "category", str),
        counter=_optional(data, "counter", int),
        called_at=_optional(data, "called_at", _time),
        people_ahead=_get(data, "people_ahead", int),
        estimate=_optional(data, "estimate", _wait),
        appointment_at=_optional(data, "appointment_at", _time),
        served_at=_optional(data, "served_at", _time),
    )


def _call(data: Any) -> CallEvent:
    if not isinstance(data, dict):
        raise ContractError("call must be an object")
    return CallEvent(
        seq=_get(data, "seq", int),
        at=_get(data, "at", _time),
        ticket=_get(data, "ticket", _ticket),
        counter=_get(data, "counter", int),
        counter_name=_get(data, "counter_name", str),
        recall=_get(data, "recall", _bool),
    )


def _list(
    data: dict[str, Any], name: str, convert: Callable[[Any], T]
) -> tuple[T, ...]:
    items = data.get(name, [])
    if not isinstance(items, list):
        raise ContractError(f"field {name!r} must be a list")
    return tuple(convert(item) for item in items)


def decode_reply(payload: bytes) -> Reply:
    """Decode the engine's reply to a command."""
    data = _load(payload)
    return Reply(
        command_id=_get(data, "command_id", str),
        ok=_get(data, "ok", _bool),
        error=_optional(data, "error", ErrorCode),
        message=_get(data, "message", str),
        ticket=_optional(data, "ticket", _ticket),
    )


def decode_call(payload: bytes) -> CallEvent:
    """Decode a call event."""
    return _call(_load(payload))


def decode_state(payload: bytes) -> OfficeState:
    """Decode the retained office state."""
    data = _load(payload, MAX_STATE_BYTES)

    def counter(item: Any) -> CounterState:
        return CounterState(
            number=_get(item, "number", int),
            name=_get(item, "name", str),
            current=_optional(item, "current", _ticket),
            availability=_optional(item, "availability", CounterAvailability)
            or CounterAvailability.OPEN,
            reason=_optional(item, "reason", str) or "",
            officer=_optional(item, "officer", str) or "",
            officer_name=_optional(item, "officer_name", str) or "",
            served=_optional(item, "served", int) or 0,
            no_shows=_optional(item, "no_shows", int) or 0,
        )

    def service(item: Any) -> ServiceLoad:
        return ServiceLoad(
            code=_get(item, "code", str),
            waiting_normal=_get(item, "waiting_normal", int),
            waiting_priority=_get(item, "waiting_priority", int),
            issued=_get(item, "issued", int),
            quota=_get(item, "quota", int),
            wait_normal=_optional(item, "wait_normal", _wait),
            wait_priority=_optional(item, "wait_priority", _wait),
        )

    return OfficeState(
        site=_get(data, "site", str),
        at=_get(data, "at", _time),
        day=_get(data, "day", str),
        counters=_list(data, "counters", counter),
        services=_list(data, "services", service),
        recent_calls=_list(data, "recent_calls", _call),
        waiting=_list(data, "waiting", _waiting_ticket),
        unprinted=_list(data, "unprinted", _waiting_ticket),
    )


def _waiting_ticket(data: Any) -> WaitingTicket:
    if not isinstance(data, dict):
        raise ContractError("a waiting ticket must be an object")
    return WaitingTicket(
        label=_get(data, "label", str),
        service=_get(data, "service", str),
        lane=_get(data, "lane", Lane),
        arrived_at=_get(data, "arrived_at", _time),
        category=_optional(data, "category", str),
        target_counter=_optional(data, "target_counter", int),
    )


def decode_print_request(payload: bytes) -> PrintRequest:
    """Decode the engine's request to print a ticket again."""
    data = _load(payload)
    return PrintRequest(
        at=_get(data, "at", _time),
        ticket=_get(data, "ticket", _ticket),
        counter=_get(data, "counter", int),
        counter_name=_get(data, "counter_name", str),
        command_id=_get(data, "command_id", str),
    )


def decode_status(payload: bytes) -> DeviceStatus:
    """Decode a device's retained presence message."""
    data = _load(payload)
    detail = data.get("detail") or {}
    if not isinstance(detail, dict):
        raise ContractError("field 'detail' must be an object")
    return DeviceStatus(
        role=_get(data, "role", Role),
        device=_get(data, "device", str),
        online=_get(data, "online", _bool),
        at=_optional(data, "at", _time),
        detail=detail,
    )
