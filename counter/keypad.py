"""The counter terminal's actions and the USB numeric keypad keys that trigger them.

Kivy keycodes become keypad symbols first ("0".."9", ".", "+", "-", "*", "/",
"enter"), so the keypad's keys and the same keys of a full keyboard act alike.
What a symbol does depends on the screen: the work screen maps it to an
action, a list of choices uses digits to pick and Enter to confirm.
"""

from __future__ import annotations

from enum import StrEnum

from broker.contract import CommandKind


class Action(StrEnum):
    """Everything an officer can do from the work screen."""

    NEXT = "next"
    RECALL = "recall"
    NO_SHOW = "no_show"
    START = "start"
    FINISH = "finish"
    CALL = "call"
    TRANSFER = "transfer"
    PAUSE = "pause"
    REPRINT = "reprint"
    LOGOUT = "logout"


# Actions that send their command at once; the others open a list of choices first.
DIRECT_COMMANDS: dict[Action, CommandKind] = {
    Action.NEXT: CommandKind.NEXT,
    Action.RECALL: CommandKind.RECALL,
    Action.NO_SHOW: CommandKind.NO_SHOW,
    Action.START: CommandKind.START,
    Action.FINISH: CommandKind.FINISH,
}

# Kivy keycodes (as Window.on_key_down passes them) and the symbol each types.
KEY_SYMBOLS: dict[int, str] = {
    13: "enter",
    271: "enter",
    43: "+",
    270: "+",
    45: "-",
    269: "-",
    42: "*",
    268: "*",
    47: "/",
    267: "/",
    46: ".",
    266: ".",
    8: "backspace",
    27: "escape",
    **{48 + digit: str(digit) for digit in range(10)},
    **{256 + digit: str(digit) for digit in range(10)},
}

# The work screen's keymap. README.md lists the same keys for officers.
WORK_KEYS: dict[str, Action] = {
    "enter": Action.NEXT,
    "+": Action.NEXT,
    ".": Action.RECALL,
    "-": Action.NO_SHOW,
    "0": Action.START,
    "*": Action.FINISH,
    "1": Action.CALL,
    "/": Action.TRANSFER,
    "2": Action.PAUSE,
    "3": Action.REPRINT,
    "9": Action.LOGOUT,
}

# Button titles, Indonesian first and English beneath.
ACTION_TITLES: dict[Action, tuple[str, str]] = {
    Action.NEXT: ("Panggil Berikutnya", "Next"),
    Action.RECALL: ("Panggil Ulang", "Recall"),
    Action.NO_SHOW: ("Tidak Hadir", "No-show"),
    Action.START: ("Mulai Layani", "Start service"),
    Action.FINISH: ("Selesai", "Finish"),
    Action.CALL: ("Panggil Nomor", "Call a ticket"),
    Action.TRANSFER: ("Alihkan", "Transfer"),
    Action.PAUSE: ("Jeda", "Pause"),
    Action.REPRINT: ("Cetak Ulang", "Reprint"),
    Action.LOGOUT: ("Keluar", "Log out"),
}

# Indonesian names of the symbols, as printed under each button.
SYMBOL_NAMES: dict[str, str] = {
    "enter": "Enter",
    "+": "+",
    ".": ".  (titik)",
    "-": "-  (minus)",
    "*": "*  (bintang)",
    "/": "/  (garis miring)",
}


def key_symbol(key: int) -> str | None:
    """Return the keypad symbol of a Kivy keycode, or None for other keys."""
    return KEY_SYMBOLS.get(key)


def action_for_symbol(symbol: str) -> Action | None:
    """Return the work screen's action for a keypad symbol, or None."""
    return WORK_KEYS.get(symbol)


def parse_action(action: str | Action) -> Action:
    """Return the Action named by an Action or its value.

    Raises ValueError naming the accepted actions for anything else.
    """
    try:
        return Action(action)
    except ValueError as exc:
        names = ", ".join(item.value for item in Action)
        raise ValueError(
            f"{action!r} is not a counter action. Use one of {names}"
        ) from exc


def key_names(action: Action) -> str:
    """Return the keys of an action as shown under its button, e.g. "Enter  /  +"."""
    symbols = [symbol for symbol, mapped in WORK_KEYS.items() if mapped is action]
    return "  /  ".join(SYMBOL_NAMES.get(symbol, symbol) for symbol in symbols)
