"""A numbered list of choices driven by keypad digits: pick, confirm or cancel.

Transfer targets, tickets to call or reprint, pause reasons and the logout
question are all shown this way, so every action works from a numeric keypad.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from kivy.event import EventDispatcher
from kivy.properties import (
    BooleanProperty,
    ListProperty,
    NumericProperty,
    StringProperty,
)

_LOGGER = logging.getLogger(__name__)

PAGE_SIZE = 9


@dataclass(frozen=True)
class Choice:
    """One entry of a list: its text, a second line, and the value it stands for."""

    text: str
    detail: str
    value: Any


class Chooser(EventDispatcher):
    """The open list of choices of one action, or none (open is False).

    Keys: a digit 1-9 picks an entry of the page shown, Enter confirms the
    picked entry (or the only one), "+" turns the page, and "-", Escape or
    Backspace close the list without doing anything.
    """

    open = BooleanProperty(False)
    action = StringProperty("")
    title = StringProperty("")
    subtitle = StringProperty("")
    # The page shown, as dicts for the view: number, text, detail, picked.
    rows = ListProperty([])
    page = NumericProperty(0)
    pages = NumericProperty(1)
    picked = NumericProperty(-1)
    empty_text = StringProperty("")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._choices: list[Choice] = []

    def show(
        self,
        action: str,
        title: str,
        subtitle: str,
        choices: list[Choice],
        empty_text: str = "",
    ) -> None:
        """Open the list for an action; a single choice is picked already."""
        self._choices = list(choices)
        self.action = action
        self.title = title
        self.subtitle = subtitle
        self.empty_text = empty_text
        self.page = 0
        self.pages = max(1, -(-len(choices) // PAGE_SIZE))
        self.picked = 0 if len(choices) == 1 else -1
        self._refresh()
        self.open = True
        _LOGGER.debug("Opened the %s list with %d choices", action, len(choices))

    def close(self) -> None:
        """Close the list without a choice."""
        self.open = False
        self.action = ""
        self._choices = []
        self.rows = []

    def press(self, symbol: str) -> Any | None:
        """Apply a keypad symbol; return the picked value when Enter confirms it.

        Returns None for every other key, and also after a key that closes the
        list, so the caller checks `open` to tell the two apart.
        """
        if symbol in ("-", "escape", "backspace"):
            self.close()
        elif symbol == "+":
            self.turn_page()
        elif symbol == "enter":
            return self.confirm()
        elif symbol.isdigit() and symbol != "0":
            self.pick(int(symbol) - 1)
        return None

    def pick(self, index_on_page: int) -> None:
        """Pick an entry of the page shown; an index past its end is ignored."""
        index = self.page * PAGE_SIZE + index_on_page
        if 0 <= index_on_page < PAGE_SIZE and index < len(self._choices):
            self.picked = index
            self._refresh()

    def turn_page(self) -> None:
        """Show the next page, after the last one the first again."""
        self.page = (self.page + 1) % self.pages
        self._refresh()

    def confirm(self) -> Any | None:
        """Close the list and return the picked value, or None if none is picked."""
        if not 0 <= self.picked < len(self._choices):
            return None
        value = self._choices[self.picked].value
        self.close()
        return value

    def _refresh(self) -> None:
        start = self.page * PAGE_SIZE
        self.rows = [
            {
                "number": str(offset + 1),
                "text": choice.text,
                "detail": choice.detail,
                "picked": start + offset == self.picked,
            }
            for offset, choice in enumerate(self._choices[start : start + PAGE_SIZE])
        ]
