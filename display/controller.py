"""State of the hall display: the featured call and its queue, counters, last calls,
waiting counts, clock, and whether the numbers on screen can be trusted.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from kivy.clock import Clock
from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    DictProperty,
    ListProperty,
    ObjectProperty,
    StringProperty,
)

from broker.client import Link
from broker.contract import CallEvent, DeviceStatus, OfficeState, Role
from broker.site import Lane, Site
from display.counter_view import counter_view, wait_text

_LOGGER = logging.getLogger(__name__)

# A featured call stays at least this long before the next queued call replaces it.
MIN_FEATURE_S = 3.0
# How long a new call is highlighted, unless the next call replaces it first.
HIGHLIGHT_S = 5.0
# The engine republishes its state every 5 s, so three missed beats mean it is gone.
STALE_AFTER_S = 15.0
HISTORY_SIZE = 6
# With more calls waiting for their turn, the oldest leaves the queue (not history).
MAX_QUEUED_CALLS = 12
# Sequence numbers remembered to ignore repeated call events.
SEEN_SEQ_LIMIT = 512
TICK_S = 0.25

DAY_NAMES_ID = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")
MONTH_NAMES_ID = (
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
)

TimeSource = Callable[[], datetime]


class Staleness(StrEnum):
    """Reason the display's data may be out of date, or FRESH when it is current."""

    FRESH = "fresh"
    DISCONNECTED = "disconnected"
    NO_STATE = "no_state"
    ENGINE_OFFLINE = "engine_offline"
    OTHER_DAY = "other_day"
    OLD_STATE = "old_state"


# Indonesian first, English beneath, as on every line of the screen.
STALE_DETAILS: dict[Staleness, tuple[str, str]] = {
    Staleness.FRESH: ("", ""),
    Staleness.DISCONNECTED: (
        "Tidak terhubung ke server antrean",
        "Not connected to the queue server",
    ),
    Staleness.NO_STATE: ("Menunggu data antrean", "Waiting for queue data"),
    Staleness.ENGINE_OFFLINE: (
        "Server antrean tidak aktif",
        "The queue server is not running",
    ),
    Staleness.OTHER_DAY: ("Data dari hari lain", "Data from another day"),
    Staleness.OLD_STATE: (
        "Server antrean tidak mengirim data",
        "The queue server stopped sending data",
    ),
}


def utc_now() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def format_date_id(moment: datetime) -> str:
    """Format a date in Indonesian, for example "Jumat, 4 Desember 2026"."""
    day_name = DAY_NAMES_ID[moment.weekday()]
    month_name = MONTH_NAMES_ID[moment.month - 1]
    return f"{day_name}, {moment.day} {month_name} {moment.year}"


def format_clock(moment: datetime) -> str:
    """Format a local time as "14:05:09 WIB", with the zone's abbreviation."""
    zone = moment.tzname() or ""
    return f"{moment:%H:%M:%S} {zone}".strip()


def counter_title(call: CallEvent) -> str:
    """Return the counter name a call shows, falling back to "Loket N"."""
    return call.counter_name or f"Loket {call.counter}"


def is_priority(call: CallEvent) -> bool:
    """Tell whether a call is for a ticket from the priority lane."""
    return call.ticket.lane is Lane.PRIORITY


