"""The engine on MQTT: takes commands from the broker, replies, publishes state and calls.

Commands are handled one at a time on paho's network thread, in the order the
broker delivers them. paho acknowledges a QoS 1 command only after the handler
returns, so a command is committed before the broker forgets it. The reply and
the calls go out right after the commit; the office state follows from a
thread of its own.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import contract
from broker.client import Link, OfficeClient
from broker.contract import Command, ContractError, ErrorCode, Reply, Role
from broker.engine import Clock, Engine, Source, system_clock
from broker.lock import DataDirLock
from broker.site import Site
from broker.store import Store

_LOGGER = logging.getLogger(__name__)

DATABASE_NAME = "antrean.sqlite"
HEARTBEAT_S = 5.0
# States published after commands are at least this far apart, and the commands
# of one interval share a state. A state with its wait estimates takes several
# milliseconds to build, time in which no command is handled.
STATE_INTERVAL_S = 0.2
# Malformed commands logged in full per sender; after that, every hundredth.
MALFORMED_LOGGED = 5
MALFORMED_LOG_EVERY = 100


class EngineService:
    """Runs an Engine behind the office broker."""

    def __init__(self, site: Site, data_dir: Path, clock: Clock = system_clock) -> None:
        self.site = site
        # Held until stop(), so a second engine or a restore on this directory
        # fails at once instead of sharing the database.
        self.data_lock = DataDirLock(data_dir)
        self.data_lock.acquire("engine")
        try:
            self.store = Store(data_dir / DATABASE_NAME)
            self.engine = Engine(site, self.store, clock=clock)
            self.client = OfficeClient(
                site,
                Role.ENGINE,
                site.id,
                on_link=self._handle_link,
                persistent_session=True,
                data_dir=data_dir,
            )
        except Exception:
            self.data_lock.release()
            raise
        self._malformed: Counter[str] = Counter()
        self.client.subscribe(self.client.topics.commands, self._handle_command)
        self._stop = threading.Event()
        self._state_due = threading.Event()
        self._publisher = threading.Thread(
            target=self._publish_states, name="engine-state", daemon=True
        )
        self._lock = threading.Lock()

    def start(self) -> None:
        """Connect to the broker and start publishing state."""
        self.client.start()
        self._publisher.start()

    def stop(self) -> None:
        """Stop taking commands, disconnect and close the database."""
        self._stop.set()
        self._state_due.set()
        self.client.stop()
        with self._lock:
            self.store.close()
        self.data_lock.release()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the engine is connected; return whether it is."""
        return self.client.wait_connected(timeout)

    def publish_state(self) -> None:
        """Publish the retained office state, stamped with the engine's clock."""
        with self._lock:
            state = self.engine.snapshot()
        self.client.publish(
            self.client.topics.state, contract.encode(state), retain=True
        )

    def _handle_link(self, link: Link) -> None:
        # A client that connects after a broker restart must find state at once.
        if link is Link.CONNECTED:
            self._state_due.set()

    def _publish_states(self) -> None:
        # Publishes a state when one is due, and every HEARTBEAT_S even when
        # nothing changes, because displays tell fresh state from stale by its
        # timestamp.
        while not self._stop.is_set():
            self._state_due.wait(HEARTBEAT_S - STATE_INTERVAL_S)
            self._state_due.clear()
            if self._stop.is_set():
                return
            if self.client.connected:
                try:
                    self.publish_state()
                except Exception:
                    _LOGGER.exception("Could not publish the office state")
            self._stop.wait(STATE_INTERVAL_S)

    def _handle_command(self, message: mqtt.MQTTMessage) -> None:
        response_topic = getattr(message.properties, "ResponseTopic", None)
        correlation = getattr(message.properties, "CorrelationData", None)
        try:
            role, device = self.client.topics.parse_command_topic(message.topic)
        except ContractError as exc:
            self._reject_malformed(
                f"topic {message.topic}", exc, response_topic, correlation
            )
            return
        try:
            command = contract.decode_command(message.payload)
        except ContractError as exc:
            self._reject_malformed(
                f"{role.value} {device}", exc, response_topic, correlation
            )
            return

        source = Source(role, device)
        with self._lock:
            try:
                outcome = self.engine.handle(command, source)
            except Exception:
                # The command's transaction rolled back; the engine keeps serving.
                _LOGGER.exception(
                    "Command %s (%s) from %s %s failed in the engine",
                    command.command_id,
                    command.kind,
                    role.value,
                    device,
                )
                self._reply(response_topic, correlation, _failed_reply(command))
                return
        self._reply(response_topic, correlation, outcome.reply)
        if outcome.repeat:
            return
        for call in outcome.calls:
            self.client.publish(self.client.topics.calls, contract.encode(call))
        for kiosk, request in outcome.prints:
            # NOTE: not retained, so a kiosk that is offline right now never
            # sees the request; the counter sends the reprint again.
            topic = self.client.topics.print_request(kiosk)
            self.client.publish(topic, contract.encode(request))
            _LOGGER.info("Asked %s to print %s again", kiosk, request.ticket.label)
        self._state_due.set()

    def _reject_malformed(
        self,
        sender: str,
        error: ContractError,
        topic: str | None,
        correlation: bytes | None,
    ) -> None:
        self._malformed[sender] += 1
        count = self._malformed[sender]
        if count <= MALFORMED_LOGGED or count % MALFORMED_LOG_EVERY == 0:
            _LOGGER.warning(
                "Rejected malformed command number %d from %s: %s", count, sender, error
            )
        reply = Reply("", ok=False, error=ErrorCode.INVALID, message=str(error))
        self._reply(topic, correlation, reply)

    def _reply(
        self, topic: str | None, correlation: bytes | None, reply: Reply
    ) -> None:
        if not topic:
            _LOGGER.debug(
                "Command %s carried no response topic; no reply sent", reply.command_id
            )
            return
        properties = Properties(PacketTypes.PUBLISH)
        if correlation is not None:
            properties.CorrelationData = correlation
        self.client.publish(topic, contract.encode(reply), properties=properties)


def _failed_reply(command: Command) -> Reply:
    message = (
        "The engine failed on this command because of an internal error, logged on "
        "the office PC. Try again, or call the office's technician."
    )
    return Reply(
        command.command_id, ok=False, error=ErrorCode.UNAVAILABLE, message=message
    )
