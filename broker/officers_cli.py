"""The `antrean officers` subcommands: add an officer with a PIN, list officers.

They write the office's database directly, so they run on the office PC; the
engine may keep running, because SQLite in WAL mode takes one writer at a time.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from broker.errors import AntreanError
from broker.officers import (
    OfficerError,
    active_logins,
    add_officer,
    check_officer_id,
    check_pin,
    list_officers,
)
from broker.service import DATABASE_NAME
from broker.site import Site
from broker.store import Store


class PinEntryError(AntreanError):
    """The PIN could not be read, or its two entries differ."""


def add_parsers(
    commands: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    """Add `officers add` and `officers list` to the antrean command line."""
    officers = commands.add_parser(
        "officers",
        parents=[common],
        help="add or list the officers who log in at counters",
    )
    tasks = officers.add_subparsers(
        dest="task", required=True, metavar="TASK", help="add or list"
    )
    add = tasks.add_parser(
        "add", parents=[common], help="add an officer, asking for the PIN twice"
    )
    add.add_argument(
        "officer",
        metavar="ID",
        help="officer id: 1 to 32 letters or digits, e.g. a NIP",
    )
    add.add_argument(
        "--name", required=True, help="the officer's name, shown at the counter"
    )
    add.add_argument(
        "--pin-stdin",
        action="store_true",
        help="read the PIN (4 to 8 digits) from the first line of standard input",
    )
    add.add_argument(
        "--replace",
        action="store_true",
        help="give an existing officer a new name and PIN",
    )
    add.set_defaults(handler=cmd_officers_add)
    listing = tasks.add_parser(
        "list", parents=[common], help="list officers and where each is logged in today"
    )
    listing.set_defaults(handler=cmd_officers_list)


def read_pin(from_stdin: bool, stdin: TextIO = sys.stdin) -> str:
    """Return a PIN read from standard input, or asked twice at the terminal."""
    if from_stdin:
        return check_pin(stdin.readline().strip())
    try:
        first = getpass.getpass("PIN (4 to 8 digits): ")
        second = getpass.getpass("PIN again: ")
    except EOFError as exc:
        raise PinEntryError(
            "no PIN was typed. Run this in a terminal, or pass --pin-stdin."
        ) from exc
    if first != second:
        raise PinEntryError("the two PINs differ; nothing was saved. Run it again.")
    return check_pin(first)


def cmd_officers_add(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Add an officer, or replace one with --replace."""
    officer_id = check_officer_id(args.officer)
    pin = read_pin(args.pin_stdin)
    store = _open_store(data_dir, create=True)
    try:
        add_officer(
            store, officer_id, args.name, pin, datetime.now(UTC), replace=args.replace
        )
    finally:
        store.close()
    print(f"Officer {officer_id} can log in at any counter of {site.name}.")
    return 0


def cmd_officers_list(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Print the officers, one per line, with the counter each is logged in at today."""
    store = _open_store(data_dir, create=False)
    try:
        officers = list_officers(store)
        today = datetime.now(site.timezone).date().isoformat()
        counters = {
            row["officer"]: number
            for number, row in active_logins(store, today).items()
        }
    finally:
        store.close()
    if not officers:
        print("No officers yet. Add one with: antrean officers add ID --name NAME")
        return 0
    width = max(len(officer.id) for officer in officers)
    for officer in officers:
        number = counters.get(officer.id)
        counter = site.counter(number) if number is not None else None
        where = f"logged in at {counter.name}" if counter else "not logged in"
        print(f"{officer.id:<{width}}  {officer.name}  ({where})")
    return 0


def _open_store(data_dir: Path, create: bool) -> Store:
    path = data_dir / DATABASE_NAME
    if not create and not path.exists():
        raise OfficerError(
            f"no database at {path}. Pass the office's --data-dir, or add an "
            "officer first."
        )
    return Store(path)
