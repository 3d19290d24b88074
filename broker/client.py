"""The MQTT client every role uses: presence with a last will, subscriptions
restored on each connect, and request/response commands to the engine.

Callbacks run on paho's network thread. Kivy apps hand results to the UI with
`Clock.schedule_once`; nothing here touches a widget.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import contract
from broker.contract import (
    CallEvent,
    Command,
    ContractError,
    DeviceStatus,
    OfficeState,
    Reply,
    Role,
    Topics,
)
from broker.errors import AntreanError
from broker.security import SecurityError, load_credentials, tls_ca_path, username_for
from broker.site import Site

_LOGGER = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 5.0
# A command without a reply is sent again with the same id this often, until its
# timeout. The engine applies an id once, so a repeat only fetches the reply.
RESEND_AFTER_S = 1.5
# Outgoing messages paho keeps while they wait for the broker; more are dropped.
MAX_QUEUED_MESSAGES = 1000
DROPS_LOGGED_EVERY = 100
KEEPALIVE_S = 15
Handler = Callable[[mqtt.MQTTMessage], None]


class OfficeUnavailable(AntreanError):
    """The broker or the engine cannot be reached, so a command was not answered."""


class Link(Enum):
    """The state of a client's connection to the broker."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


def new_command_id(prefix: str) -> str:
    """Return a command id that no other client will make."""
    return f"{prefix}-{uuid.uuid4().hex}"


