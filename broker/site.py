"""Site configuration: one TOML file describes an office, validated into dataclasses.

A wrong file raises SiteError naming the file, the key, what is wrong and how
to fix it, so start-up can stop with one readable line instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import time
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broker.errors import AntreanError

_LOGGER = logging.getLogger(__name__)

T = TypeVar("T")
E = TypeVar("E", bound=StrEnum)

BUNDLED_SITE = "lebong.toml"
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# The office state lists every counter by name and must fit
# contract.MAX_STATE_BYTES.
MAX_COUNTERS = 200
MAX_COUNTER_NAME = 40
_SITE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
_SERVICE_CODE = re.compile(r"^[A-Z]$")
_PRINTER_SPEC = re.compile(r"^(file|serial|usb|network):")
_PRINTER_HINT = (
    'Use "file:DIRECTORY", "serial:/dev/ttyUSB0?baudrate=19200", "usb:VID:PID" '
    'or "network:HOST:9100".'
)
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")


class Lane(StrEnum):
    """The two queues a service has: priority applicants and everyone else."""

    PRIORITY = "priority"
    NORMAL = "normal"


class PolicyKind(StrEnum):
    """The order in which a counter takes waiting tickets."""

    STRICT_PRIORITY = "strict_priority"
    RATIO = "ratio"
    AGEING_CAP = "ageing_cap"


class TransferOrder(StrEnum):
    """Where a transferred ticket stands in its new queue."""

    KEEP_ARRIVAL = "keep_arrival"
    BACK_OF_QUEUE = "back_of_queue"


class SiteError(AntreanError):
    """The site file is missing, unreadable or holds an invalid value."""

    def __init__(self, path: Path | str, key: str, problem: str, fix: str) -> None:
        self.path = str(path)
        self.key = key
        self.problem = problem
        self.fix = fix
        where = f"{self.path}: {key}" if key else self.path
        super().__init__(f"{where}: {problem}. {fix}")


@dataclass(frozen=True)
class Service:
    """A service applicants queue for, numbered under its code letter."""

    code: str
    name_id: str
    name_en: str
    description_id: str
    description_en: str
    minutes: float
    daily_quota: int
    documents: tuple[str, ...]


@dataclass(frozen=True)
class PriorityCategory:
    """A group of applicants whose tickets go into the priority lane."""

    key: str
    name_id: str
    name_en: str


@dataclass(frozen=True)
class PolicyConfig:
    """How counters order waiting tickets: the `[policy]` table of a site file.

    `priority_run` applies to the ratio order and `max_wait_minutes` to the
    ageing cap; the other orders ignore them.
    """

    order: PolicyKind = PolicyKind.STRICT_PRIORITY
    priority_run: int = 3
    max_wait_minutes: float = 30.0
    appointments_first: bool = False
    transfers: TransferOrder = TransferOrder.BACK_OF_QUEUE


@dataclass(frozen=True)
class Counter:
    """A counter, the services it takes and the lanes it serves."""

    number: int
    name: str
    services: tuple[str, ...]
    lanes: tuple[Lane, ...]
    # The counter's own `policy` table merged over the site's; None follows the site.
    policy: PolicyConfig | None = None


@dataclass(frozen=True)
class PrinterConfig:
    """The ticket printer of a kiosk: a backend spec and the paper it holds."""

    spec: str = "file:"
    width_mm: int = 80
    profile: str = "default"
    codepage: str | None = None


@dataclass(frozen=True)
class Kiosk:
    """A ticket kiosk and its printer."""

    id: str
    name: str
    printer: PrinterConfig


@dataclass(frozen=True)
class Display:
    """A screen: the hall screen, or a small screen above one counter."""

    id: str
    name: str
    layout: str
    counter: int | None


@dataclass(frozen=True)
class BrokerAddress:
    """Where the office's MQTT broker listens.

    host and port are the plain listener, meant for loopback; tls_host and
    tls_port, when set, a TLS listener for the other machines of the office.
    """

    host: str = "127.0.0.1"
    port: int = 1883
    tls_host: str = ""
    tls_port: int = 0


@dataclass(frozen=True)
class AppointmentWindow:
    """How long before and after its booked time an appointment may check in."""

    early_minutes: int = 30
    late_minutes: int = 60


@dataclass(frozen=True)
class OpeningHours:
    """Opening hours in the site's zone and the weekdays they apply to."""

    open: time
    close: time
    days: tuple[str, ...]