class DisplayController(EventDispatcher):
    """The state the hall screen renders, kept on Kivy's main thread.

    OfficeClient callbacks run on paho's network thread and must go through the
    post_* methods, which hand each message to the main thread. The apply_*
    methods and tick() are for the main thread and for tests.
    """

    featured_call = ObjectProperty(None, allownone=True)
    """The CallEvent shown in large type, or None before the first call."""

    featured_label = StringProperty("")
    featured_counter = StringProperty("")
    featured_priority = BooleanProperty(False)
    featured_recall = BooleanProperty(False)

    highlight = BooleanProperty(False)
    """True while the featured call is new, for HIGHLIGHT_S at most."""

    feature_queue = ListProperty([])
    """Live CallEvents waiting for their turn in the featured area, oldest first."""

    counters = ListProperty([])
    """One dict per counter: number, name, label ("" when idle), priority, calling."""

    history = ListProperty([])
    """The last calls before the featured one, newest first, as dicts."""

    waiting = ListProperty([])
    """Per service: code, names, waiting per lane, wait texts and tickets remaining."""

    counter_view = DictProperty({})
    """The own counter of a counter display (display.counter_view), else empty."""

    clock_text = StringProperty("")
    date_text = StringProperty("")
    site_name = StringProperty("")
    running_text = StringProperty("")

    connected = BooleanProperty(False)
    stale = BooleanProperty(True)
    stale_reason = StringProperty(Staleness.NO_STATE.value)
    stale_detail_id = StringProperty(STALE_DETAILS[Staleness.NO_STATE][0])
    stale_detail_en = StringProperty(STALE_DETAILS[Staleness.NO_STATE][1])

    def __init__(
        self,
        site: Site,
        display_id: str,
        now: TimeSource = utc_now,
        counter: int | None = None,
        announce: Callable[[CallEvent], object] | None = None,
        **kwargs: Any,
    ) -> None:
        """Show the whole office, or with `counter` one counter's calls only.

        `announce` is called with each live call as it is queued for the
        featured area (display.announcer.Announcer.announce on the hall).
        """
        super().__init__(**kwargs)
        self.site = site
        self.display_id = display_id
        self.counter = counter
        if counter is not None:
            self.counter_view = counter_view(site, None, counter)
        self._announce = announce
        self._now = now
        self.started_at = now()
        self.site_name = site.name
        self.running_text = site.running_text
        self._state: OfficeState | None = None
        # When the latest state arrived, on this display's clock.
        self._state_received_at: datetime | None = None
        self._engine_online = True
        self._live_calls: list[CallEvent] = []
        self._seen: dict[int, None] = {}
        self._featured_since: datetime | None = None
        self._tick_event: Any = None
        self._foreign_sites: set[str] = set()
        self.tick()

    # Thread hand-off ---------------------------------------------------------

    def post_state(self, state: OfficeState) -> None:
        """Hand an OfficeState from the network thread to the main thread."""
        Clock.schedule_once(lambda _dt: self.apply_state(state))

    def post_call(self, call: CallEvent) -> None:
        """Hand a CallEvent from the network thread to the main thread."""
        Clock.schedule_once(lambda _dt: self.apply_call(call))

    def post_link(self, link: Link) -> None:
        """Hand a connection change from the network thread to the main thread."""
        Clock.schedule_once(lambda _dt: self.apply_link(link))

    def post_status(self, status: DeviceStatus) -> None:
        """Hand a device's presence from the network thread to the main thread."""
        Clock.schedule_once(lambda _dt: self.apply_status(status))

    def start_ticking(self) -> None:
        """Run tick() every TICK_S on Kivy's clock until stop_ticking()."""
        if self._tick_event is None:
            self._tick_event = Clock.schedule_interval(lambda _dt: self.tick(), TICK_S)

    def stop_ticking(self) -> None:
        """Stop the periodic tick started by start_ticking()."""
        if self._tick_event is not None:
            self._tick_event.cancel()
            self._tick_event = None

    # Main thread -------------------------------------------------------------

    def apply_state(self, state: OfficeState) -> None:
        """Apply a new office state to the counters, waiting counts and history."""
        if state.site != self.site.id:
            # Logged once per site, because the engine republishes every 5 s.
            if state.site not in self._foreign_sites:
                self._foreign_sites.add(state.site)
                _LOGGER.warning(
                    "Ignored the state of site %r: display %s belongs to site %r",
                    state.site,
                    self.display_id,
                    self.site.id,
                )
            return
        self._state = state
        self._state_received_at = self._now()
        # Live calls the state already lists, or has pushed out of its list, are
        # dropped, so the list stays short on a screen that runs for months.
        listed = {call.seq for call in state.recent_calls}
        self._live_calls = [
            call
            for call in self._live_calls
            if call.seq not in listed and call.at > state.at
        ]
        self.waiting = self._waiting_rows(state)
        if self.featured_call is None and not self.feature_queue:
            self._show_latest_from_state(state)
        self._refresh_panels()
        self._refresh_staleness(self._now())

    def apply_call(self, call: CallEvent) -> None:
        """Queue a live call event for the featured area, unless seen before or old."""
        if call.seq in self._seen:
            _LOGGER.debug("Ignored call event %d, already shown", call.seq)
            return
        self._remember(call.seq)
        if self.counter is not None and call.counter != self.counter:
            return
        if call.at < self.started_at:
            # Only calls made while this display runs may flash as new; older
            # ones (a retained message, a replay) reach history through the state.
            _LOGGER.info(
                "Call %d of %s is from before the display started; not featured",
                call.seq,
                call.ticket.label,
            )
        else:
            self._live_calls.append(call)
            self._enqueue(call)
            if self._announce is not None:
                self._announce(call)
        now = self._now()
        self._advance_feature(now)
        self._refresh_panels()

    def apply_link(self, link: Link) -> None:
        """Apply a change of the broker connection."""
        was_connected = self.connected
        self.connected = link is Link.CONNECTED
        if was_connected and not self.connected:
            _LOGGER.warning("Display %s lost the broker (%s)", self.display_id, link)
        self._refresh_staleness(self._now())

    def apply_status(self, status: DeviceStatus) -> None:
        """Apply a device's presence, of which only the engine's matters here."""
        if status.role is not Role.ENGINE or status.device != self.site.id:
            return
        if status.online != self._engine_online:
            _LOGGER.info("Engine of %s online: %s", self.site.id, status.online)
        self._engine_online = status.online
        self._refresh_staleness(self._now())

    def tick(self) -> None:
        """Update the clock, rotate the featured call and re-check staleness."""
        now = self._now()
        local = now.astimezone(self.site.timezone)
        self.clock_text = format_clock(local)
        self.date_text = format_date_id(local)
        changed = self._advance_feature(now)
        changed = self._clear_other_day_feature(local) or changed
        if changed:
            self._refresh_panels()
        self._refresh_staleness(now)

    # Featured call -----------------------------------------------------------

    def _enqueue(self, call: CallEvent) -> None:
        self.feature_queue.append(call)
        if len(self.feature_queue) > MAX_QUEUED_CALLS:
            dropped = self.feature_queue.pop(0)
            _LOGGER.warning(
                "%d calls waiting to be featured; skipped %s (call %d)",
                MAX_QUEUED_CALLS,
                dropped.ticket.label,
                dropped.seq,
            )

    def _featured_seconds(self, now: datetime) -> float:
        if self._featured_since is None:
            return math.inf
        seconds = (now - self._featured_since).total_seconds()
        # A clock stepped backwards must not freeze the featured call.
        return seconds if seconds >= 0 else math.inf

    def _advance_feature(self, now: datetime) -> bool:
        """Feature the next queued call once the current one had its minimum time."""
        seconds = self._featured_seconds(now)
        if self.highlight and seconds >= HIGHLIGHT_S:
            self.highlight = False
        if not self.feature_queue or seconds < MIN_FEATURE_S:
            return False
        call = self.feature_queue.pop(0)
        self._show(call)
        self._featured_since = now
        self.highlight = True
        _LOGGER.info(
            "Featured %s at %s (call %d)",
            call.ticket.label,
            counter_title(call),
            call.seq,
        )
        return True

    def _show(self, call: CallEvent | None) -> None:
        self.featured_call = call
        self.featured_label = call.ticket.label if call else ""
        self.featured_counter = counter_title(call) if call else ""
        self.featured_priority = is_priority(call) if call else False
        self.featured_recall = call.recall if call else False

    def _show_latest_from_state(self, state: OfficeState) -> None:
        # After a restart the big area shows today's last call, but never as new.
        if not state.recent_calls:
            return
        calls = [
            call
            for call in state.recent_calls
            if self.counter is None or call.counter == self.counter
        ]
        if not calls:
            return
        latest = max(calls, key=lambda call: call.seq)
        # Only a call whose ticket is still at its counter is shown, so a
        # finished visit never looks current after a restart.
        counter = state.counter(latest.counter)
        current = counter.current if counter else None
        still_there = current is not None and current.id == latest.ticket.id
        if still_there and self._local_day(latest.at) == self._local_day(state.at):
            self._show(latest)
            self._featured_since = None

    def _clear_other_day_feature(self, local_now: datetime) -> bool:
        call = self.featured_call
        if call is None or self.feature_queue:
            return False
        if self._local_day(call.at) == local_now.date():
            return False
        self._show(None)
        self.highlight = False
        self._featured_since = None
        return True

    def _local_day(self, moment: datetime) -> date:
        return moment.astimezone(self.site.timezone).date()

    def _remember(self, seq: int) -> None:
        self._seen[seq] = None
        if len(self._seen) > SEEN_SEQ_LIMIT:
            del self._seen[next(iter(self._seen))]

    # Panels ------------------------------------------------------------------

    def _refresh_panels(self) -> None:
        calling = self.featured_call.counter if self.featured_call else None
        state = self._state
        self.counters = [
            {
                "number": counter.number,
                "name": counter.name,
                "label": counter.current.label if counter.current else "",
                "priority": bool(
                    counter.current and counter.current.lane is Lane.PRIORITY
                ),
                "calling": counter.number == calling,
            }
            for counter in (state.counters if state else ())
        ]
        self.history = self._history_rows()
        if self.counter is not None:
            self.counter_view = counter_view(self.site, state, self.counter)

    def _history_rows(self) -> list[dict[str, Any]]:
        recent = list(self._state.recent_calls) if self._state else []
        calls = sorted(
            [*self._live_calls, *recent],
            key=lambda call: (call.at, call.seq),
            reverse=True,
        )
        # The featured and queued tickets are on screen or about to be, and a
        # ticket called again appears once, at its newest call.
        upcoming = [self.featured_call, *self.feature_queue]
        listed_tickets = {call.ticket.id for call in upcoming if call is not None}
        rows: list[dict[str, Any]] = []
        for call in calls:
            if call.ticket.id in listed_tickets:
                continue
            listed_tickets.add(call.ticket.id)
            rows.append(_call_row(call))
            if len(rows) == HISTORY_SIZE:
                break
        return rows

    def _waiting_rows(self, state: OfficeState) -> list[dict[str, Any]]:
        rows = []
        for load in state.services:
            service = self.site.service(load.code)
            rows.append(
                {
                    "code": load.code,
                    "name_id": service.name_id if service else load.code,
                    "name_en": service.name_en if service else "",
                    "waiting_normal": load.waiting_normal,
                    "waiting_priority": load.waiting_priority,
                    "wait_normal": wait_text(load.wait_normal, load.waiting_normal),
                    "wait_priority": wait_text(
                        load.wait_priority, load.waiting_priority
                    ),
                    "remaining": load.remaining,
                }
            )
        return rows

    # Staleness ---------------------------------------------------------------

    def staleness(self, now: datetime) -> Staleness:
        """Return why the data on screen may be out of date at a moment."""
        state = self._state
        if not self.connected:
            return Staleness.DISCONNECTED
        if state is None:
            return Staleness.NO_STATE
        if not self._engine_online:
            return Staleness.ENGINE_OFFLINE
        # The age counts from the state's arrival on this display's clock, and
        # the day from the engine's stamp plus that age, so a display clock that
        # is minutes off judges both as the engine's clock would.
        age = now - (self._state_received_at or now)
        if state.day != self._local_day(state.at + age).isoformat():
            return Staleness.OTHER_DAY
        if age.total_seconds() > STALE_AFTER_S:
            return Staleness.OLD_STATE
        return Staleness.FRESH

    def _refresh_staleness(self, now: datetime) -> None:
        reason = self.staleness(now)
        if reason.value == self.stale_reason:
            return
        if reason is Staleness.FRESH:
            _LOGGER.info("Display %s is up to date", self.display_id)
        elif self.stale_reason == Staleness.FRESH:
            _LOGGER.warning("Display %s is not up to date: %s", self.display_id, reason)
        else:
            _LOGGER.info(
                "Display %s is still not up to date: %s", self.display_id, reason
            )
        self.stale_reason = reason.value
        self.stale_detail_id, self.stale_detail_en = STALE_DETAILS[reason]
        self.stale = reason is not Staleness.FRESH


def _call_row(call: CallEvent) -> dict[str, Any]:
    return {
        "seq": call.seq,
        "label": call.ticket.label,
        "counter_name": counter_title(call),
        "priority": is_priority(call),
        "recall": call.recall,
    }
