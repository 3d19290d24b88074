"""Officers and their logins, for tests that send commands as counter terminals do.

A counter terminal's commands are rejected until an officer is logged in there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from broker.client import OfficeClient, new_command_id
from broker.commands import Source
from broker.contract import Command, CommandKind, Reply, Role
from broker.engine import Engine
from broker.officers import add_officer
from broker.service import DATABASE_NAME
from broker.store import Store

OFFICER_PIN = "2468"
COUNTERS = (1, 2, 3, 4)


def officer_of(counter: int) -> str:
    """Return the id of the test officer who works at a counter."""
    return f"petugas{counter}"


def add_officers(store: Store, counters: tuple[int, ...] = COUNTERS) -> None:
    """Add one officer per counter, all with OFFICER_PIN."""
    for number in counters:
        add_officer(
            store,
            officer_of(number),
            f"Petugas Loket {number}",
            OFFICER_PIN,
            datetime.now(UTC),
        )


def add_office_officers(data_dir: Path, counters: tuple[int, ...] = COUNTERS) -> None:
    """Add the test officers to a running office's database, beside its engine."""
    store = Store(data_dir / DATABASE_NAME)
    try:
        add_officers(store, counters)
    finally:
        store.close()


def login_command(counter: int, pin: str = OFFICER_PIN) -> Command:
    """Return the LOGIN of a counter's test officer."""
    return Command(
        CommandKind.LOGIN,
        new_command_id(f"login{counter}"),
        counter=counter,
        officer=officer_of(counter),
        pin=pin,
    )


def log_in_engine(engine: Engine, counters: tuple[int, ...] = COUNTERS) -> None:
    """Add the test officers and log each in to its counter, as its terminal would."""
    add_officers(engine.store, counters)
    for number in counters:
        reply = engine.handle(
            login_command(number), Source(Role.COUNTER, str(number))
        ).reply
        if not reply.ok:
            raise RuntimeError(f"login at counter {number} failed: {reply.message}")


def log_in_client(client: OfficeClient, counter: int) -> Reply:
    """Log a counter's test officer in through a connected counter client."""
    reply = client.request(login_command(counter))
    if not reply.ok:
        raise RuntimeError(f"login at counter {counter} failed: {reply.message}")
    return reply