@dataclass(frozen=True)
class Site:
    """One office: everything antrean needs to know to run it."""

    id: str
    name: str
    timezone: ZoneInfo
    running_text: str
    hours: OpeningHours
    broker: BrokerAddress
    services: tuple[Service, ...]
    priority_categories: tuple[PriorityCategory, ...]
    counters: tuple[Counter, ...]
    kiosks: tuple[Kiosk, ...]
    displays: tuple[Display, ...]
    source: str = ""
    policy: PolicyConfig = PolicyConfig()
    appointments: AppointmentWindow = AppointmentWindow()

    def policy_of(self, counter: Counter) -> PolicyConfig:
        """Return the policy a counter follows: its own override or the site's."""
        return counter.policy or self.policy

    def service(self, code: str) -> Service | None:
        """Return the service with this code letter, or None."""
        return next((s for s in self.services if s.code == code), None)

    def counter(self, number: int) -> Counter | None:
        """Return the counter with this number, or None."""
        return next((c for c in self.counters if c.number == number), None)

    def category(self, key: str) -> PriorityCategory | None:
        """Return the priority category with this key, or None."""
        return next((c for c in self.priority_categories if c.key == key), None)

    def kiosk(self, kiosk_id: str) -> Kiosk | None:
        """Return the kiosk with this id, or None."""
        return next((k for k in self.kiosks if k.id == kiosk_id), None)

    def display(self, display_id: str) -> Display | None:
        """Return the display with this id, or None."""
        return next((d for d in self.displays if d.id == display_id), None)

    def with_broker(self, host: str, port: int) -> Site:
        """Return a copy of the site whose plain listener is at another address."""
        return dataclasses.replace(self, broker=dataclasses.replace(self.broker, host=host, port=port))


class _ReadKeys(dict[str, Any]):
    """A TOML table's keys that remembers which of them the parser looked at."""

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__(data)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.read.add(key)
        return super().__contains__(key)


class _Table:
    """A TOML table being validated, which knows its own dotted key for messages."""

    def __init__(
        self, path: Path | str, key: str, data: Any, tables: list[_Table] | None = None
    ) -> None:
        self.path = path
        self.key = key
        if not isinstance(data, dict):
            self.fail("", "must be a table", f"Write it as [{key}] with keys below it.")
        self.data = _ReadKeys(data)
        # Every table of one file, so keys nobody read can be reported at the end.
        self.tables_seen: list[_Table] = tables if tables is not None else []
        self.tables_seen.append(self)

    def reject_unknown_keys(self) -> None:
        """Raise SiteError for the first key of the file that no parser read."""
        for table in self.tables_seen:
            unknown = sorted(set(table.data) - table.data.read)
            if unknown:
                known = ", ".join(sorted(table.data.read)) or "none"
                table.fail(
                    unknown[0],
                    "is not a known setting",
                    f"Check its spelling; the keys read here are: {known}.",
                )

    def fail(self, name: str, problem: str, fix: str) -> None:
        key = f"{self.key}.{name}" if name and self.key else name or self.key
        raise SiteError(self.path, key, problem, fix)

    def value(self, name: str, kind: type[T], default: T | None = None) -> T:
        if name not in self.data:
            if default is None:
                self.fail(name, "is missing", f"Add {name} = ... to [{self.key}].")
            return default  # type: ignore[return-value]
        value = self.data[name]
        # TOML integers are acceptable where a float is expected.
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(
                name,
                f"must be {_kind_name(kind)}, not {value!r}",
                f"Write it as {_kind_example(kind)}.",
            )
        return value  # type: ignore[no-any-return]

    def text(
        self,
        name: str,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
        max_length: int | None = None,
    ) -> str:
        value = self.value(name, str, default)
        if not value.strip() and default is None:
            self.fail(name, "is empty", "Give it a value.")
        if max_length is not None and len(value) > max_length:
            self.fail(
                name,
                f"is {len(value)} characters long, more than {max_length}",
                f"Shorten it to at most {max_length} characters.",
            )
        if pattern is not None and not pattern.match(value):
            self.fail(name, f"{value!r} is not a valid value", hint)
        return value

    def strings(self, name: str, default: list[str] | None = None) -> tuple[str, ...]:
        values = self.value(name, list, default)
        for item in values:
            if not isinstance(item, str):
                self.fail(
                    name,
                    f"holds {item!r}, which is not a string",
                    'Write a list of strings like ["A", "B"].',
                )
        return tuple(values)

    def number(
        self,
        name: str,
        kind: type[T],
        low: float,
        high: float,
        default: T | None = None,
    ) -> T:
        value = self.value(name, kind, default)
        if not low <= value <= high:  # type: ignore[operator]
            self.fail(
                name,
                f"{value} is out of range",
                f"Use a value from {low:g} to {high:g}.",
            )
        return value

    def tables(self, name: str) -> Iterator[_Table]:
        items = self.data.get(name, [])
        if not isinstance(items, list):
            self.fail(
                name,
                "must be an array of tables",
                f"Write each entry under [[{name}]].",
            )
        for index, item in enumerate(items):
            yield _Table(self.path, f"{name}[{index}]", item, self.tables_seen)

    def table(self, name: str) -> _Table:
        return _Table(
            self.path,
            name if not self.key else f"{self.key}.{name}",
            self.data.get(name, {}),
            self.tables_seen,
        )


