"""The graphics settings every antrean window is made with."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kivy.config import Config

from broker.rendering import configure_rendering


@pytest.fixture
def kivy_graphics() -> Iterator[None]:
    """Restore Kivy's multisampling setting, which configure_rendering changes."""
    before = Config.get("graphics", "multisamples")
    yield
    Config.set("graphics", "multisamples", before)


def test_rendering_turns_off_multisampling(
    kivy_graphics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LP_NUM_THREADS", raising=False)

    configure_rendering()

    assert Config.get("graphics", "multisamples") == "0"
    assert os.environ["LP_NUM_THREADS"] == "0"


def test_rendering_keeps_user_thread_count(
    kivy_graphics: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LP_NUM_THREADS", "2")

    configure_rendering()

    assert os.environ["LP_NUM_THREADS"] == "2"
