"""Spoken calls for the hall display: a chime, then the call in Indonesian.

Each call becomes a sentence such as "Nomor antrean, A, empat belas. Silakan
menuju loket, tiga." with numbers read as Indonesian words (num2words), is
rendered offline by espeak-ng into a WAV file on a worker thread, and is
played with Kivy's SoundLoader after the ones before it, each to its end.
Without espeak-ng or a sound device the announcer stays silent, and the
display keeps running.
"""

from __future__ import annotations

import hashlib
import logging
import math
import shutil
import struct
import subprocess
import wave
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

from kivy.clock import Clock
from num2words import num2words

from broker.contract import CallEvent

_LOGGER = logging.getLogger(__name__)

VOICE = "id"
# Words per minute; espeak-ng's default is 175, slower is clearer for the
# elderly applicants of a passport office.
SPEECH_RATE = 140
RENDER_TIMEOUT_S = 15.0
# Calls waiting to be spoken; past this the oldest is dropped (it stays on screen).
# NOTE: one call takes about 7 s (a 1.2 s chime and a 6 s sentence at this rate,
# measured with espeak-ng 1.51), so a full queue is spoken about a minute late.
MAX_QUEUED = 10
# Rendered sentences kept on disk; the oldest files go first.
MAX_CACHED_FILES = 300
HISTORY_SIZE = 50
# A sound whose end is not reported this long after its length counts as ended.
END_MARGIN_S = 2.0
CHIME_FILE = "chime.wav"
CHIME_RATE = 22050
# Two falling tones, "ding-dong": frequency in Hz and length in seconds.
CHIME_TONES = ((784.0, 0.45), (622.0, 0.7))

SoundLoad = Callable[[str], Any]


class Outcome(StrEnum):
    """The outcome of an announcement."""

    WAITING = "waiting"
    PLAYED = "played"
    SILENT = "silent"  # no espeak-ng or no sound device
    FAILED = "failed"  # rendering or playing failed
    DROPPED = "dropped"  # pushed out of a full queue


@dataclass(frozen=True)
class Announcement:
    """One call to speak: its text, its rendered file, and what became of it."""

    seq: int
    label: str
    counter: int
    text: str
    wav: Path | None = None
    outcome: Outcome = Outcome.WAITING


def spoken_label(label: str) -> str:
    """Return a ticket label as spoken: "A-014" becomes "A, empat belas"."""
    letter, _, digits = label.partition("-")
    if not digits.isdigit():
        return label
    return f"{letter}, {num2words(int(digits), lang='id')}"


def call_sentence(call: CallEvent) -> str:
    """Return the Indonesian sentence that announces a call, or a call again."""
    number = num2words(call.counter, lang="id")
    sentence = (
        f"Nomor antrean, {spoken_label(call.ticket.label)}. "
        f"Silakan menuju loket, {number}."
    )
    return f"Panggilan ulang. {sentence}" if call.recall else sentence


def write_chime(path: Path) -> Path:
    """Write the chime as a 16-bit mono WAV file and return its path."""
    frames = bytearray()
    for frequency, seconds in CHIME_TONES:
        count = int(CHIME_RATE * seconds)
        for index in range(count):
            t = index / CHIME_RATE
            # A bell-like tone: a quick attack and an exponential decay.
            envelope = min(1.0, t / 0.01) * math.exp(-4.0 * t / seconds)
            sample = 0.5 * envelope * math.sin(2 * math.pi * frequency * t)
            frames += struct.pack("<h", int(sample * 32767))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(CHIME_RATE)
        out.writeframes(bytes(frames))
    return path


def _default_loader(path: str) -> Any:
    from kivy.core.audio import SoundLoader

    return SoundLoader.load(path)


