"""Command handlers of the engine, one module per group of commands.

A handler takes the engine, the command, its source and the engine's time,
and runs inside the command's transaction. It raises Rejected to refuse a
command; the transaction then rolls back and the sender gets the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from broker.contract import CallEvent, Command, CommandKind, ErrorCode, Reply, Role

if TYPE_CHECKING:
    from broker.engine import Engine


class Rejected(Exception):
    """A command that cannot be applied; becomes an error reply, changes nothing."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Source:
    """Who sent a command: the role and device id from its topic."""

    role: Role
    device: str


Result = tuple[Reply, list[CallEvent]]
Handler = Callable[["Engine", Command, Source, datetime], Result]


# Commands a kiosk may send; a counter may send any command for its own counter.
KIOSK_COMMANDS = frozenset(
    {CommandKind.ISSUE_TICKET, CommandKind.CHECK_IN, CommandKind.PRINT_FAILED}
)
STAFF_COMMANDS = frozenset({CommandKind.CANCEL})


def authorize(source: Source, command: Command) -> None:
    """Reject a command its sender's role may not send.

    The broker ACL already confines each device to its own command topic;
    this check covers what the topic cannot say, such as a counter naming
    another counter's number in the payload.
    """
    role = source.role
    if role in (Role.OPERATOR, Role.ENGINE):
        return
    if role is Role.KIOSK and command.kind in KIOSK_COMMANDS:
        return
    if role is Role.COUNTER:
        if command.kind in STAFF_COMMANDS:
            return
        if command.counter is not None and str(command.counter) == source.device:
            return
    raise Rejected(
        ErrorCode.FORBIDDEN,
        f"{role.value} {source.device} may not send {command.kind.value}"
        + (f" for counter {command.counter}" if command.counter is not None else "")
        + ".",
    )
