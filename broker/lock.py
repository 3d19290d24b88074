"""The exclusive lock on a data directory that a running engine (or a restore) holds.

The lock is an flock(2) on data_dir/engine.lock, so the kernel releases it when
its holder exits, even by SIGKILL, and a stale file never blocks a restart.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import IO

from broker.errors import AntreanError

_LOGGER = logging.getLogger(__name__)

LOCK_NAME = "engine.lock"


class DataDirLocked(AntreanError):
    """Another process holds the data directory's lock."""


class DataDirLock:
    """An exclusive, non-blocking lock on one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._handle: IO[str] | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._handle is not None

    def acquire(self, purpose: str) -> None:
        """Take the lock for `purpose` ("engine", "restore") or raise DataDirLocked.

        The holder's pid and purpose are written into the file, so the error
        another process gets names who holds the lock.
        """
        if self._handle is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # "a+" creates the file but keeps the holder's line until the lock is ours.
        handle = open(self.path, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise DataDirLocked(
                f"{self.path.parent} is in use (lock {self.path} held by {holder}). "
                "Stop that engine first, or pass another --data-dir."
            ) from exc
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({purpose})\n")
        handle.flush()
        self._handle = handle
        _LOGGER.debug("Locked %s for %s", self.path, purpose)

    def release(self) -> None:
        """Give the lock up; releasing a lock not held does nothing."""
        handle, self._handle = self._handle, None
        if handle is None:
            return
        handle.truncate(0)
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
        _LOGGER.debug("Unlocked %s", self.path)
