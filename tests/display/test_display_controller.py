"""DisplayController against a real Mosquitto and engine, without a window."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from display_support import (
    Clients,
    DisplayUnderTest,
    ShiftedClock,
    call_next,
    connect_display,
    issue,
    pump,
    recall,
)

from broker.client import OfficeClient
from broker.contract import CallEvent, OfficeState, Role
from broker.mosquitto import start_mosquitto
from broker.site import load_site
from display.controller import (
    HISTORY_SIZE,
    MAX_QUEUED_CALLS,
    MIN_FEATURE_S,
    DisplayController,
    Staleness,
    format_date_id,
)


def _waiting(controller: DisplayController, code: str) -> tuple[int, int] | None:
    for row in controller.waiting:
        if row["code"] == code:
            return row["waiting_normal"], row["waiting_priority"]
    return None


def _counter_label(controller: DisplayController, number: int) -> str | None:
    for row in controller.counters:
        if row["number"] == number:
            return str(row["label"])
    return None


def _record_featured(controller: DisplayController) -> list[str]:
    labels: list[str] = []
    controller.bind(featured_label=lambda _c, label: labels.append(label))
    return labels


# Clock and date ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "clock_text", "date_text"),
    [
        (
            datetime(2026, 12, 4, 7, 5, 9, tzinfo=UTC),
            "14:05:09 WIB",
            "Jumat, 4 Desember 2026",
        ),
        # 17:30 UTC is already the next day in Jakarta (UTC+7).
        (
            datetime(2026, 12, 4, 17, 30, 0, tzinfo=UTC),
            "00:30:00 WIB",
            "Sabtu, 5 Desember 2026",
        ),
        (
            datetime(2027, 1, 1, 1, 0, 0, tzinfo=UTC),
            "08:00:00 WIB",
            "Jumat, 1 Januari 2027",
        ),
    ],
)
def test_clock_in_site_zone(moment: datetime, clock_text: str, date_text: str) -> None:
    controller = DisplayController(load_site(), "hall", now=lambda: moment)

    assert controller.clock_text == clock_text
    assert controller.date_text == date_text


def test_indonesian_day_and_month_names() -> None:
    expected = [
        "Senin, 7 Desember 2026",
        "Selasa, 8 Desember 2026",
        "Rabu, 9 Desember 2026",
        "Kamis, 10 Desember 2026",
        "Jumat, 11 Desember 2026",
        "Sabtu, 12 Desember 2026",
        "Minggu, 13 Desember 2026",
    ]
    days = [datetime(2026, 12, day) for day in range(7, 14)]

    assert [format_date_id(day) for day in days] == expected
    assert format_date_id(datetime(2026, 8, 17)) == "Senin, 17 Agustus 2026"


def test_clock_ticks_every_second() -> None:
    clock = ShiftedClock()
    clock.offset = datetime(2026, 12, 4, 7, 5, 9, tzinfo=UTC) - datetime.now(UTC)
    controller = DisplayController(load_site(), "hall", now=clock)
    clock.advance(1.0)

    controller.tick()

    assert controller.clock_text.startswith("14:05:1")


def test_running_text_and_name_from_site() -> None:
    site = load_site()
    controller = DisplayController(site, "hall")

    assert controller.running_text == site.running_text
    assert controller.site_name == "Layanan Imigrasi Lebong"


# Featured call ----------------------------------------------------------------


def test_called_ticket_featured(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    ticket = issue(kiosk, "A")

    call_next(officer, 2)

    assert pump(lambda: controller.featured_label == ticket.label)
    assert controller.featured_counter == "Loket 2"
    assert controller.featured_priority is False
    assert controller.featured_recall is False
    assert controller.highlight is True
    assert controller.featured_call.counter == 2
    assert pump(lambda: _counter_label(controller, 2) == ticket.label)


def test_priority_call_marked(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    ticket = issue(kiosk, "B", category="lansia")

    call_next(officer, 1)

    assert pump(lambda: controller.featured_label == ticket.label)
    assert controller.featured_priority is True
    assert controller.featured_counter == "Loket 1 (Prioritas)"
    assert pump(
        lambda: bool(controller.counters) and controller.counters[0]["priority"]
    )


def test_two_quick_calls_featured_in_turn(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    featured = _record_featured(controller)
    first = issue(kiosk, "A")
    second = issue(kiosk, "A")

    call_next(officer, 2)
    call_next(officer, 3)

    assert pump(lambda: len(controller.feature_queue) == 1)
    assert featured == [first.label]
    assert controller.feature_queue[0].ticket.label == second.label

    display.clock.advance(MIN_FEATURE_S - 1.0)
    controller.tick()
    assert controller.featured_label == first.label

    display.clock.advance(1.5)
    controller.tick()
    assert featured == [first.label, second.label]
    assert controller.featured_counter == "Loket 3"
    assert controller.feature_queue == []
    assert controller.highlight is True


def test_highlight_ends_after_five_seconds(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    ticket = issue(kiosk, "C")
    call_next(officer, 4)
    assert pump(lambda: controller.featured_label == ticket.label)

    display.clock.advance(4.0)
    controller.tick()
    assert controller.highlight is True

    display.clock.advance(1.5)
    controller.tick()
    assert controller.highlight is False
    assert controller.featured_label == ticket.label


def test_repeated_call_event_ignored(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    featured = _record_featured(controller)
    ticket = issue(kiosk, "A")
    call_next(officer, 2)
    assert pump(lambda: controller.featured_label == ticket.label)
    event = controller.featured_call
    display.clock.advance(MIN_FEATURE_S + 3.0)
    controller.tick()

    controller.apply_call(event)

    assert controller.feature_queue == []
    assert controller.highlight is False
    assert featured == [ticket.label]


def test_recall_featured_again(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    ticket = issue(kiosk, "A")
    call_next(officer, 3)
    assert pump(lambda: controller.featured_label == ticket.label)
    first_seq = controller.featured_call.seq
    display.clock.advance(MIN_FEATURE_S + 3.0)
    controller.tick()

    recall(officer, 3)

    assert pump(lambda: controller.featured_call.seq != first_seq)
    assert controller.featured_label == ticket.label
    assert controller.featured_recall is True
    assert controller.highlight is True


def test_call_before_start_not_new(
    office: Any, clients: Clients, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    calls_heard: list[CallEvent] = []
    clients.open(Role.OPERATOR, "listener", on_call=calls_heard.append)
    ticket = issue(kiosk, "A")
    call_next(officer, 2)
    assert pump(lambda: len(calls_heard) == 1)

    display = connect_display(clients, office.site, ShiftedClock())
    controller = display.controller
    assert pump(lambda: controller.featured_label == ticket.label)
    controller.apply_call(calls_heard[0])

    assert controller.highlight is False
    assert controller.feature_queue == []
    assert controller.featured_counter == "Loket 2"


def test_feature_queue_bounded(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    ticket = issue(kiosk, "A")
    call_next(officer, 2)
    assert pump(lambda: controller.featured_label == ticket.label)
    template: CallEvent = controller.featured_call
    extra = [
        dataclasses.replace(template, seq=template.seq + index)
        for index in range(1, MAX_QUEUED_CALLS + 4)
    ]

    for call in extra:
        controller.apply_call(call)

    assert len(controller.feature_queue) == MAX_QUEUED_CALLS
    assert controller.feature_queue[0].seq == extra[3].seq
    assert controller.feature_queue[-1].seq == extra[-1].seq


# Panels -----------------------------------------------------------------------


def test_waiting_counts_follow_state(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    assert _waiting(controller, "A") == (0, 0)

    issue(kiosk, "A")
    issue(kiosk, "A")
    issue(kiosk, "A", category="ibu_hamil")
    issue(kiosk, "C")

    assert pump(lambda: _waiting(controller, "C") == (1, 0))
    assert _waiting(controller, "A") == (2, 1)
    assert _waiting(controller, "B") == (0, 0)
    names = [row["name_id"] for row in controller.waiting]
    assert names == [
        "Paspor Baru",
        "Penggantian Paspor",
        "Pengambilan Paspor",
        "Informasi dan Pengaduan",
    ]

    # Counter 1 serves the priority lane first.
    call_next(officer, 1)
    assert pump(lambda: _waiting(controller, "A") == (2, 0))


def test_counters_list_every_counter(display: DisplayUnderTest) -> None:
    controller = display.controller

    numbers = [row["number"] for row in controller.counters]
    labels = [row["label"] for row in controller.counters]

    assert numbers == [1, 2, 3, 4]
    assert labels == ["", "", "", ""]
    assert controller.counters[1]["name"] == "Loket 2"


def test_history_newest_first(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    tickets = [issue(kiosk, "A"), issue(kiosk, "A"), issue(kiosk, "C")]
    for counter in (2, 3, 4):
        call_next(officer, counter)
    assert pump(lambda: len(controller.feature_queue) == 2)
    # Queued and featured calls are not history yet.
    assert controller.history == []

    for _ in range(2):
        display.clock.advance(MIN_FEATURE_S + 0.5)
        controller.tick()

    assert controller.featured_label == tickets[2].label
    history = [(row["label"], row["counter_name"]) for row in controller.history]
    assert history == [(tickets[1].label, "Loket 3"), (tickets[0].label, "Loket 2")]


def test_history_keeps_six(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    for _ in range(HISTORY_SIZE + 2):
        issue(kiosk, "A")
    for _ in range(HISTORY_SIZE + 2):
        call_next(officer, 2)
    assert pump(lambda: len(controller.feature_queue) == HISTORY_SIZE + 1)

    # After the queue drains, history contains the calls before the featured one.
    for _ in range(HISTORY_SIZE + 1):
        display.clock.advance(MIN_FEATURE_S + 0.5)
        controller.tick()

    seqs = [row["seq"] for row in controller.history]
    assert len(seqs) == HISTORY_SIZE
    assert seqs == sorted(seqs, reverse=True)
    assert controller.featured_call.seq > seqs[0]


def test_state_of_other_site_ignored(
    display: DisplayUnderTest, clients: Clients
) -> None:
    controller = display.controller
    states: list[OfficeState] = []
    clients.open(Role.OPERATOR, "listener", on_state=states.append)
    assert pump(lambda: bool(states))

    controller.apply_state(dataclasses.replace(states[0], site="other", counters=()))

    assert len(controller.counters) == 4


# Staleness --------------------------------------------------------------------


def test_fresh_state_not_stale(display: DisplayUnderTest) -> None:
    controller = display.controller

    assert controller.stale is False
    assert controller.connected is True
    assert controller.stale_reason == Staleness.FRESH


def test_old_state_makes_stale(display: DisplayUnderTest) -> None:
    controller = display.controller

    display.clock.advance(16.0)
    controller.tick()

    assert controller.stale is True
    assert controller.stale_reason == Staleness.OLD_STATE
    assert controller.stale_detail_en == "The queue server stopped sending data"

    display.clock.advance(-16.0)
    controller.tick()
    assert controller.stale is False


def test_state_of_other_day_stale(
    display: DisplayUnderTest, kiosk: OfficeClient, officer: OfficeClient
) -> None:
    controller = display.controller
    ticket = issue(kiosk, "A")
    call_next(officer, 2)
    assert pump(lambda: controller.featured_label == ticket.label)

    display.clock.advance(days=1)
    controller.tick()

    assert controller.stale is True
    assert controller.stale_reason == Staleness.OTHER_DAY
    # Yesterday's last call is no longer shown in the big area.
    assert controller.featured_call is None
    assert controller.featured_label == ""


def test_engine_stop_makes_stale(office: Any, display: DisplayUnderTest) -> None:
    controller = display.controller

    office.engine.stop()

    assert pump(lambda: controller.stale)
    assert controller.stale_reason == Staleness.ENGINE_OFFLINE
    assert controller.stale_detail_id == "Server antrean tidak aktif"


def test_broker_stop_stale_then_recovers(
    office: Any, display: DisplayUnderTest, tmp_path: Path
) -> None:
    controller = display.controller

    office.broker.stop()

    # The engine's last will (offline) can arrive before the display notices the
    # lost connection, so wait for the connection reason itself.
    assert pump(lambda: controller.stale_reason == Staleness.DISCONNECTED)
    assert controller.stale is True
    assert controller.connected is False
    assert controller.stale_detail_id == "Tidak terhubung ke server antrean"

    restarted = start_mosquitto(office.site, office.data_dir)
    try:
        assert pump(lambda: not controller.stale, timeout=30.0)
        assert controller.connected is True
    finally:
        restarted.stop()


def test_starts_stale_until_state() -> None:
    controller = DisplayController(load_site(), "hall")

    assert controller.stale is True
    assert controller.stale_reason == Staleness.DISCONNECTED
