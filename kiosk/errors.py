"""Exceptions raised by the kiosk package, all derived from KioskError."""

import logging

from broker.errors import AntreanError

_LOGGER = logging.getLogger(__name__)


class KioskError(AntreanError):
    """Base class of every error that the kiosk package raises."""


class TicketError(KioskError):
    """Invalid ticket content or paper layout."""


class PrinterError(KioskError):
    """Invalid printer spec, or a printer that could not be opened or written."""
