"""The engine on MQTT: takes commands from the broker, replies, publishes state and calls.

Commands are handled one at a time by a thread of their own, in the order the
broker delivers them. The commands that wait when the thread is free form one
batch: each is applied in a savepoint of one transaction, and one commit makes
the whole batch durable (a group commit), so a busy office pays for one disk
flush per batch instead of one per command. Replies, calls and the QoS 1
acknowledgements go out only after that commit, so the broker keeps a command
until it is durable. The office state follows from a thread of its own, which
reads the file through a second connection, so a command does not wait for a
state to be built, only for its turn at the GIL.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broker import contract
from broker.client import Link, OfficeClient
from broker.contract import Command, ContractError, ErrorCode, Reply, Role
from broker.engine import Clock, Engine, Outcome, Source, system_clock
from broker.estimate import Estimator
from broker.lock import DataDirLock
from broker.site import Site
from broker.state import StateBuilder
from broker.store import Store

_LOGGER = logging.getLogger(__name__)

DATABASE_NAME = "antrean.sqlite"
HEARTBEAT_S = 5.0
# States published after commands are at least this far apart, and the commands
# of one interval share a state. A state with its wait estimates takes several
# milliseconds of CPU to build, which commands share through the GIL.
STATE_INTERVAL_S = 0.2
# How long a thread runs Python while another waits for the GIL before Python
# makes it yield (Python's default is 5 ms). A command that arrives while the
# state thread builds a state waits about this long for its turn.
SWITCH_INTERVAL_S = 0.0005
# The maximum number of commands that share one commit.
MAX_BATCH = 64
# How long stop() waits for the commands already received.
DRAIN_TIMEOUT_S = 5.0
# Malformed commands logged in full per sender; after that, every hundredth.
MALFORMED_LOGGED = 5
MALFORMED_LOG_EVERY = 100
# An office state too large to publish is logged the first time and then
# every this many times.
OVERSIZED_LOG_EVERY = 100


@dataclass(frozen=True)
class _Received:
    """A command message, the connection it came on, and the command it carries."""

    message: mqtt.MQTTMessage
    connection_number: int
    source: Source
    command: Command

    @property
    def response_topic(self) -> str | None:
        return _response_topic(self.message)

    @property
    def correlation(self) -> bytes | None:
        return _correlation(self.message)


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
            # States are read through this connection, under _state_lock.
            self.reader = Store(data_dir / DATABASE_NAME)
            estimator = Estimator(site, self.reader, changes_from=self.engine.estimator)
            self.state = StateBuilder(site, self.reader, estimator)
            self.client = OfficeClient(
                site,
                Role.ENGINE,
                site.id,
                on_link=self._handle_link,
                persistent_session=True,
                manual_ack=True,
                data_dir=data_dir,
            )
        except Exception:
            self.data_lock.release()
            raise
        self._malformed: Counter[str] = Counter()
        self.client.subscribe(
            self.client.topics.commands, self._receive_command, acks_itself=True
        )
        self._received: queue.SimpleQueue[_Received | None] = queue.SimpleQueue()
        # Well-formed commands received, and how many batches of each size
        # were applied, since start().
        self.received = 0
        self.batch_sizes: Counter[int] = Counter()
        self._oversized_states = 0
        self._worker = threading.Thread(
            target=self._apply_commands, name="engine-commands", daemon=True
        )
        self._stop = threading.Event()
        self._state_due = threading.Event()
        self._publisher = threading.Thread(
            target=self._publish_states, name="engine-state", daemon=True
        )
        # One lock for the writing connection, one for the reading one.
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()

    def start(self) -> None:
        """Connect to the broker and start publishing state.

        Sets the interpreter's thread switch interval to SWITCH_INTERVAL_S, for
        the whole process.
        """
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._worker.start()
        self.client.start()
        self._publisher.start()

    def stop(self) -> None:
        """Stop taking commands, disconnect and close the database.

        Commands received but not yet applied are applied first, for up to
        DRAIN_TIMEOUT_S; the broker sends any that are left to the next engine.
        """
        self._stop.set()
        self._state_due.set()
        waiting = self._received.qsize()
        if waiting:
            _LOGGER.info("Applying %d commands received before the stop", waiting)
        self._received.put(None)
        if self._worker.is_alive():
            self._worker.join(DRAIN_TIMEOUT_S)
        self.client.stop()
        with self._lock:
            self.store.close()
        with self._state_lock:
            self.reader.close()
        self.data_lock.release()

    def wait_connected(self, timeout: float) -> bool:
        """Block until the engine is connected; return whether it is."""
        return self.client.wait_connected(timeout)

    def publish_state(self) -> None:
        """Publish the retained office state, stamped with the engine's clock."""
        with self._state_lock, self.reader.read_transaction():
            state = self.state.snapshot(self.engine.clock())
        payload = contract.encode(state)
        if len(payload) > contract.MAX_STATE_BYTES:
            # The broker would drop the engine's connection for it.
            self._oversized_states += 1
            if self._oversized_states % OVERSIZED_LOG_EVERY == 1:
                _LOGGER.error(
                    "Not publishing an office state of %d bytes, over the limit of "
                    "%d (%d states so far). Shorten the counter names in the site "
                    "file, or the officers' names and pause reasons.",
                    len(payload),
                    contract.MAX_STATE_BYTES,
                    self._oversized_states,
                )
            return
        self.client.publish(self.client.topics.state, payload, retain=True)

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

    def _receive_command(self, message: mqtt.MQTTMessage) -> None:
        # paho's network thread: decode, queue, and leave the rest to the worker.
        connection = self.client.connection_number
        response_topic = _response_topic(message)
        correlation = _correlation(message)
        try:
            role, device = self.client.topics.parse_command_topic(message.topic)
        except ContractError as exc:
            self._reject_malformed(
                f"topic {message.topic}", exc, response_topic, correlation
            )
            self.client.ack(message, connection)
            return
        try:
            command = contract.decode_command(message.payload)
        except ContractError as exc:
            self._reject_malformed(
                f"{role.value} {device}", exc, response_topic, correlation
            )
            self.client.ack(message, connection)
            return
        self._received.put(
            _Received(message, connection, Source(role, device), command)
        )
        self.received += 1

    def _apply_commands(self) -> None:
        while True:
            first = self._received.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._received.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                self._apply_batch(batch)
            except Exception:
                # Not even a failed reply could be made; the broker keeps the
                # commands, unacknowledged, for the next connection.
                _LOGGER.exception("A batch of %d commands failed", len(batch))
            if stopping:
                return

    def _apply_batch(self, batch: list[_Received]) -> None:
        self.batch_sizes[len(batch)] += 1
        with self._lock:
            outcomes = self._handle_together(batch)
            if outcomes is None:
                # The database failed on one of them, and the savepoints cannot
                # tell what else the failure undid: each is applied on its own.
                outcomes = [self._handle(item) for item in batch]
        for item, outcome in zip(batch, outcomes, strict=True):
            self._send(item, outcome)
            self.client.ack(item.message, item.connection_number)
        self._state_due.set()

    def _handle_together(self, batch: list[_Received]) -> list[Outcome] | None:
        if len(batch) == 1:
            # Its own transaction already commits it, with no savepoint.
            return [self._handle(batch[0])]
        connection = self.store.db.conn
        try:
            with self.store.transaction():
                outcomes = []
                for item in batch:
                    outcomes.append(self._handle(item))
                    # Some errors (SQLITE_FULL, SQLITE_IOERR) end the whole
                    # transaction, after which a command would commit on its
                    # own, unannounced when it is applied again: stop at once.
                    if outcomes[-1].database_failed or not connection.in_transaction:
                        raise _BatchFailed
        except (_BatchFailed, sqlite3.Error):
            return None
        return outcomes

    def _handle(self, item: _Received) -> Outcome:
        command, source = item.command, item.source
        try:
            return self.engine.handle(command, source)
        except Exception:
            # The command's transaction, or its savepoint in a batch, rolled
            # back; the engine keeps serving.
            _LOGGER.exception(
                "Command %s (%s) from %s %s failed in the engine",
                command.command_id,
                command.kind,
                source.role.value,
                source.device,
            )
            return Outcome(reply=_failed_reply(command))

    def _send(self, item: _Received, outcome: Outcome) -> None:
        self._reply(item.response_topic, item.correlation, outcome.reply)
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


def _response_topic(message: mqtt.MQTTMessage) -> str | None:
    return getattr(message.properties, "ResponseTopic", None)


def _correlation(message: mqtt.MQTTMessage) -> bytes | None:
    return getattr(message.properties, "CorrelationData", None)


class _BatchFailed(Exception):
    """The database failed on a command of a batch, which is rolled back whole."""


def _failed_reply(command: Command) -> Reply:
    message = (
        "The engine failed on this command because of an internal error, logged on "
        "the office PC. Try again, or call the office's technician."
    )
    return Reply(
        command.command_id, ok=False, error=ErrorCode.UNAVAILABLE, message=message
    )
