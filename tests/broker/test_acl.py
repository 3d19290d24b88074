"""Who may publish and read what, checked cell by cell against a real Mosquitto.

The expected table is written out here by hand, from the rules the office
needs, so a change to the ACL writer that opens or closes a topic fails.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.contract import Role
from broker.mosquitto import MosquittoProcess
from broker.security import load_credentials, username_for
from broker.site import Site

ROOT = "antrean/lebong"
DEVICES = {
    "engine": (Role.ENGINE, "lebong"),
    "operator": (Role.OPERATOR, "admin"),
    "kiosk-1": (Role.KIOSK, "kiosk-1"),
    "kiosk-2": (Role.KIOSK, "kiosk-2"),
    "counter-1": (Role.COUNTER, "1"),
    "counter-2": (Role.COUNTER, "2"),
    "display": (Role.DISPLAY, "hall"),
}
TOPICS = {
    "state": f"{ROOT}/state",
    "call": f"{ROOT}/event/call",
    "cmd kiosk-1": f"{ROOT}/cmd/kiosk/kiosk-1",
    "cmd kiosk-2": f"{ROOT}/cmd/kiosk/kiosk-2",
    "cmd counter-1": f"{ROOT}/cmd/counter/1",
    "cmd counter-2": f"{ROOT}/cmd/counter/2",
    "cmd operator": f"{ROOT}/cmd/operator/cli-1",
    "status engine": f"{ROOT}/status/engine/lebong",
    "status kiosk-1": f"{ROOT}/status/kiosk/kiosk-1",
    "status counter-1": f"{ROOT}/status/counter/1",
    "reply kiosk-1": f"{ROOT}/reply/kiosk-kiosk-1/c1",
    "reply counter-1": f"{ROOT}/reply/counter-1/c1",
    "other site": "antrean/other/state",
}

# Who may publish each topic.
WRITERS = {
    "state": {"engine"},
    "call": {"engine"},
    "cmd kiosk-1": {"kiosk-1"},
    "cmd kiosk-2": {"kiosk-2"},
    "cmd counter-1": {"counter-1"},
    "cmd counter-2": {"counter-2"},
    "cmd operator": {"operator"},
    "status engine": {"engine"},
    "status kiosk-1": {"kiosk-1"},
    "status counter-1": {"counter-1"},
    "reply kiosk-1": {"engine"},
    "reply counter-1": {"engine"},
    "other site": set(),
}
# Who receives what is published on each topic.
READERS = {
    "state": {"operator", "kiosk-1", "kiosk-2", "counter-1", "counter-2", "display"},
    "call": {"operator", "counter-1", "counter-2", "display"},
    "cmd kiosk-1": {"engine", "operator"},
    "cmd kiosk-2": {"engine", "operator"},
    "cmd counter-1": {"engine", "operator"},
    "cmd counter-2": {"engine", "operator"},
    "cmd operator": {"engine", "operator"},
    "status engine": {"engine", "operator", "kiosk-1", "kiosk-2", "counter-1", "counter-2", "display"},
    "status kiosk-1": {"engine", "operator", "counter-1", "counter-2"},
    "status counter-1": {"engine", "operator", "counter-1", "counter-2"},
    "reply kiosk-1": {"operator", "kiosk-1"},
    "reply counter-1": {"operator", "counter-1"},
    "other site": set(),
}
DENIED = 135  # MQTT v5 PUBACK reason "Not authorized".


class Probe:
    """One device's raw MQTT connection, recording what it receives and its PUBACKs."""

    def __init__(self, site: Site, data_dir: Path, name: str) -> None:
        role, device = DEVICES[name]
        credentials = load_credentials(data_dir, role, device)
        assert credentials is not None, f"no login for {name}"
        self.name = name
        self.received: set[str] = set()
        self.acks: dict[int, int] = {}
        self.acked = threading.Condition()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"acl-{name}",
            protocol=mqtt.MQTTv5,
        )
        self.client.username_pw_set(credentials.username, credentials.password)
        self.client.on_message = lambda c, u, message: self.received.add(message.topic)
        self.client.on_publish = self._record_ack
        self.client.connect(site.broker.host, site.broker.port)
        self.client.loop_start()

    def _record_ack(self, client, userdata, mid, reason, properties) -> None:
        with self.acked:
            self.acks[mid] = reason.value
            self.acked.notify_all()

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self.acked:
            self.acked.wait_for(lambda: info.mid in self.acks, timeout=5)
        return self.acks[info.mid]

    def stop(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def probes(mosquitto: tuple[Site, MosquittoProcess], tmp_path: Path) -> Iterator[dict[str, Probe]]:
    site, _ = mosquitto
    connected = {name: Probe(site, tmp_path / "data", name) for name in DEVICES}
    yield connected
    for probe in connected.values():
        probe.stop()


def test_login_names_match_the_devices() -> None:
    for name, (role, device) in DEVICES.items():
        assert username_for(role, device).endswith(device), name


def test_publish_matrix(probes: dict[str, Probe]) -> None:
    outcomes: dict[tuple[str, str], bool] = {}
    for name, probe in probes.items():
        for label, topic in TOPICS.items():
            outcomes[(name, label)] = probe.publish(topic, b"{}") != DENIED

    wrong = {
        cell: allowed
        for cell, allowed in outcomes.items()
        if allowed != (cell[0] in WRITERS[cell[1]])
    }
    assert wrong == {}, f"publish cells that differ from the table: {wrong}"
    assert len(outcomes) == len(DEVICES) * len(TOPICS)


def test_read_matrix(probes: dict[str, Probe]) -> None:
    for probe in probes.values():
        for topic in TOPICS.values():
            probe.client.subscribe(topic, qos=1)
    time.sleep(0.5)

    # Each topic is published once by a device allowed to write it; the
    # operator-only and foreign topics get a message nobody may send.
    for label, topic in TOPICS.items():
        writers = sorted(WRITERS[label])
        if writers:
            assert probes[writers[0]].publish(topic, b"{}") != DENIED
    deadline = time.monotonic() + 5
    expected = defaultdict(set)
    for label, readers in READERS.items():
        if WRITERS[label]:
            for reader in readers:
                expected[reader].add(TOPICS[label])
    while time.monotonic() < deadline:
        if all(expected[name] <= probe.received for name, probe in probes.items()):
            break
        time.sleep(0.05)
    time.sleep(0.3)

    for name, probe in probes.items():
        assert probe.received == expected[name], name


def connect_reasons(site: Site, username: str | None, password: str | None) -> list[str]:
    """Connect once and return the broker's CONNACK reasons."""
    reasons: list[str] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    client.on_connect = lambda c, u, flags, reason, properties: reasons.append(str(reason))
    client.connect(site.broker.host, site.broker.port)
    client.loop_start()
    deadline = time.monotonic() + 5
    while not reasons and time.monotonic() < deadline:
        time.sleep(0.05)
    client.loop_stop()
    client.disconnect()
    return reasons


@pytest.mark.parametrize(
    ("username", "password"),
    [(None, None), ("kiosk-kiosk-1", "guessed"), ("nobody", "x"), ("engine-lebong", "")],
)
def test_bad_login_is_rejected(
    mosquitto: tuple[Site, MosquittoProcess], username: str | None, password: str | None
) -> None:
    site, _ = mosquitto

    reasons = connect_reasons(site, username, password)

    assert reasons
    assert reasons[0] in ("Not authorized", "Bad user name or password")
