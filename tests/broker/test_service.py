"""The engine behind a real Mosquitto: requests, replies, retained state and calls."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import contract
from broker.client import OfficeClient, OfficeUnavailable, new_command_id
from broker.security import load_credentials
from broker.contract import (
    CallEvent,
    Command,
    CommandKind,
    ErrorCode,
    OfficeState,
    Reply,
    Role,
)
from officer_logins import add_office_officers, log_in_client
from tests.conftest import Office


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


@pytest.fixture
def connect(office: Office) -> Iterator[Callable[..., OfficeClient]]:
    clients: list[OfficeClient] = []

    def make(
        role: Role = Role.KIOSK, device: str = "kiosk-1", **callbacks
    ) -> OfficeClient:
        client = OfficeClient(office.site, role, device, data_dir=office.data_dir, **callbacks)
        client.start()
        assert client.wait_connected(5), "client did not connect to the test broker"
        clients.append(client)
        if role is Role.COUNTER:
            # A counter terminal acts only while an officer is logged in there.
            add_office_officers(office.data_dir, (int(device),))
            log_in_client(client, int(device))
        return client

    yield make
    for client in clients:
        client.stop()


def issue(client: OfficeClient, service: str = "A", **fields) -> Reply:
    return client.request(
        Command(
            CommandKind.ISSUE_TICKET, new_command_id("t"), service=service, **fields
        )
    )


def test_two_kiosks_at_once_get_consecutive_numbers(connect) -> None:
    kiosks = [connect(Role.KIOSK, "kiosk-1"), connect(Role.KIOSK, "kiosk-2")]
    barrier = threading.Barrier(2)
    futures: list[Future[Reply]] = [Future(), Future()]

    def press(index: int) -> None:
        barrier.wait()
        command = Command(CommandKind.ISSUE_TICKET, new_command_id("k"), service="B")
        kiosks[index].send(command).add_done_callback(
            lambda done: futures[index].set_result(done.result())
        )

    for round_number in range(20):
        threads = [threading.Thread(target=press, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        labels = sorted(future.result(timeout=5).ticket.label for future in futures)
        expected = [f"B-{2 * round_number + 1:03d}", f"B-{2 * round_number + 2:03d}"]
        assert labels == expected
        futures[:] = [Future(), Future()]


def test_same_command_id_twice_calls_once(connect, office: Office) -> None:
    calls: queue.Queue[CallEvent] = queue.Queue()
    kiosk = connect()
    counter = connect(Role.COUNTER, "2", on_call=calls.put)
    issue(kiosk)
    issue(kiosk)
    command = Command(CommandKind.NEXT, new_command_id("n"), counter=2)

    first = counter.request(command)
    second = counter.request(command)

    assert first == second
    assert first.ticket.label == "A-001"
    assert calls.get(timeout=5).ticket.label == "A-001"
    with pytest.raises(queue.Empty):
        calls.get(timeout=0.5)
    assert office.engine.engine.snapshot().service("A").waiting_normal == 1


def test_late_client_gets_retained_state(connect) -> None:
    published: list[OfficeState] = []
    connect(Role.OPERATOR, "listener", on_state=published.append)
    issue(connect())
    # The state follows the reply from the engine's state thread.
    assert wait_for(lambda: any(s.service("A").waiting_normal for s in published))
    states: queue.Queue[OfficeState] = queue.Queue()

    connect(Role.DISPLAY, "hall", on_state=states.put)

    state = states.get(timeout=5)
    assert state.site == "lebong"
    assert state.service("A").waiting_normal == 1


def test_call_event_reaches_display(connect) -> None:
    calls: queue.Queue[CallEvent] = queue.Queue()
    connect(Role.DISPLAY, "hall", on_call=calls.put)
    kiosk = connect()
    issue(kiosk, "A", category="lansia")

    counter = connect(Role.COUNTER, "1")
    counter.request(Command(CommandKind.NEXT, new_command_id("n"), counter=1))

    call = calls.get(timeout=5)
    assert call.ticket.label == "A-001"
    assert call.counter == 1
    assert call.ticket.category == "lansia"


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"[]",
        b'{"type": "issue_ticket"}',
        b'{"type": "launch", "id": "x1"}',
        b'{"type": "next", "id": "x2", "counter": "two"}',
        b'{"type": "next", "id": "x3", "counter": 2, "extra": 1}',
        b'{"type": "issue_ticket", "id": "has space", "service": "A"}',
        b'{"type": "issue_ticket", "id": "x4", "service": "' + b"A" * 100 + b'"}',
        b"\xff\xfe",
    ],
)
def test_malformed_command_gets_error_and_changes_nothing(
    office: Office, connect, payload: bytes
) -> None:
    kiosk = connect()
    issue(kiosk)
    before = list(office.engine.store.db.query("SELECT * FROM tickets"))
    replies: queue.Queue[Reply] = queue.Queue()
    credentials = load_credentials(office.data_dir, Role.KIOSK, "kiosk-1")
    reply_topic = kiosk.topics.reply(credentials.username, "raw-test")
    raw = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    raw.username_pw_set(credentials.username, credentials.password)
    raw.on_message = lambda client, userdata, message: replies.put(
        contract.decode_reply(message.payload)
    )
    raw.connect(office.site.broker.host, office.site.broker.port)
    raw.loop_start()
    try:
        raw.subscribe(reply_topic, qos=1)
        time.sleep(0.2)
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = reply_topic
        properties.CorrelationData = b"1"
        raw.publish(kiosk.topics.command(Role.KIOSK, "kiosk-1"), payload, qos=1, properties=properties)

        reply = replies.get(timeout=5)
    finally:
        raw.loop_stop()
        raw.disconnect()

    assert reply.ok is False
    assert reply.error is ErrorCode.INVALID
    assert reply.message
    assert list(office.engine.store.db.query("SELECT * FROM tickets")) == before
    assert issue(kiosk).ticket.label == "A-002"


def test_request_without_engine_fails_plainly(connect, office: Office) -> None:
    kiosk = connect()
    office.engine.stop()

    with pytest.raises(OfficeUnavailable, match="No reply from the engine"):
        kiosk.request(
            Command(CommandKind.ISSUE_TICKET, new_command_id("t"), service="A"),
            timeout=1.0,
        )


def test_command_while_offline_is_not_queued(office: Office) -> None:
    client = OfficeClient(office.site, Role.KIOSK, "kiosk-1", data_dir=office.data_dir)

    future = client.send(
        Command(CommandKind.ISSUE_TICKET, new_command_id("t"), service="A")
    )

    with pytest.raises(OfficeUnavailable, match="Not connected"):
        future.result(timeout=1)
    assert office.engine.engine.snapshot().service("A").issued == 0


def test_device_presence_and_last_will(connect, office: Office) -> None:
    statuses: queue.Queue[contract.DeviceStatus] = queue.Queue()
    connect(Role.COUNTER, "1", on_status=statuses.put)
    kiosk = OfficeClient(office.site, Role.KIOSK, "kiosk-2", data_dir=office.data_dir)
    kiosk.start()
    assert kiosk.wait_connected(5)

    assert wait_for(
        lambda: any(s.device == "kiosk-2" and s.online for s in list(statuses.queue))
    )
    # Drop the socket without a goodbye, as a crash or a pulled cable would.
    kiosk._mqtt.socket().close()
    kiosk._mqtt.loop_stop()

    assert wait_for(
        lambda: any(
            s.device == "kiosk-2" and not s.online for s in list(statuses.queue)
        ),
        timeout=40,
    )
