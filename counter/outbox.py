"""The one counter command still without a reply, kept across a lost connection.

A command keeps its command id for every send, so the engine applies it at most
once. A press made offline is sent after reconnecting, and a command whose
reply was lost is sent again until a reply comes. Only a command that was
never sent may be given up, after OFFLINE_QUEUE_S, and that is reported.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from enum import StrEnum

from broker.contract import Command

_LOGGER = logging.getLogger(__name__)

# A press made offline is given up (and reported) after this many seconds unsent.
OFFLINE_QUEUE_S = 60.0
# After a send that got no reply, the same command goes out again this much later.
RESEND_AFTER_S = 2.0


class Delivery(StrEnum):
    """How far a pending command got."""

    QUEUED = "queued"  # never sent: pressed while offline
    SENT = "sent"  # sent, its reply not yet in
    IN_DOUBT = "in_doubt"  # sent, no reply: the engine may have applied it


@dataclass(frozen=True)
class PendingCommand:
    """A command with its title for messages and its delivery so far."""

    command: Command
    title: str
    delivery: Delivery
    pressed_at: float
    attempts: int = 0
    resend_at: float = 0.0


class OutboxBusy(Exception):
    """A command is still pending; the outbox takes one at a time."""


class Outbox:
    """At most one pending command; times are time.monotonic() seconds."""

    def __init__(self) -> None:
        self.pending: PendingCommand | None = None

    def add(self, command: Command, title: str, now: float) -> PendingCommand:
        """Keep a new command as QUEUED; raise OutboxBusy if one is pending."""
        if self.pending is not None:
            raise OutboxBusy(self.pending.title)
        self.pending = PendingCommand(command, title, Delivery.QUEUED, now)
        return self.pending

    def due(self, now: float) -> bool:
        """Tell whether the pending command should be sent now, if connected."""
        pending = self.pending
        if pending is None:
            return False
        if pending.delivery is Delivery.QUEUED:
            return True
        return pending.delivery is Delivery.IN_DOUBT and now >= pending.resend_at

    def mark_sent(self) -> None:
        """Record that the pending command went out."""
        self._update(delivery=Delivery.SENT, attempts=self._attempts() + 1)

    def mark_unsent(self) -> None:
        """Record that a send failed before anything went out (the link was down)."""
        pending = self.pending
        if pending is not None and pending.attempts == 0:
            self._update(delivery=Delivery.QUEUED)
        else:
            # An earlier send may have reached the engine, so it stays in doubt.
            self._update(delivery=Delivery.IN_DOUBT)

    def mark_no_reply(self, now: float) -> None:
        """Record that a send got no reply: send it again after RESEND_AFTER_S."""
        self._update(delivery=Delivery.IN_DOUBT, resend_at=now + RESEND_AFTER_S)

    def expire(self, now: float) -> PendingCommand | None:
        """Give up and return a command queued unsent for OFFLINE_QUEUE_S, else None."""
        pending = self.pending
        if (
            pending is None
            or pending.delivery is not Delivery.QUEUED
            or now - pending.pressed_at < OFFLINE_QUEUE_S
        ):
            return None
        self.pending = None
        _LOGGER.warning(
            "Gave up %s (%s): not sent within %.0f s",
            pending.command.kind,
            pending.command.command_id,
            OFFLINE_QUEUE_S,
        )
        return pending

    def resolve(self, command_id: str) -> PendingCommand | None:
        """Remove and return the pending command with this id, once its reply came."""
        pending = self.pending
        if pending is None or pending.command.command_id != command_id:
            return None
        self.pending = None
        return pending

    def _attempts(self) -> int:
        return self.pending.attempts if self.pending else 0

    def _update(self, **changes: object) -> None:
        if self.pending is not None:
            self.pending = replace(self.pending, **changes)
