"""Run the long fault runs of docs/reliability.md and print what held.

Usage, from the repository root:

    .venv/bin/python -m tests.faults --kills 200 --restarts 20 --payloads 5000

Every run uses its own Mosquitto on a free loopback port and a temporary data
directory; nothing touches a running office.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.faults.fault_office import FaultOffice
from tests.faults.fault_runs import run_broker_restarts, run_kills, run_payload_burst


def build_parser() -> argparse.ArgumentParser:
    """Build the parser of the fault runner's options."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults",
        description="Kill the engine, restart Mosquitto and send hostile payloads "
        "against a throwaway office, then check the database against every reply.",
    )
    parser.add_argument(
        "--kills",
        type=int,
        default=0,
        metavar="N",
        help="engine SIGKILLs during traffic",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=0,
        metavar="N",
        help="Mosquitto restarts during traffic",
    )
    parser.add_argument(
        "--broker-signal",
        choices=("term", "kill"),
        default="term",
        help="how Mosquitto is stopped: term saves its persistence file, kill does not",
    )
    parser.add_argument(
        "--payloads",
        type=int,
        default=0,
        metavar="N",
        help="invalid payloads to publish",
    )
    parser.add_argument(
        "--wave",
        type=int,
        default=500,
        metavar="N",
        help="send payloads in waves of N, each after the replies to the last; "
        "0 sends them all at once (default 500)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, metavar="S", help="random seed (default 1)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summaries as JSON"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="run in DIR and keep its logs and database",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress to stderr"
    )
    return parser


def _payload_run(directory: Path, payloads: int, seed: int, wave: int) -> Any:
    office = FaultOffice(directory)
    office.start()
    try:
        summary = run_payload_burst(
            office.site, office.data_dir, office.read, payloads, seed, wave
        )
        alive = office.engine_running
    finally:
        office.close()
    return {**dataclasses.asdict(summary), "engine_alive_after": alive}


def main(argv: list[str] | None = None) -> int:
    """Run the requested fault runs; exit 1 if any of them found a problem."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.kills or args.restarts or args.payloads):
        parser.error("give --kills, --restarts or --payloads a count above 0")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    with tempfile.TemporaryDirectory(prefix="antrean-faults-") as scratch:
        results = _run_all(args, args.keep or Path(scratch))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print("\n".join(_format(results)))
    return 1 if _failed(results) else 0


def _run_all(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    def progress(line: str) -> None:
        if args.verbose:
            print(line, file=sys.stderr)

    def directory(name: str) -> Path:
        path = base / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    results: dict[str, Any] = {}
    if args.kills:
        summary = run_kills(directory("kills"), args.kills, args.seed, progress)
        results["kills"] = dataclasses.asdict(summary)
    if args.restarts:
        how = signal.SIGKILL if args.broker_signal == "kill" else signal.SIGTERM
        summary = run_broker_restarts(
            directory("restarts"), args.restarts, args.seed, how, progress
        )
        results["restarts"] = dataclasses.asdict(summary)
    if args.payloads:
        results["payloads"] = _payload_run(
            directory("payloads"), args.payloads, args.seed, args.wave
        )
    return results


def _failed(results: dict[str, Any]) -> bool:
    for name in ("kills", "restarts"):
        run = results.get(name)
        if run and (
            run["traffic"]["problems"]
            or run["traffic"]["commands"] != run["traffic"]["answered"]
        ):
            return True
    if results.get("kills", {}).get("lost_after_kill"):
        return True
    if results.get("restarts", {}).get("stale_after_restart"):
        return True
    payloads = results.get("payloads")
    return bool(
        payloads
        and (
            payloads["changed_tables"]
            or payloads["unanswered"]
            or not payloads["engine_alive_after"]
        )
    )


_KILL_LINES = (
    "Engine SIGKILLs: {kills} in {seconds:.0f} s (seed {seed})",
    "  restart to online: median {restart_median_s:.2f} s, max {restart_max_s:.2f} s",
    "  commands answered before a kill and missing after it: {lost_after_kill}",
)
_RESTART_LINES = (
    "Mosquitto restarts ({how}): {restarts} in {seconds:.0f} s (seed {seed})",
    "  {clients} clients connected and subscribed again, after the broker listened:",
    "    median {reconnect_median_s:.2f} s, max {reconnect_max_s:.2f} s",
    "  engine back (its first new state at the display), after the broker listened:",
    "    median {engine_back_median_s:.2f} s, max {engine_back_max_s:.2f} s",
    "  restarts after which the display got no fresh state: {stale_after_restart}",
)
_PAYLOAD_LINES = (
    "Invalid payloads: {payloads} in {seconds:.1f} s, waves of {wave} (seed {seed})",
    "  error replies {invalid_replies}, other replies {other_replies},"
    " unanswered {unanswered}",
    "  tables changed: {changed}; engine alive after: {engine_alive_after}",
)


def _format(results: dict[str, Any]) -> list[str]:
    lines = []
    if "kills" in results:
        run = results["kills"]
        lines += [line.format(**run) for line in _KILL_LINES]
        lines += _traffic_lines(run["traffic"])
    if "restarts" in results:
        run = results["restarts"]
        lines += [line.format(**run) for line in _RESTART_LINES]
        lines += _traffic_lines(run["traffic"])
    if "payloads" in results:
        run = results["payloads"]
        changed = ", ".join(run["changed_tables"]) or "none"
        lines += [line.format(changed=changed, **run) for line in _PAYLOAD_LINES]
        lines += [
            f"    {count:5d}  {reason}" for reason, count in run["errors"].items()
        ]
    return lines


def _traffic_lines(traffic: dict[str, Any]) -> list[str]:
    lines = [
        f"  commands {traffic['commands']}, replied to {traffic['answered']}, "
        f"tickets issued {traffic['tickets']}",
        f"  resent by the client library {traffic['resent']}, sent again by the "
        f"sender after the client gave up {traffic['retried']}",
        f"  problems found in the database: {len(traffic['problems'])}",
    ]
    return lines + [f"    {problem}" for problem in traffic["problems"][:20]]


if __name__ == "__main__":
    sys.exit(main())
