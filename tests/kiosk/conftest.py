"""Import python-escpos with TMPDIR set to a scratch directory removed at exit.

Importing escpos.capabilities creates a temporary directory for its pickle cache
and never removes it. Imported here, it lands in a directory removed after the run.
"""

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pty_printer import FakeSerialPrinter, SocatPtyPair

_LOGGER = logging.getLogger(__name__)

_SCRATCH_DIR = tempfile.mkdtemp(prefix="antrean-kiosk-escpos-")


def _import_escpos_in_scratch_dir() -> None:
    saved_env = os.environ.get("TMPDIR")
    saved_tempdir = tempfile.tempdir
    os.environ["TMPDIR"] = _SCRATCH_DIR
    tempfile.tempdir = None
    try:
        import escpos.capabilities  # noqa: F401
    finally:
        if saved_env is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = saved_env
        tempfile.tempdir = saved_tempdir


_import_escpos_in_scratch_dir()


def pytest_unconfigure() -> None:
    _LOGGER.debug("Removing escpos scratch directory %s", _SCRATCH_DIR)
    shutil.rmtree(_SCRATCH_DIR, ignore_errors=True)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[SocatPtyPair]:
    pair = SocatPtyPair(tmp_path)
    pair.start()
    yield pair
    pair.stop()


@pytest.fixture
def start_fake_printer(
    pty_pair: SocatPtyPair,
) -> Iterator[Callable[[dict[int, int]], FakeSerialPrinter]]:
    started: list[FakeSerialPrinter] = []

    def start(replies: dict[int, int]) -> FakeSerialPrinter:
        fake = FakeSerialPrinter(pty_pair.host_path, replies)
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()
