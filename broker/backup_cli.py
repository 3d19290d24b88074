"""The `antrean backup` and `antrean restore` subcommands.

`backup` runs beside a running engine. `restore` fails while an engine holds
the data directory's lock, and keeps the database it replaces.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from broker.backup import DatabaseCopy, backup_database, restore_database
from broker.service import DATABASE_NAME
from broker.site import Site


def add_parsers(
    commands: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    """Add `backup` and `restore` to the antrean command line."""
    backup = commands.add_parser(
        "backup",
        parents=[common],
        help="copy the office database to a new file; safe while the office runs",
    )
    backup.add_argument(
        "file", metavar="FILE", type=Path, help="file to write; it must not exist yet"
    )
    backup.set_defaults(handler=cmd_backup)

    restore = commands.add_parser(
        "restore",
        parents=[common],
        help="replace the office database with a backup; stop the engine first",
    )
    restore.add_argument(
        "file", metavar="FILE", type=Path, help="a file written by `antrean backup`"
    )
    restore.set_defaults(handler=cmd_restore)


def cmd_backup(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Copy the data directory's database to FILE and print what the copy contains."""
    copy = backup_database(data_dir / DATABASE_NAME, args.file)
    print(f"Backed up {_describe(copy)} to {copy.path}.")
    return 0


def cmd_restore(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Put a backup in place of the data directory's database."""
    restored, kept = restore_database(data_dir, data_dir / DATABASE_NAME, args.file)
    print(f"Restored {_describe(restored)} from {args.file} into {restored.path}.")
    if kept is not None:
        print(f"The database it replaced is kept as {kept}.")
    return 0


def _describe(copy: DatabaseCopy) -> str:
    kilobytes = copy.size_bytes / 1024
    return (
        f"{copy.tickets} tickets and {copy.commands} commands "
        f"(schema {copy.schema_version}, {kilobytes:.0f} KiB)"
    )