class OfficeClient:
    """One role's connection to the office broker."""

    def __init__(
        self,
        site: Site,
        role: Role,
        device: str,
        *,
        on_state: Callable[[OfficeState], None] | None = None,
        on_call: Callable[[CallEvent], None] | None = None,
        on_status: Callable[[DeviceStatus], None] | None = None,
        on_link: Callable[[Link], None] | None = None,
        persistent_session: bool = False,
        manual_ack: bool = False,
        data_dir: Path | None = None,
    ) -> None:
        """Connect as a device of the site; its credentials come from data_dir.

        Without credentials in data_dir (or without data_dir) the client
        connects anonymously, which a broker written by antrean rejects.
        With `manual_ack`, a QoS 1 message is acknowledged when its handler
        returns, or, for a filter subscribed with `acks_itself`, when the
        handler's owner calls ack().
        """
        self.site = site
        self.role = role
        self.device = device
        self.topics = Topics(site.id)
        self.link = Link.DISCONNECTED
        self._stopping = False
        # Why the broker last rejected the connection (bad credentials, …), if it did.
        self.refusal: str | None = None
        self._on_link = on_link
        self._persistent = persistent_session
        self._manual_ack = manual_ack
        self._acks_itself: set[str] = set()
        # Counts the connections accepted by the broker; see ack().
        self.connection_number = 0
        # A persistent session needs a stable client id so the broker keeps its queue.
        suffix = "" if persistent_session else f"-{uuid.uuid4().hex[:8]}"
        self.client_id = f"{role.value}-{device}{suffix}"
        self.username = username_for(role, device)
        self.credentials = (
            load_credentials(data_dir, role, device) if data_dir else None
        )
        self.tls_ca = (
            tls_ca_path(data_dir) if data_dir and site.broker.tls_port else None
        )
        self.reply_topic = self.topics.reply(self.username, self.client_id)
        self._pending: dict[bytes, Future[Reply]] = {}
        # Commands published again for want of a reply, since the client started.
        self.resends = 0
        # Messages paho dropped because its outgoing queue was full.
        self.dropped = 0
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._awaiting_grants: set[int] = set()
        self._handlers: dict[str, Handler] = {self.reply_topic: self._handle_reply}
        if on_state:
            self._handlers[self.topics.state] = _decoding(
                contract.decode_state, on_state
            )
        if on_call:
            self._handlers[self.topics.calls] = _decoding(contract.decode_call, on_call)
        if on_status:
            self._handlers[self.topics.statuses] = _decoding(
                contract.decode_status, on_status
            )
        self._mqtt = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=self._manual_ack,
        )
        client.reconnect_delay_set(min_delay=1, max_delay=4)
        if self.credentials is not None:
            client.username_pw_set(self.credentials.username, self.credentials.password)
        if self._uses_tls:
            if self.tls_ca is None or not self.tls_ca.exists():
                raise SecurityError(
                    f"the broker at {self.site.broker.tls_host}:{self.site.broker.tls_port} "
                    f"uses TLS but its CA certificate {self.tls_ca} is missing. Copy "
                    "tls/ca.crt from the office PC's data directory."
                )
            client.tls_set(ca_certs=str(self.tls_ca))
        client.max_queued_messages_set(MAX_QUEUED_MESSAGES)
        client.will_set(
            self._status_topic, self._status_payload(False, {}), qos=1, retain=True
        )
        client.on_connect = self._handle_connect
        client.on_subscribe = self._handle_subscribe
        client.on_disconnect = self._handle_disconnect
        client.on_message = self._handle_message
        return client

    @property
    def _uses_tls(self) -> bool:
        # The engine runs beside the broker and always takes the loopback listener.
        return bool(self.site.broker.tls_port) and self.role is not Role.ENGINE

    @property
    def address(self) -> tuple[str, int]:
        """The host and port this client connects to."""
        broker = self.site.broker
        if self._uses_tls:
            return broker.tls_host, broker.tls_port
        return broker.host, broker.port

    @property
    def _status_topic(self) -> str:
        return self.topics.status(self.role, self.device)

    def _status_payload(self, online: bool, detail: dict[str, Any]) -> bytes:
        return contract.encode(
            DeviceStatus(self.role, self.device, online, datetime.now(UTC), detail)
        )

    # Lifecycle ---------------------------------------------------------------

    def subscribe(
        self, topic_filter: str, handler: Handler, *, acks_itself: bool = False
    ) -> None:
        """Route messages matching a filter to a handler; call before start().

        With `acks_itself` on a client made with `manual_ack`, the broker keeps
        each message until ack() is called for it.
        """
        self._handlers[topic_filter] = handler
        if acks_itself:
            if not self._manual_ack:
                raise ValueError("acks_itself needs a client made with manual_ack")
            self._acks_itself.add(topic_filter)

    def ack(self, message: mqtt.MQTTMessage, connection_number: int) -> None:
        """Acknowledge a message received on connection `connection_number`.

        A message of an earlier connection is not acknowledged, because its id
        means nothing on this one: the broker sends it again instead.
        """
        if message.qos > 0 and connection_number == self.connection_number:
            self._mqtt.ack(message.mid, message.qos)

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting until stop()."""
        properties = Properties(PacketTypes.CONNECT)
        if self._persistent:
            properties.SessionExpiryInterval = 24 * 3600
        self._set_link(Link.CONNECTING)
        host, port = self.address
        self._mqtt.connect_async(
            host,
            port,
            keepalive=KEEPALIVE_S,
            clean_start=not self._persistent,
            properties=properties,
        )
        self._mqtt.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected or the timeout passes; return whether connected."""
        return self._connected.wait(timeout)

    def stop(self) -> None:
        """Say goodbye (offline status), disconnect and stop the network thread."""
        self._stopping = True
        if self._connected.is_set():
            info = self._mqtt.publish(
                self._status_topic, self._status_payload(False, {}), qos=1, retain=True
            )
            try:
                info.wait_for_publish(timeout=1.0)
            except (RuntimeError, ValueError):
                pass
        self._mqtt.disconnect()
        self._mqtt.loop_stop()
        self._set_link(Link.DISCONNECTED)
        self._fail_pending("the client was stopped")

    @property
    def connected(self) -> bool:
        """Whether the client is connected to the broker right now."""
        return self._connected.is_set()

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> None:
        """Publish at QoS 1; paho queues the message while reconnecting.

        When paho's queue is full (MAX_QUEUED_MESSAGES) the message is dropped:
        the first drop and every hundredth after it are logged.
        """
        info = self._mqtt.publish(
            topic, payload, qos=1, retain=retain, properties=properties
        )
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.dropped += 1
            if self.dropped % DROPS_LOGGED_EVERY == 1:
                _LOGGER.warning(
                    "%s dropped a message to %s: %d messages already wait to be "
                    "sent (%d dropped so far)",
                    self.client_id,
                    topic,
                    MAX_QUEUED_MESSAGES,
                    self.dropped,
                )

    def publish_status(self, detail: dict[str, Any]) -> None:
        """Publish this device's retained presence with extra detail (printer state, …)."""
        self.publish(
            self._status_topic, self._status_payload(True, detail), retain=True
        )

    # Commands ----------------------------------------------------------------

    def send(
        self, command: Command, timeout: float = REQUEST_TIMEOUT_S
    ) -> Future[Reply]:
        """Send a command to the engine; the future fails with OfficeUnavailable on timeout.

        A command is never queued while offline: the caller learns at once and
        can tell the person in front of it. Without a reply it is sent again
        every RESEND_AFTER_S while connected, with the same command id. The
        broker drops a command that waits longer than the rest of the timeout
        for the engine (message expiry), so a late engine does not act on a
        request its sender gave up on.
        """
        future: Future[Reply] = Future()
        if not self.connected:
            future.set_exception(
                OfficeUnavailable("Not connected to the office broker.")
            )
            return future
        correlation = command.command_id.encode()
        with self._lock:
            self._pending[correlation] = future
        timer = threading.Timer(timeout, self._expire, args=(correlation, timeout))
        timer.daemon = True
        timer.start()
        future.add_done_callback(lambda _: timer.cancel())
        attempt = _Attempt(contract.encode(command), correlation, future)
        self._send_attempt(attempt, time.monotonic() + timeout)
        return future

    def _send_attempt(self, attempt: _Attempt, deadline: float) -> None:
        # Runs on the caller's thread first, then on a timer thread per resend.
        remaining = deadline - time.monotonic()
        if attempt.future.done() or remaining <= 0:
            return
        if self.connected:
            properties = Properties(PacketTypes.PUBLISH)
            properties.ResponseTopic = self.reply_topic
            properties.CorrelationData = attempt.correlation
            properties.MessageExpiryInterval = max(1, math.ceil(remaining))
            topic = self.topics.command(self.role, self.device)
            self.publish(topic, attempt.payload, properties=properties)
            if attempt.sent:
                self.resends += 1
                _LOGGER.info(
                    "No reply yet to %s; sent it again", attempt.correlation.decode()
                )
            attempt.sent += 1
        if remaining > RESEND_AFTER_S:
            timer = threading.Timer(
                RESEND_AFTER_S, self._send_attempt, args=(attempt, deadline)
            )
            timer.daemon = True
            timer.start()

    def request(self, command: Command, timeout: float = REQUEST_TIMEOUT_S) -> Reply:
        """Send a command and wait for the engine's reply."""
        try:
            return self.send(command, timeout).result(timeout + 1.0)
        except FutureTimeout as exc:
            raise OfficeUnavailable(_no_reply(timeout)) from exc

    def _expire(self, correlation: bytes, timeout: float) -> None:
        with self._lock:
            future = self._pending.pop(correlation, None)
        if future is not None and not future.done():
            future.set_exception(OfficeUnavailable(_no_reply(timeout)))

    def _fail_pending(self, reason: str) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(
                    OfficeUnavailable(f"No reply from the engine: {reason}.")
                )

    # paho callbacks (network thread) -------------------------------------------

    def _handle_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: Any,
        properties: Any,
    ) -> None:
        if reason.is_failure:
            self.refusal = str(reason)
            _LOGGER.warning("Broker rejected %s: %s", self.client_id, reason)
            return
        self.refusal = None
        self.connection_number += 1
        _disable_nagle(client, self.client_id)
        # Subscribing here restores every subscription after a reconnect. The
        # client counts as connected once the broker has granted them all, so
        # nothing published to it in the meantime is missed.
        with self._lock:
            self._awaiting_grants = {
                client.subscribe(topic_filter, qos=1)[1]
                for topic_filter in self._handlers
            }
        client.publish(
            self._status_topic, self._status_payload(True, {}), qos=1, retain=True
        )

    def _handle_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[Any],
        properties: Any,
    ) -> None:
        for reason in reasons:
            if reason.is_failure:
                _LOGGER.warning(
                    "Broker refused a subscription of %s: %s", self.client_id, reason
                )
        with self._lock:
            self._awaiting_grants.discard(mid)
            complete = not self._awaiting_grants
        if complete and not self._connected.is_set():
            self._connected.set()
            _LOGGER.info(
                "%s connected to %s:%d",
                self.client_id,
                *self.address,
            )
            self._set_link(Link.CONNECTED)

    def _handle_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: Any,
        properties: Any,
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        if self._stopping:
            return
        if was_connected:
            _LOGGER.warning(
                "%s lost the broker (%s); reconnecting", self.client_id, reason
            )
        self._set_link(Link.CONNECTING)

    def _handle_message(
        self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage
    ) -> None:
        for topic_filter, handler in self._handlers.items():
            if mqtt.topic_matches_sub(topic_filter, message.topic):
                try:
                    handler(message)
                except Exception:
                    # A handler bug must not kill the network thread of a screen
                    # that runs for months; it is logged with its traceback.
                    _LOGGER.exception("Handler for %s failed", message.topic)
                if self._manual_ack and topic_filter not in self._acks_itself:
                    self.ack(message, self.connection_number)
                return
        if self._manual_ack:
            self.ack(message, self.connection_number)

    def _handle_reply(self, message: mqtt.MQTTMessage) -> None:
        correlation = getattr(message.properties, "CorrelationData", None)
        with self._lock:
            future = self._pending.pop(correlation, None) if correlation else None
        if future is None:
            _LOGGER.debug(
                "Reply for an unknown or expired request on %s", message.topic
            )
            return
        try:
            future.set_result(contract.decode_reply(message.payload))
        except ContractError as exc:
            future.set_exception(exc)

    def _set_link(self, link: Link) -> None:
        self.link = link
        if self._on_link is not None:
            self._on_link(link)


