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
_FIELD_TYPES: dict[str, type] = {
    "service": str,
    "category": str,
    "counter": int,
    "to_service": str,
    "to_counter": int,
    "ticket": str,
    "reason": str,
    "code": str,
    "officer": str,
    "pin": str,
}
_MAX_TEXT_LENGTH: dict[str, int] = {"reason": MAX_REASON_LENGTH}


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


def _load(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ContractError(
            f"payload of {len(payload)} bytes exceeds the limit of {MAX_PAYLOAD_BYTES}"
        )
    try:
        data = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"payload is not UTF-8 JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ContractError("payload must be a JSON object")
    return data


def decode_command(payload: bytes) -> Command:
    """Decode and validate a command; the error names the field at fault."""
    data = _load(payload)
    command_id = data.get("id")
    if not isinstance(command_id, str) or not _COMMAND_ID.match(command_id):
        raise ContractError(
            "id must be a string of 1 to 64 letters, digits or . _ : -, made unique by the sender"
        )
    kind_name = data.get("type")
    try:
        kind = CommandKind(kind_name)
    except ValueError as exc:
        kinds = ", ".join(k.value for k in CommandKind)
        raise ContractError(
            f"type {kind_name!r} is not a command; use one of {kinds}"
        ) from exc

    fields = _COMMAND_FIELDS[kind]
    unknown = set(data) - set(fields) - {"id", "type"}
    if unknown:
        raise ContractError(
            f"{kind.value} takes no field {sorted(unknown)[0]!r}; it takes {sorted(fields)}"
        )
    values: dict[str, Any] = {}
    for name, required in fields.items():
        value = data.get(name)
        if value is None:
            if required:
                raise ContractError(f"{kind.value} needs the field {name!r}")
            continue
        kind_of = _FIELD_TYPES[name]
        if not isinstance(value, kind_of) or isinstance(value, bool):
            raise ContractError(
                f"{name} must be {'a whole number' if kind_of is int else 'a string'}, not {value!r}"
            )
        limit = _MAX_TEXT_LENGTH.get(name, 40)
        if kind_of is str and not 0 < len(value) <= limit:
            raise ContractError(f"{name} must be 1 to {limit} characters long")
        if name == "ticket" and not _TICKET_LABEL.match(value):
            raise ContractError(
                f"ticket must be a label like A-001 (a service letter, a dash and three digits), not {value!r}"
            )
        if name == "code" and not APPOINTMENT_CODE.match(value):
            raise ContractError(
                f"code must be 4 to 16 capital letters or digits, not {value!r}"
            )
        if name == "officer" and not OFFICER_ID.match(value):
            raise ContractError(
                f"officer must be 1 to 32 letters or digits, not {value!r}"
            )
        if name == "pin" and not PIN_PATTERN.match(value):
            # The value is not echoed: it may be a mistyped real PIN.
            raise ContractError("pin must be 4 to 8 digits")
        if kind_of is int and not 0 < value < 1000:
            raise ContractError(f"{name} must be from 1 to 999, not {value}")
        values[name] = value
    if (
        kind is CommandKind.TRANSFER
        and "to_service" not in values
        and "to_counter" not in values
    ):
        raise ContractError("transfer needs to_service, to_counter or both")
    return Command(kind=kind, command_id=command_id, **values)


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
    data = _load(payload)

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