def _kind_name(kind: type) -> str:
    return {
        str: "a string",
        int: "a whole number",
        float: "a number",
        list: "a list",
        bool: "true or false",
    }.get(kind, kind.__name__)


def _kind_example(kind: type) -> str:
    return {
        str: '"text" in double quotes',
        int: "a number without quotes",
        float: "a number without quotes",
        list: "[...]",
        bool: "true or false",
    }.get(kind, kind.__name__)


def bundled_site_path() -> Path:
    """Return the path of the site file shipped with antrean (Lebong)."""
    return Path(str(resources.files("broker") / "sites" / BUNDLED_SITE))


def load_site(path: Path | str | None = None) -> Site:
    """Read and validate a site file; None loads the bundled Lebong site."""
    path = Path(path) if path is not None else bundled_site_path()
    try:
        # utf-8-sig also accepts the byte order mark some Windows editors write.
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise SiteError(
            path, "", f"is not UTF-8 text ({exc.reason} at byte {exc.start})",
            "Save the file as UTF-8."
        ) from exc
    except FileNotFoundError as exc:
        raise SiteError(
            path, "", "file not found", "Check the path given with --site."
        ) from exc
    except OSError as exc:
        raise SiteError(
            path, "", f"cannot be read ({exc.strerror})", "Check its permissions."
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise SiteError(
            path, "", f"is not valid TOML ({exc})", "Fix the syntax at that line."
        ) from exc
    site = parse_site(data, path)
    _LOGGER.debug("Loaded site %s from %s", site.id, path)
    return site


def parse_site(data: dict[str, Any], path: Path | str = "<site>") -> Site:
    """Validate the parsed TOML of a site file into a Site."""
    root = _Table(path, "", data)
    head = root.table("site")
    zone_name = head.text("timezone", "Asia/Jakarta")
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SiteError(
            path,
            "site.timezone",
            f"unknown time zone {zone_name!r}",
            'Use an IANA zone name such as "Asia/Jakarta".',
        ) from exc

    services = tuple(_parse_service(t) for t in root.tables("services"))
    _require_unique(root, "services", [s.code for s in services], "code")
    if not services:
        root.fail(
            "services", "lists no service", "Add at least one [[services]] table."
        )
    categories = tuple(_parse_category(t) for t in root.tables("priority"))
    _require_unique(root, "priority", [c.key for c in categories], "key")
    codes = {s.code for s in services}
    policy = _parse_policy(root.table("policy"), PolicyConfig())
    counters = tuple(_parse_counter(t, codes, policy) for t in root.tables("counters"))
    _require_unique(root, "counters", [c.number for c in counters], "number")
    if not counters:
        root.fail(
            "counters", "lists no counter", "Add at least one [[counters]] table."
        )
    if len(counters) > MAX_COUNTERS:
        root.fail(
            "counters",
            f"lists {len(counters)} counters, more than the {MAX_COUNTERS} one "
            "office state can show",
            "Split the hall into several sites, each with its own broker.",
        )
    kiosks = tuple(_parse_kiosk(t) for t in root.tables("kiosks"))
    _require_unique(root, "kiosks", [k.id for k in kiosks], "id")
    numbers = {c.number for c in counters}
    displays = tuple(_parse_display(t, numbers) for t in root.tables("displays"))
    _require_unique(root, "displays", [d.id for d in displays], "id")

    site = Site(
        id=head.text(
            "id",
            pattern=_SITE_ID,
            hint="Use lowercase letters, digits, - and _ (up to 40).",
        ),
        name=head.text("name"),
        timezone=zone,
        running_text=head.text("running_text", ""),
        hours=_parse_hours(root.table("hours")),
        broker=_parse_broker(root.table("broker")),
        services=services,
        priority_categories=categories,
        counters=counters,
        kiosks=kiosks,
        displays=displays,
        source=str(path),
        policy=policy,
        appointments=_parse_appointments(root.table("appointments")),
    )
    root.reject_unknown_keys()
    return site


def _require_unique(root: _Table, name: str, values: list[Any], field: str) -> None:
    seen: set[Any] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise SiteError(
                root.path,
                f"{name}[{index}].{field}",
                f"{value!r} is used twice",
                f"Give each entry of [[{name}]] its own {field}.",
            )
        seen.add(value)


def _parse_clock(table: _Table, name: str, default: str) -> time:
    text = table.text(
        name, default, _CLOCK, 'Write the time as "HH:MM", for example "08:00".'
    )
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


def _parse_hours(table: _Table) -> OpeningHours:
    opens = _parse_clock(table, "open", "08:00")
    closes = _parse_clock(table, "close", "16:00")
    if closes <= opens:
        table.fail(
            "close", "is not after open", "Set close later than open on the same day."
        )
    days = table.strings("days", list(DAY_NAMES[:5]))
    for day in days:
        if day not in DAY_NAMES:
            table.fail(
                "days",
                f"holds {day!r}, which is not a weekday",
                f"Use names from {list(DAY_NAMES)}.",
            )
    return OpeningHours(opens, closes, days)


def _parse_broker(table: _Table) -> BrokerAddress:
    tls_port = table.number("tls_port", int, 0, 65535, 0)
    tls_host = table.text("tls_host", "")
    if tls_port and not tls_host:
        table.fail("tls_host", "is missing", "Set tls_host to this PC's address on the office network.")
    return BrokerAddress(
        host=table.text("host", "127.0.0.1"),
        port=table.number("port", int, 1, 65535, 1883),
        tls_host=tls_host,
        tls_port=tls_port,
    )


def _parse_appointments(table: _Table) -> AppointmentWindow:
    default = AppointmentWindow()
    return AppointmentWindow(
        early_minutes=table.number("early_minutes", int, 0, 240, default.early_minutes),
        late_minutes=table.number("late_minutes", int, 0, 480, default.late_minutes),
    )


def _parse_service(table: _Table) -> Service:
    return Service(
        code=table.text(
            "code", pattern=_SERVICE_CODE, hint="Use one capital letter, A to Z."
        ),
        name_id=table.text("name_id"),
        name_en=table.text("name_en"),
        description_id=table.text("description_id", ""),
        description_en=table.text("description_en", ""),
        minutes=table.number("minutes", float, 0.5, 240.0),
        daily_quota=table.number("daily_quota", int, 1, 999),
        documents=table.strings("documents", []),
    )


def _parse_category(table: _Table) -> PriorityCategory:
    return PriorityCategory(
        key=table.text(
            "key", pattern=_SITE_ID, hint="Use lowercase letters, digits, - and _."
        ),
        name_id=table.text("name_id"),
        name_en=table.text("name_en"),
    )


def _parse_choice(table: _Table, name: str, kind: type[E], default: E) -> E:
    text = table.text(name, default.value)
    members = {item.value: item for item in kind}  # type: ignore[attr-defined]
    if text not in members:
        choices = ", ".join(f'"{value}"' for value in members)
        table.fail(name, f"{text!r} is not a valid value", f"Use one of {choices}.")
    return members[text]


def _parse_policy(table: _Table, base: PolicyConfig) -> PolicyConfig:
    """Read a policy table; keys it leaves out keep their value in `base`."""
    appointments = table.value("appointments_first", bool, base.appointments_first)
    return PolicyConfig(
        order=_parse_choice(table, "order", PolicyKind, base.order),
        priority_run=table.number("priority_run", int, 1, 20, base.priority_run),
        max_wait_minutes=table.number(
            "max_wait_minutes", float, 1.0, 480.0, base.max_wait_minutes
        ),
        appointments_first=appointments,
        transfers=_parse_choice(table, "transfers", TransferOrder, base.transfers),
    )


def _parse_counter_policy(
    table: _Table, site_policy: PolicyConfig
) -> PolicyConfig | None:
    if "policy" not in table.data:
        return None
    override = table.table("policy")
    if "transfers" in override.data:
        override.fail(
            "transfers",
            "cannot differ between counters, because every counter shares one queue",
            "Move transfers to the [policy] table of the site.",
        )
    return _parse_policy(override, site_policy)


def _parse_counter(
    table: _Table, codes: set[str], site_policy: PolicyConfig
) -> Counter:
    services = table.strings("services")
    for code in services:
        if code not in codes:
            table.fail(
                "services",
                f"names service {code!r}, which is not defined",
                f"Use codes from {sorted(codes)}.",
            )
    if not services:
        table.fail("services", "is empty", "List the service codes this counter takes.")
    lanes = table.strings("lanes", [Lane.PRIORITY.value, Lane.NORMAL.value])
    valid = [lane.value for lane in Lane]
    for lane in lanes:
        if lane not in valid:
            table.fail("lanes", f"holds {lane!r}, which is not a lane", f"Use {valid}.")
    if not lanes or len(set(lanes)) != len(lanes):
        table.fail(
            "lanes",
            "must list each lane at most once and at least one",
            f"Use a list drawn from {valid}.",
        )
    return Counter(
        number=table.number("number", int, 1, 999),
        name=table.text("name", max_length=MAX_COUNTER_NAME),
        services=services,
        lanes=tuple(Lane(lane) for lane in lanes),
        policy=_parse_counter_policy(table, site_policy),
    )


def _parse_kiosk(table: _Table) -> Kiosk:
    printer = table.table("printer")
    width = printer.value("width_mm", int, 80)
    if width not in (58, 80):
        printer.fail(
            "width_mm", f"{width} is not a supported paper width", "Use 58 or 80."
        )
    codepage = printer.value("codepage", str, "")
    return Kiosk(
        id=table.text(
            "id", pattern=_DEVICE_ID, hint="Use letters, digits, - and _ (up to 40)."
        ),
        name=table.text("name", ""),
        printer=PrinterConfig(
            spec=printer.text("spec", "file:", _PRINTER_SPEC, _PRINTER_HINT),
            width_mm=width,
            profile=printer.text("profile", "default"),
            codepage=codepage or None,
        ),
    )


def _parse_display(table: _Table, counters: set[int]) -> Display:
    layout = table.text("layout", "hall")
    if layout not in ("hall", "counter"):
        table.fail("layout", f"{layout!r} is not a layout", 'Use "hall" or "counter".')
    counter = table.value("counter", int, 0) or None
    if layout == "counter" and counter not in counters:
        table.fail(
            "counter",
            f"{counter} is not a counter of this site",
            f"Use one of {sorted(counters)}.",
        )
    return Display(
        id=table.text(
            "id", pattern=_DEVICE_ID, hint="Use letters, digits, - and _ (up to 40)."
        ),
        name=table.text("name", ""),
        layout=layout,
        counter=counter,
    )
