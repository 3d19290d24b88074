"""Spoken calls: Indonesian sentences, WAV files from the real espeak-ng, and
playback in order through Kivy's audio (SDL's dummy driver in tests)."""

from __future__ import annotations

import shutil
import wave
from datetime import UTC, datetime
from pathlib import Path

import pytest
from display_support import pump

from broker.contract import CallEvent, TicketStatus, TicketView
from broker.site import Lane
from display.announcer import (
    CHIME_FILE,
    MAX_QUEUED,
    Announcer,
    Outcome,
    call_sentence,
    spoken_label,
    write_chime,
)

NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
# Long enough for a chime and a sentence of about four seconds, twice over.
PLAYBACK_S = 40.0

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed"
)


def make_call(seq: int, label: str, counter: int, recall: bool = False) -> CallEvent:
    ticket = TicketView(
        f"t-{label}", label, label[0], Lane.NORMAL, TicketStatus.CALLED, NOW
    )
    return CallEvent(seq, NOW, ticket, counter, f"Loket {counter}", recall)


def wav_frames(path: Path) -> int:
    with wave.open(str(path), "rb") as audio:
        return audio.getnframes()


# Sentences -------------------------------------------------------------------


def test_label_spoken_in_indonesian() -> None:
    assert spoken_label("A-014") == "A, empat belas"
    assert spoken_label("C-100") == "C, seratus"
    assert spoken_label("B-001") == "B, satu"
    assert spoken_label("odd") == "odd"


def test_call_sentence_and_recall() -> None:
    assert call_sentence(make_call(1, "A-014", 3)) == (
        "Nomor antrean, A, empat belas. Silakan menuju loket, tiga."
    )
    assert call_sentence(make_call(2, "D-011", 4, recall=True)) == (
        "Panggilan ulang. Nomor antrean, D, sebelas. Silakan menuju loket, empat."
    )


def test_chime_is_a_wav(tmp_path: Path) -> None:
    path = write_chime(tmp_path / "chime.wav")

    with wave.open(str(path), "rb") as audio:
        assert audio.getnchannels() == 1
        assert audio.getsampwidth() == 2
        seconds = audio.getnframes() / audio.getframerate()
    assert 1.0 < seconds < 1.3


# Playback ---------------------------------------------------------------------


@needs_espeak
def test_two_calls_spoken_in_order(tmp_path: Path) -> None:
    announcer = Announcer(tmp_path)
    try:
        assert not announcer.silent, announcer.silent_reason
        first = announcer.announce(make_call(10, "A-014", 3))
        second = announcer.announce(make_call(11, "B-002", 2))

        assert [item.seq for item in announcer.queue] == [10, 11]
        assert pump(lambda: announcer.playing is not None)
        assert announcer.playing.seq == 10
        assert pump(lambda: len(announcer.history) == 2, timeout=PLAYBACK_S)

        assert [item.seq for item in announcer.history] == [10, 11]
        assert [item.outcome for item in announcer.history] == [Outcome.PLAYED] * 2
        assert [item.text for item in announcer.history] == [first.text, second.text]
        wavs = [item.wav for item in announcer.history]
        assert wavs[0] != wavs[1]
        assert all(wav_frames(wav) > 10_000 for wav in wavs)
        assert wav_frames(tmp_path / CHIME_FILE) > 0
        assert announcer.queue == []
    finally:
        announcer.stop()


@needs_espeak
def test_recall_speaks_again_from_cache(tmp_path: Path) -> None:
    announcer = Announcer(tmp_path)
    try:
        announcer.announce(make_call(1, "C-007", 4))
        announcer.announce(make_call(2, "C-007", 4))
        announcer.announce(make_call(3, "C-007", 4, recall=True))
        assert pump(lambda: len(announcer.history) == 3, timeout=PLAYBACK_S * 2)

        history = list(announcer.history)
        assert [item.outcome for item in history] == [Outcome.PLAYED] * 3
        # The same sentence is rendered once and its file reused.
        assert history[0].wav == history[1].wav
        assert history[2].text.startswith("Panggilan ulang.")
        assert history[2].wav != history[0].wav
    finally:
        announcer.stop()


@needs_espeak
def test_queue_bounded(tmp_path: Path) -> None:
    announcer = Announcer(tmp_path)
    try:
        for seq in range(MAX_QUEUED + 3):
            announcer.announce(make_call(seq, f"A-{seq + 1:03d}", 1))

        dropped = [i.seq for i in announcer.history if i.outcome is Outcome.DROPPED]
        assert len(announcer.queue) == MAX_QUEUED
        # Nothing has been rendered yet, so the oldest calls are dropped first.
        assert dropped == [0, 1, 2]
        assert [item.seq for item in announcer.queue][0] == 3
    finally:
        announcer.stop()


def test_silent_without_espeak(tmp_path: Path) -> None:
    announcer = Announcer(tmp_path, espeak=str(tmp_path / "no-espeak-ng"))

    item = announcer.announce(make_call(1, "A-001", 1))

    assert announcer.silent
    assert "espeak-ng is not installed" in announcer.silent_reason
    assert item.text.startswith("Nomor antrean, A, satu.")
    assert [i.outcome for i in announcer.history] == [Outcome.SILENT]
    assert announcer.queue == []
    assert list(tmp_path.glob("*.wav")) == []


@needs_espeak
def test_silent_without_sound_device(tmp_path: Path) -> None:
    announcer = Announcer(tmp_path, load_sound=lambda path: None)

    announcer.announce(make_call(1, "A-001", 1))
    announcer.announce(make_call(2, "A-002", 1))

    assert announcer.silent
    assert "no sound device" in announcer.silent_reason
    assert [i.outcome for i in announcer.history] == [Outcome.SILENT] * 2
    announcer.stop()


@needs_espeak
def test_render_failure_skips_to_next(tmp_path: Path) -> None:
    # A program that exits with an error plays a broken espeak-ng.
    broken = tmp_path / "espeak-ng"
    broken.write_text("#!/bin/sh\nexit 3\n")
    broken.chmod(0o755)
    announcer = Announcer(tmp_path / "cache", espeak=str(broken))
    try:
        announcer.announce(make_call(1, "A-001", 1))
        assert pump(lambda: len(announcer.history) == 1)

        assert announcer.history[0].outcome is Outcome.FAILED
        assert not announcer.silent
        assert announcer.playing is None
    finally:
        announcer.stop()
