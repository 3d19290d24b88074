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

from broker.contract import CallEvent, Command, ErrorCode, Reply, Role

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
