"""The kiosk-side subcommands: import appointments, test a printer, reprint a ticket.

`appointments import` writes the office database directly, so it runs on the
office PC; the engine may keep running, because SQLite in WAL mode takes one
writer at a time. `print-test` needs no office at all.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from datetime import UTC, datetime
from pathlib import Path

from broker.appointments import import_appointments
from broker.client import new_command_id
from broker.contract import Command, CommandKind, TicketStatus, TicketView, WaitRange
from broker.errors import AntreanError
from broker.service import DATABASE_NAME
from broker.site import Kiosk, Lane, Site
from broker.store import Store

_LOGGER = logging.getLogger(__name__)


class PrintTestError(AntreanError):
    """The test ticket could not be printed."""


def add_parsers(
    commands: argparse._SubParsersAction, common: argparse.ArgumentParser
) -> None:
    """Add `appointments import`, `print-test` and `reprint` to the command line."""
    appointments = commands.add_parser(
        "appointments", parents=[common], help="import booked appointments"
    )
    tasks = appointments.add_subparsers(
        dest="task", required=True, metavar="TASK", help="import"
    )
    load = tasks.add_parser(
        "import",
        parents=[common],
        help="import a CSV file with the columns code, name, service, date, time",
    )
    load.add_argument("file", metavar="FILE.csv", type=Path, help="appointments file")
    load.set_defaults(handler=cmd_appointments_import)

    test = commands.add_parser(
        "print-test", parents=[common], help="print a sample ticket on a printer"
    )
    test.add_argument(
        "--printer",
        metavar="SPEC",
        help="printer, e.g. file:DIR, serial:/dev/ttyUSB0?baudrate=19200, "
        "usb:VID:PID or network:HOST:9100; default: the kiosk's printer",
    )
    test.add_argument(
        "--width",
        type=int,
        choices=(58, 80),
        help="paper width in mm; default: the kiosk's paper",
    )
    test.add_argument(
        "--device",
        metavar="ID",
        help="kiosk whose printer profile and code page apply; default: the first",
    )
    test.set_defaults(handler=cmd_print_test)

    reprint = commands.add_parser(
        "reprint",
        parents=[common],
        help="put a ticket that was not printed back in the queue and print it again",
    )
    reprint.add_argument("ticket", metavar="TICKET", help="ticket label, e.g. A-005")
    reprint.add_argument(
        "--counter",
        type=int,
        required=True,
        metavar="N",
        help="counter number that asks for the reprint",
    )
    reprint.set_defaults(handler=cmd_reprint)


def cmd_appointments_import(
    args: argparse.Namespace, site: Site, data_dir: Path
) -> int:
    """Import an appointments file into the office database."""
    store = Store(data_dir / DATABASE_NAME)
    try:
        summary = import_appointments(args.file, site, store, datetime.now(UTC))
    finally:
        store.close()
    days = ", ".join(summary.days)
    print(
        f"Imported {summary.added + summary.replaced} appointments "
        f"({summary.added} new, {summary.replaced} replaced) for {days}."
    )
    return 0


def cmd_print_test(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Print a sample ticket and report the printer status before and after."""
    # Loaded here: python-escpos is slow to import and no other command needs it.
    from kiosk.printing import UNUSABLE, TicketPrinter

    kiosk = _kiosk(site, args.device)
    printer = kiosk.printer
    if args.printer:
        printer = dataclasses.replace(printer, spec=args.printer)
    if args.width:
        printer = dataclasses.replace(printer, width_mm=args.width)
    target = TicketPrinter(site, dataclasses.replace(kiosk, printer=printer), data_dir)
    try:
        before, error = target.status()
        print(f"Printer {target.spec} is {before.value}.")
        if before in UNUSABLE:
            raise PrintTestError(_failure(target.spec, error, before.value))
        result = target.print_ticket(sample_ticket(site), check_first=False)
    finally:
        target.close()
    if not result.printed:
        raise PrintTestError(_failure(target.spec, result.error, result.status.value))
    print(f"Printed a test ticket; the printer is {result.status.value}.")
    return 0


def _failure(spec: str, error: str, status: str) -> str:
    detail = error.rstrip(".") if error else f"the printer reports {status}"
    return f"The test ticket did not print on {spec}: {detail}."


def _kiosk(site: Site, device: str | None) -> Kiosk:
    if device:
        kiosk = site.kiosk(device)
    elif site.kiosks:
        kiosk = site.kiosks[0]
    else:
        kiosk = None
    if kiosk is None:
        known = ", ".join(k.id for k in site.kiosks) or "none"
        raise PrintTestError(
            f"Kiosk {device!r} is not in the site file; use one of: {known}."
        )
    return kiosk


def sample_ticket(site: Site) -> TicketView:
    """Return a made-up ticket of the site's first service, issued now."""
    service = site.services[0]
    return TicketView(
        id=f"print-test-{datetime.now(UTC):%Y%m%d%H%M%S}",
        label=f"{service.code}-000",
        service=service.code,
        lane=Lane.NORMAL,
        status=TicketStatus.WAITING,
        issued_at=datetime.now(UTC),
        people_ahead=3,
        estimate=WaitRange(minutes=20, low=15, high=25),
    )


def cmd_reprint(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Send REPRINT for a ticket on behalf of a counter."""
    # Imported here because broker.cli imports this module.
    from broker.cli import _send

    command = Command(
        CommandKind.REPRINT,
        new_command_id("cli"),
        ticket=args.ticket.upper(),
        counter=args.counter,
    )
    return _send(site, data_dir, command)
