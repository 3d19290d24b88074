"""The `antrean` command: run an office, or act on a running one from a shell.

Each subcommand is a thin layer over the library; expected failures (a wrong
site file, an unreachable broker) print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from broker import backup_cli, bench_cli, contract, officers_cli
from broker.client import OfficeClient, OfficeUnavailable, new_command_id
from broker.contract import Command, CommandKind, OfficeState, Reply, Role
from broker.errors import AntreanError
from broker.kiosk_cli import add_parsers as add_kiosk_parsers
from broker.mosquitto import ensure_broker, is_listening, write_config
from broker.security import CREDENTIALS_DIR, generate_credentials
from broker.tls import create_certificates
from broker.service import EngineService
from broker.site import Site, bundled_site_path, load_site

_LOGGER = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
EXIT_FAILED = 1
EXIT_USAGE = 2


class CliError(AntreanError):
    """A command-line request that cannot be carried out."""


def default_data_dir(site: Site) -> Path:
    """Return the per-user data directory of a site (XDG data home)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "antrean" / site.id


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser of every subcommand."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--site",
        type=Path,
        help=f"site file (TOML); default: the bundled {bundled_site_path().name}",
    )
    common.add_argument(
        "--data-dir",
        type=Path,
        help="directory for the database, broker files and printed tickets; default: ~/.local/share/antrean/SITE",
    )
    common.add_argument(
        "-v", "--verbose", action="store_true", help="log debug detail to stderr"
    )

    parser = argparse.ArgumentParser(
        prog="antrean",
        description="Queue management for a government office waiting room.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        parents=[common],
        help="start the broker, the engine and one kiosk, counter and display window",
    )
    up.add_argument(
        "--headless",
        action="store_true",
        help="start only the broker and the engine, until interrupted",
    )
    up.set_defaults(handler=cmd_up)

    ticket = commands.add_parser(
        "ticket", parents=[common], help="issue a ticket, as a kiosk would"
    )
    ticket.add_argument(
        "service", metavar="SERVICE", help="service code letter, e.g. A"
    )
    ticket.add_argument(
        "--priority",
        metavar="CATEGORY",
        help="priority category key (e.g. lansia) for the priority lane",
    )
    ticket.set_defaults(handler=cmd_ticket)

    for kind, text in (
        (CommandKind.NEXT, "call the next ticket to a counter"),
        (CommandKind.RECALL, "call a counter's current ticket again"),
        (CommandKind.NO_SHOW, "mark a counter's current ticket as not present"),
        (CommandKind.FINISH, "finish a counter's current ticket"),
    ):
        name = kind.value.replace("_", "-")
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("counter", metavar="COUNTER", type=int, help="counter number")
        sub.set_defaults(handler=cmd_counter_action, kind=kind)

    transfer = commands.add_parser(
        "transfer",
        parents=[common],
        help="send a counter's current ticket to another service or counter",
    )
    transfer.add_argument("counter", metavar="COUNTER", type=int, help="counter number")
    transfer.add_argument(
        "--service", metavar="CODE", help="service the ticket moves to"
    )
    transfer.add_argument(
        "--to-counter", metavar="N", type=int, help="counter that must take the ticket"
    )
    transfer.set_defaults(handler=cmd_transfer)

    for kind, name, text in (
        (CommandKind.OPEN_COUNTER, "open", "open a counter: it takes tickets"),
        (CommandKind.PAUSE_COUNTER, "pause", "pause a counter, e.g. for a break"),
        (CommandKind.CLOSE_COUNTER, "close", "close a counter for the rest of the day"),
    ):
        sub = commands.add_parser(name, parents=[common], help=text)
        sub.add_argument("counter", metavar="COUNTER", type=int, help="counter number")
        if kind is not CommandKind.OPEN_COUNTER:
            sub.add_argument(
                "--reason",
                metavar="TEXT",
                help="why, shown to staff (up to 120 characters)",
            )
        sub.set_defaults(handler=cmd_availability, kind=kind)

    simulate = commands.add_parser(
        "simulate",
        parents=[common],
        help="simulate office days of the site through the real engine and score its wait estimates",
    )
    simulate.add_argument(
        "--days",
        type=int,
        default=1,
        metavar="N",
        help="opening days to simulate (default 1)",
    )
    simulate.add_argument(
        "--seed", type=int, default=1, metavar="S", help="random seed (default 1)"
    )
    simulate.add_argument(
        "--json", action="store_true", help="print the summary as JSON"
    )
    simulate.set_defaults(handler=cmd_simulate)

    export = commands.add_parser(
        "export",
        parents=[common],
        help="write one day's visits from the database as CSV",
    )
    export.add_argument(
        "--day",
        required=True,
        metavar="D",
        help="the day, as YYYY-MM-DD in the site's zone",
    )
    export.add_argument(
        "--output", type=Path, metavar="FILE", help="CSV file to write; default: stdout"
    )
    export.set_defaults(handler=cmd_export)

    backup_cli.add_parsers(commands, common)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="replay a day log through a fresh engine and score its wait estimates",
    )
    replay.add_argument("log", metavar="LOG.csv", type=Path, help="day log (CSV)")
    replay.add_argument(
        "--format",
        choices=("auto", "export", "clinic"),
        default="auto",
        help="log format: an `antrean export` file or a clinic export; default: from the header",
    )
    replay.add_argument("--json", action="store_true", help="print the summary as JSON")
    replay.set_defaults(handler=cmd_replay)

    broker = commands.add_parser(
        "broker",
        parents=[common],
        help="make the broker's logins and TLS certificate",
    )
    broker_tasks = broker.add_subparsers(
        dest="task", required=True, metavar="TASK", help="credentials or tls"
    )
    credentials = broker_tasks.add_parser(
        "credentials",
        parents=[common],
        help="write a login for every device of the site into DATA_DIR/credentials",
    )
    credentials.add_argument(
        "--rotate",
        action="store_true",
        help="replace every existing password too",
    )
    credentials.set_defaults(handler=cmd_broker_credentials)
    tls = broker_tasks.add_parser(
        "tls",
        parents=[common],
        help="create a local CA and the certificate of the TLS listener",
    )
    tls.add_argument(
        "--renew", action="store_true", help="replace the CA as well as the certificate"
    )
    tls.set_defaults(handler=cmd_broker_tls)

    officers_cli.add_parsers(commands, common)

    bench_cli.add_parsers(commands)

    add_kiosk_parsers(commands, common)

    status = commands.add_parser(
        "status", parents=[common], help="show who waits and who is being served"
    )
    status.add_argument(
        "--json", action="store_true", help="print the office state as JSON"
    )
    status.set_defaults(handler=cmd_status)

    for role, text in (
        ("kiosk", "run the kiosk app against a running office"),
        ("counter", "run the counter app against a running office"),
        ("display", "run the hall display app against a running office"),
    ):
        app = commands.add_parser(role, parents=[common], help=text)
        app.add_argument(
            "--device",
            metavar="ID",
            help="kiosk id, counter number or display id from the site file; default: the first (the counter app asks)",
        )
        app.add_argument(
            "--windowed",
            action="store_true",
            help="open a window instead of going full screen",
        )
        app.add_argument(
            "--size",
            metavar="WxH",
            type=_size,
            help="window size in pixels, e.g. 1920x1080 (implies --windowed)",
        )
        app.set_defaults(handler=cmd_app, app=role)
    return parser


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a size; write it as WIDTHxHEIGHT, e.g. 1920x1080"
        ) from exc
    if not (200 <= width <= 8000 and 200 <= height <= 8000):
        raise argparse.ArgumentTypeError(
            f"{text!r} is out of range; use 200 to 8000 pixels per side"
        )
    return width, height


