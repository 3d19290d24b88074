"""The base of every error the office hub raises on purpose."""


class AntreanError(Exception):
    """An expected failure whose message is written for the person who must act."""
