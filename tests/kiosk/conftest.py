"""Import python-escpos with TMPDIR set to a scratch directory removed at exit.

Importing escpos.capabilities creates a temporary directory for its pickle cache
and never removes it. Imported here, it lands in a directory removed after the run.
"""

import logging
import os
import shutil
import tempfile

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