class Announcer:
    """Speaks calls one after another; use it from Kivy's main thread.

    `queue` contains the announcements not yet spoken, in order, and
    `history` the latest ones finished with their outcome and WAV file.
    """

    def __init__(
        self,
        cache_dir: Path,
        espeak: str | None = None,
        load_sound: SoundLoad = _default_loader,
    ) -> None:
        self.cache_dir = cache_dir
        self.espeak = shutil.which(espeak or "espeak-ng")
        self.queue: list[Announcement] = []
        self.history: deque[Announcement] = deque(maxlen=HISTORY_SIZE)
        self.playing: Announcement | None = None
        self.silent_reason = ""
        self._load_sound = load_sound
        self._renderer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="speech")
        self._rendered: dict[int, Path | None] = {}
        self._sound: Any = None
        self._then: Callable[[], None] = self._play_next
        self._watchdog: Any = None
        self._stopped = False
        self._chime = self._prepare_chime()

    @property
    def silent(self) -> bool:
        """Whether the announcer cannot speak on this machine."""
        return bool(self.silent_reason)

    def announce(self, call: CallEvent) -> Announcement:
        """Queue a call to be spoken after the ones before it, and return it."""
        item = Announcement(
            call.seq, call.ticket.label, call.counter, call_sentence(call)
        )
        self.queue.append(item)
        if len(self.queue) > MAX_QUEUED:
            self._finish(self.queue.pop(0), Outcome.DROPPED)
        if not self.silent:
            future = self._renderer.submit(self._render, item.text)
            future.add_done_callback(
                lambda done: Clock.schedule_once(
                    partial(self._rendered_one, item, done)
                )
            )
        self._play_next()
        return item

    def stop(self) -> None:
        """Stop playing and rendering; queued announcements are not spoken."""
        self._stopped = True
        self._renderer.shutdown(wait=False, cancel_futures=True)
        self._cancel_watchdog()
        sound, self._sound = self._sound, None
        if sound is not None:
            sound.unbind(on_stop=self._sound_ended)
            sound.stop()
            sound.unload()

    # Rendering (worker thread) -------------------------------------------------

    def _render(self, text: str) -> Path:
        digest = hashlib.sha1(f"{VOICE}:{SPEECH_RATE}:{text}".encode()).hexdigest()
        path = self.cache_dir / f"{digest[:20]}.wav"
        if path.exists() and path.stat().st_size > 44:
            path.touch()
            return path
        partial_path = path.with_suffix(".part")
        command = [self.espeak, "-v", VOICE, "-s", str(SPEECH_RATE), "-w"]
        subprocess.run(
            [*command, str(partial_path), text],
            check=True,
            capture_output=True,
            timeout=RENDER_TIMEOUT_S,
        )
        partial_path.replace(path)
        self._prune_cache()
        return path

    def _prune_cache(self) -> None:
        files = sorted(
            (p for p in self.cache_dir.glob("*.wav") if p.name != CHIME_FILE),
            key=lambda p: p.stat().st_mtime,
        )
        for old in files[: max(0, len(files) - MAX_CACHED_FILES)]:
            old.unlink(missing_ok=True)

    # Playing (main thread) ---------------------------------------------------

    def _rendered_one(
        self, item: Announcement, future: Future[Path], _dt: float
    ) -> None:
        if self._stopped or future.cancelled():
            return
        try:
            path: Path | None = future.result()
        except (OSError, subprocess.SubprocessError) as exc:
            _LOGGER.error("espeak-ng failed to render %r: %s", item.text, exc)
            path = None
        # A call dropped from a full queue meanwhile needs its file no more.
        if any(queued.seq == item.seq for queued in self.queue):
            self._rendered[item.seq] = path
        self._play_next()

    def _play_next(self) -> None:
        if self._stopped or self.playing is not None or not self.queue:
            return
        item = self.queue[0]
        if self.silent:
            self._finish(self.queue.pop(0), Outcome.SILENT)
            self._play_next()
            return
        if item.seq not in self._rendered:
            return  # Its file is still being rendered.
        self.queue.pop(0)
        wav = self._rendered.pop(item.seq)
        if wav is None:
            self._finish(item, Outcome.FAILED)
            self._play_next()
            return
        self.playing = replace(item, wav=wav)
        _LOGGER.info("Announcing %s at counter %d", item.label, item.counter)
        self._play_file(self._chime, then=self._play_speech)

    def _play_speech(self) -> None:
        if self.playing is not None and self.playing.wav is not None:
            self._play_file(self.playing.wav, then=self._spoken)

    def _spoken(self) -> None:
        item, self.playing = self.playing, None
        if item is not None:
            self._finish(item, Outcome.PLAYED)
        self._play_next()

    def _play_file(self, path: Path, then: Callable[[], None]) -> None:
        try:
            sound = self._load_sound(str(path))
        except Exception as exc:  # noqa: BLE001 - audio providers raise many kinds
            sound = None
            _LOGGER.error("Could not load %s: %s", path, exc)
        if sound is None:
            self._go_silent(f"{path.name} could not be loaded for playing")
            item, self.playing = self.playing, None
            if item is not None:
                self._finish(item, Outcome.FAILED)
            self._play_next()
            return
        self._sound = sound
        self._then = then
        sound.bind(on_stop=self._sound_ended)
        sound.play()
        length = sound.length if sound.length and sound.length > 0 else 10.0
        self._watchdog = Clock.schedule_once(
            lambda _dt: self._sound_ended(sound), length + END_MARGIN_S
        )

    def _sound_ended(self, sound: Any, *_args: Any) -> None:
        if sound is not self._sound:
            return
        self._cancel_watchdog()
        sound.unbind(on_stop=self._sound_ended)
        sound.unload()
        self._sound = None
        self._then()

    def _cancel_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None

    def _finish(self, item: Announcement, outcome: Outcome) -> None:
        self.history.append(replace(item, outcome=outcome))
        if outcome is Outcome.DROPPED:
            _LOGGER.warning("Too many calls to announce; skipped %s", item.label)

    # Set-up ------------------------------------------------------------------

    def _prepare_chime(self) -> Path:
        path = self.cache_dir / CHIME_FILE
        if self.espeak is None:
            self._go_silent("espeak-ng is not installed; run scripts/install")
            return path
        try:
            if not path.exists():
                write_chime(path)
        except OSError as exc:
            self._go_silent(f"cannot write {path}: {exc}")
            return path
        self._probe_sound(path)
        return path

    def _probe_sound(self, path: Path) -> None:
        """Load the chime once, so a missing sound device is known at start."""
        try:
            sound = self._load_sound(str(path))
        except Exception as exc:  # noqa: BLE001 - audio providers raise many kinds
            self._go_silent(f"no sound device ({exc})")
            return
        if sound is None:
            self._go_silent("no sound device: Kivy could not load a WAV file")
            return
        sound.unload()

    def _go_silent(self, reason: str) -> None:
        if not self.silent_reason:
            _LOGGER.warning("Calls are not announced aloud: %s", reason)
            self.silent_reason = reason