@dataclass
class _Attempt:
    """A command waiting for its reply, and how many times it was published."""

    payload: bytes
    correlation: bytes
    future: Future[Reply]
    sent: int = 0


def _no_reply(timeout: float) -> str:
    # The engine may have the command queued behind others, or apply it after
    # a restart, so a timeout does not mean nothing happened.
    return (
        f"No reply from the engine within {timeout:.0f} s. The command may "
        "still take effect: check the office's status before sending it again."
    )


def _disable_nagle(client: mqtt.Client, client_id: str) -> None:
    # paho writes each MQTT packet on its own and leaves Nagle's algorithm on, so
    # a message written right after another waits for the broker's delayed TCP
    # ACK: about 20 ms per request on loopback, measured on this 2-core machine.
    connection = client.socket()
    if connection is None:
        return
    try:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        _LOGGER.warning("%s keeps Nagle's algorithm on: %s", client_id, exc)


def _decoding(
    decode: Callable[[bytes], Any], callback: Callable[[Any], None]
) -> Handler:
    def handle(message: mqtt.MQTTMessage) -> None:
        if not message.payload:
            return  # A cleared retained message.
        try:
            value = decode(message.payload)
        except ContractError as exc:
            _LOGGER.warning("Ignored a malformed message on %s: %s", message.topic, exc)
            return
        callback(value)

    return handle