def main(argv: Sequence[str] | None = None) -> int:
    """Run the antrean command line and return its exit code."""
    args = build_parser().parse_args(argv)
    # Long-running commands log their lifecycle; one-shot clients only problems.
    quiet = args.command not in ("up", "kiosk", "counter", "display")
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose
        else logging.WARNING
        if quiet
        else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        site = load_site(args.site)
        data_dir = args.data_dir or default_data_dir(site)
        handler: Callable[[argparse.Namespace, Site, Path], int] = args.handler
        return handler(args, site, data_dir)
    except AntreanError as exc:
        print(f"antrean: error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, CliError) else EXIT_FAILED
    except BrokenPipeError:
        # The reader of our output went away (`antrean status | head`).
        sys.stderr.close()
        return EXIT_FAILED
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(f"antrean: error:{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


# Running an office -----------------------------------------------------------


def cmd_up(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Start the broker and the engine, and the three apps unless headless."""
    # Handlers first, so a stop request during start-up still cleans up.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    data_dir.mkdir(parents=True, exist_ok=True)
    mosquitto = ensure_broker(site, data_dir)
    service: EngineService | None = None
    children: list[subprocess.Popen[bytes]] = []
    try:
        service = EngineService(site, data_dir)
        service.start()
        if not service.wait_connected(CONNECT_TIMEOUT_S * 2):
            raise CliError(
                f"The engine could not connect to the broker at {site.broker.host}:{site.broker.port}."
            )
        _LOGGER.info(
            "Office %s is running; data in %s. Press Ctrl+C to stop.",
            site.name,
            data_dir,
        )
        if not args.headless:
            children = [
                _spawn_app(role, args, data_dir)
                for role in ("display", "counter", "kiosk")
            ]
        while not stop.wait(0.5):
            if children and all(child.poll() is not None for child in children):
                _LOGGER.info("Every window is closed; stopping the office")
                break
    finally:
        for child in children:
            _stop_child(child)
        if service is not None:
            service.stop()
        if mosquitto is not None:
            mosquitto.stop()
    return 0


def _spawn_app(
    role: str, args: argparse.Namespace, data_dir: Path
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "broker",
        role,
        "--windowed",
        "--data-dir",
        str(data_dir),
    ]
    if args.site:
        command += ["--site", str(args.site)]
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    _LOGGER.info("Started the %s window (pid %d)", role, process.pid)
    return process


def _stop_child(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cmd_app(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Run one Kivy app (kiosk, counter or display) against a running office."""
    # Kivy reads these at import time; its own argument parser must not see ours,
    # and its console handler would print every record a second time.
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "1")
    fullscreen = not (args.windowed or args.size)
    if args.app == "kiosk":
        from kiosk.app import run
    elif args.app == "counter":
        from counter.app import run
    else:
        from display.app import run
    run(site, data_dir, args.device, fullscreen, args.size)
    return 0


# Thin clients --------------------------------------------------------------------


def _connect(site: Site, data_dir: Path, **callbacks: Callable[..., None]) -> OfficeClient:
    unreachable = OfficeUnavailable(
        f"Cannot reach the office broker at {site.broker.host}:{site.broker.port}. "
        "Start the office with `antrean up` first."
    )
    if not is_listening(site.broker):
        raise unreachable
    client = OfficeClient(
        site, Role.OPERATOR, f"cli-{os.getpid()}", data_dir=data_dir, **callbacks
    )
    client.start()
    if not client.wait_connected(CONNECT_TIMEOUT_S):
        client.stop()
        if client.refusal:
            raise OfficeUnavailable(
                f"The broker at {site.broker.host}:{site.broker.port} rejected the "
                f"operator login ({client.refusal}). Pass the office's --data-dir, "
                "whose credentials folder holds that login."
            )
        raise unreachable
    return client


def _send(site: Site, data_dir: Path, command: Command) -> int:
    client = _connect(site, data_dir)
    try:
        reply = client.request(command)
    finally:
        client.stop()
    return _report(reply)


def _report(reply: Reply) -> int:
    if not reply.ok:
        print(f"antrean: {reply.message}", file=sys.stderr)
        return EXIT_FAILED
    ticket = reply.ticket
    if ticket is None:
        print(reply.message)
        return 0
    lane = f" [PRIORITAS: {ticket.category}]" if ticket.category else ""
    print(f"{ticket.label}{lane}: {reply.message}")
    if ticket.status is contract.TicketStatus.WAITING and ticket.counter is None:
        print(f"  people ahead: {ticket.people_ahead}")
        if ticket.estimate is not None:
            low, high = ticket.estimate.low, ticket.estimate.high
            print(f"  estimated wait: {low}–{high} min")
    return 0


def cmd_ticket(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Issue a ticket for a service, optionally in the priority lane."""
    service = args.service.upper()
    command = Command(
        CommandKind.ISSUE_TICKET,
        new_command_id("cli"),
        service=service,
        category=args.priority,
    )
    return _send(site, data_dir, command)


def cmd_counter_action(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Send next, recall, no-show or finish for a counter."""
    return _send(site, data_dir, Command(args.kind, new_command_id("cli"), counter=args.counter))


def cmd_transfer(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Transfer a counter's current ticket."""
    if args.service is None and args.to_counter is None:
        raise CliError("transfer needs --service, --to-counter or both.")
    command = Command(
        CommandKind.TRANSFER,
        new_command_id("cli"),
        counter=args.counter,
        to_service=args.service.upper() if args.service else None,
        to_counter=args.to_counter,
    )
    return _send(site, data_dir, command)


def cmd_availability(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Open, pause or close a counter."""
    command = Command(
        args.kind,
        new_command_id("cli"),
        counter=args.counter,
        reason=getattr(args, "reason", None) or None,
    )
    return _send(site, data_dir, command)


def cmd_simulate(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Simulate office days and print the summary."""
    from tqdm import tqdm

    from broker.simulation import simulate

    if not 1 <= args.days <= 366:
        raise CliError(f"--days {args.days} is out of range; use 1 to 366.")
    day_minutes = (
        datetime.combine(date.min, site.hours.close)
        - datetime.combine(date.min, site.hours.open)
    ).total_seconds() / 60
    show = not args.json and sys.stderr.isatty()
    with tqdm(
        total=round(args.days * day_minutes),
        unit="min",
        desc="simulated",
        disable=not show,
        file=sys.stderr,
    ) as bar:
        summary = simulate(site, args.days, args.seed, bar.update)
    if args.json:
        print(json.dumps(_simulation_json(summary), indent=2))
    else:
        print("\n".join(_format_simulation(summary)))
    return 0


def _simulation_json(summary: Any) -> dict[str, Any]:
    data = dataclasses.asdict(summary)
    for counter, use in zip(data["counters"], summary.counters, strict=True):
        counter["utilisation"] = use.utilisation
    return data


def _format_simulation(summary: Any) -> list[str]:
    from broker.scoring import format_scores

    lines = [
        f"{summary.site}: {summary.days} simulated days, seed {summary.seed}",
        f"tickets {summary.tickets}, no-shows {summary.no_shows}, rejected {summary.rejected}",
        "",
        "Waits until the first call (minutes):",
    ]
    for waits in summary.waits:
        lines.append(
            f"  {waits.lane:<9} {waits.tickets:>5} tickets  p50 {waits.p50:5.1f}"
            f"  p90 {waits.p90:5.1f}  max {waits.max:5.1f}"
        )
    lines += ["", "Counter utilisation (busy / open minutes):"]
    for use in summary.counters:
        lines.append(
            f"  {use.number:>3}  {use.utilisation:5.0%}"
            f"  ({use.busy_minutes:.0f} / {use.open_minutes:.0f})"
        )
    lines += ["", "Wait estimates against actual waits (minutes):"]
    return lines + format_scores(summary.estimators)


def cmd_export(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Write one day's visits as CSV."""
    from broker.replay import export_day
    from broker.service import DATABASE_NAME
    from broker.store import Store

    try:
        day = date.fromisoformat(args.day).isoformat()
    except ValueError as exc:
        raise CliError(
            f"--day {args.day!r} is not a date; write it as YYYY-MM-DD."
        ) from exc
    path = data_dir / DATABASE_NAME
    if not path.exists():
        raise CliError(f"No database at {path}; pass the office's --data-dir.")
    store = Store(path)
    try:
        if args.output is None:
            rows = export_day(store, site, day, sys.stdout)
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                rows = export_day(store, site, day, out)
    finally:
        store.close()
    _LOGGER.info("Exported %d visits of %s", rows, day)
    return 0


def cmd_replay(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Replay a day log through a fresh engine and print the estimate scores."""
    from broker.clinic import is_clinic_header, read_clinic
    from broker.replay import iter_lines, read_log, replay
    from broker.scoring import format_scores

    lines = list(iter_lines(args.log))
    header = next(csv.reader(lines[:1]), [])
    clinic = args.format == "clinic" or (
        args.format == "auto" and is_clinic_header(header)
    )
    if clinic:
        site, visits = read_clinic(lines, str(args.log))
    else:
        visits = read_log(lines, str(args.log))
    summary = replay(site, visits)
    if args.json:
        print(json.dumps(dataclasses.asdict(summary), indent=2))
        return 0
    print(
        f"{args.log}: {summary.days} days, {summary.tickets} tickets called, "
        f"{summary.skipped_steps} steps skipped"
    )
    for waits in summary.waits:
        print(
            f"  {waits.lane:<9} p50 {waits.p50:5.1f}  p90 {waits.p90:5.1f}  max {waits.max:5.1f}"
        )
    print("\n".join(format_scores(summary.estimators)))
    return 0


def cmd_broker_credentials(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Write device logins and the broker's password file and ACL."""
    written = generate_credentials(site, data_dir, rotate=args.rotate)
    write_config(site, data_dir)
    folder = data_dir / CREDENTIALS_DIR
    if written:
        print(f"Wrote {len(written)} logins in {folder}: {', '.join(written)}")
    else:
        print(f"Every device already has a login in {folder}; --rotate replaces them.")
    print(
        "Give each machine only its own file. Restart the office "
        "(antrean up) so the broker reads the new password file."
    )
    return 0


def cmd_broker_tls(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Create the CA and the broker's server certificate."""
    directory = create_certificates(site, data_dir, renew=args.renew)
    print(f"Wrote the CA and the broker certificate in {directory}.")
    print(f"Copy {directory / 'ca.crt'} into DATA_DIR/tls/ on every client machine.")
    return 0


def cmd_status(args: argparse.Namespace, site: Site, data_dir: Path) -> int:
    """Print the retained office state."""
    received = threading.Event()
    states: list[OfficeState] = []

    def keep(state: OfficeState) -> None:
        states.append(state)
        received.set()

    client = _connect(site, data_dir, on_state=keep)
    try:
        if not received.wait(CONNECT_TIMEOUT_S):
            raise OfficeUnavailable(
                "The broker is up but no engine has published the office state. Is the engine running?"
            )
    finally:
        client.stop()
    state = states[-1]
    if args.json:
        print(contract.encode(state).decode())
    else:
        print(_format_state(site, state))
    return 0


def _format_state(site: Site, state: OfficeState) -> str:
    local = state.at.astimezone(site.timezone)
    lines = [f"{site.name} — {local:%Y-%m-%d %H:%M:%S %Z}", "", "Counters:"]
    for counter in state.counters:
        current = counter.current.label if counter.current else "-"
        why = f" ({counter.reason})" if counter.reason else ""
        lines.append(
            f"  {counter.number:>3}  {counter.name:<24} {counter.availability.value:<7}"
            f" {current}{why}"
        )
    lines += ["", "Waiting (normal / priority, issued of quota):"]
    for load in state.services:
        service = site.service(load.code)
        name = service.name_id if service else load.code
        lines.append(
            f"  {load.code}  {name:<26} {load.waiting_normal:>3} / {load.waiting_priority:<3} {load.issued:>4} of {load.quota}"
        )
    if state.recent_calls:
        lines += ["", "Last calls:"]
        for call in state.recent_calls:
            at = call.at.astimezone(site.timezone)
            again = " (again)" if call.recall else ""
            lines.append(
                f"  {at:%H:%M:%S}  {call.ticket.label} -> {call.counter_name}{again}"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
