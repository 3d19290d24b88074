"""Command payloads for fault runs: a mix of valid commands and the hostile bytes
that a broken or malicious client could publish on a command topic."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator

from broker import contract
from broker.contract import Command, CommandKind, ContractError

SERVICES = ("A", "B", "C", "D")
CATEGORIES = ("lansia", "ibu_hamil", "disabilitas", "balita")
COUNTERS = (1, 2, 3, 4)
# Counter actions the traffic sends, with their weights: mostly calls.
COUNTER_ACTIONS = (
    (CommandKind.NEXT, 6),
    (CommandKind.RECALL, 1),
    (CommandKind.NO_SHOW, 1),
    (CommandKind.FINISH, 2),
)

# JSON values that break one expectation or another of a field.
_ODD_VALUES: tuple[object, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1000,
    2**63,
    1.5,
    float("inf"),
    "",
    " ",
    "a" * 200,
    "A-0001",
    "a\u0000b",
    "line\nbreak",
    "\ud800",
    "\u202eA",
    [],
    {},
    ["A"],
    {"type": "next"},
)


def ticket_request(rng: random.Random, command_id: str) -> Command:
    """Return an issue_ticket command for a random service, sometimes priority."""
    category = rng.choice(CATEGORIES) if rng.random() < 0.2 else None
    return Command(
        CommandKind.ISSUE_TICKET,
        command_id,
        service=rng.choice(SERVICES),
        category=category,
    )


def counter_action(rng: random.Random, command_id: str, counter: int) -> Command:
    """Return a weighted-random counter action for one counter."""
    kinds = [kind for kind, _ in COUNTER_ACTIONS]
    weights = [weight for _, weight in COUNTER_ACTIONS]
    kind = rng.choices(kinds, weights)[0]
    return Command(kind, command_id, counter=counter)


def valid_payload(rng: random.Random, number: int) -> bytes:
    """Return the encoding of a random valid command with a fresh id."""
    command_id = f"fuzz-{number}"
    if rng.random() < 0.5:
        return contract.encode(ticket_request(rng, command_id))
    return contract.encode(counter_action(rng, command_id, rng.choice(COUNTERS)))


def _truncated(rng: random.Random, payload: bytes) -> bytes:
    return payload[: rng.randrange(len(payload))]


def _random_bytes(rng: random.Random, payload: bytes) -> bytes:
    return rng.randbytes(rng.randrange(0, 300))


def _flipped_byte(rng: random.Random, payload: bytes) -> bytes:
    data = bytearray(payload)
    data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _odd_field(rng: random.Random, payload: bytes) -> bytes:
    data = json.loads(payload)
    name = rng.choice([*data, "service", "counter", "reason", "extra"])
    data[name] = rng.choice(_ODD_VALUES)
    # ensure_ascii keeps a lone surrogate as its \\ud800 escape, which JSON allows.
    return json.dumps(data).encode()


def _missing_field(rng: random.Random, payload: bytes) -> bytes:
    data = json.loads(payload)
    del data[rng.choice(list(data))]
    return json.dumps(data).encode()


def _duplicate_key(rng: random.Random, payload: bytes) -> bytes:
    # A second "type" after the real one; a lenient parser keeps the last.
    return payload[:-1] + b',"type":"cancel"}'


def _not_an_object(rng: random.Random, payload: bytes) -> bytes:
    return json.dumps(rng.choice([[json.loads(payload)], "next", 7, None])).encode()


def _deep_nesting(rng: random.Random, payload: bytes) -> bytes:
    depth = rng.randrange(1000, 7000)
    return b'{"id":"x","type":"next","counter":' + b"[" * depth + b"]" * depth + b"}"


def _huge_number(rng: random.Random, payload: bytes) -> bytes:
    digits = "9" * rng.randrange(20, 6000)
    return f'{{"id":"x","type":"next","counter":{digits}}}'.encode()


def _bad_utf8(rng: random.Random, payload: bytes) -> bytes:
    return payload[:-2] + b'\xff\xfe"}'


MUTATIONS: tuple[Callable[[random.Random, bytes], bytes], ...] = (
    _truncated,
    _random_bytes,
    _flipped_byte,
    _odd_field,
    _odd_field,
    _missing_field,
    _duplicate_key,
    _not_an_object,
    _deep_nesting,
    _huge_number,
    _bad_utf8,
)


def is_valid(payload: bytes) -> bool:
    """Tell whether the contract's decoder accepts a payload."""
    try:
        contract.decode_command(payload)
    except ContractError:
        return False
    return True


def invalid_payloads(rng: random.Random, count: int) -> Iterator[bytes]:
    """Yield `count` payloads the decoder rejects, each a mutation of a valid one.

    A mutation that happens to stay valid (a truncation to nothing cannot, a
    flipped byte inside a string can) is skipped, so every payload yielded must
    get an error reply and change nothing.
    """
    made = 0
    number = 0
    while made < count:
        number += 1
        mutate = rng.choice(MUTATIONS)
        payload = mutate(rng, valid_payload(rng, number))
        if is_valid(payload):
            continue
        made += 1
        yield payload
