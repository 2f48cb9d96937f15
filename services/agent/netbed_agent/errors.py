"""Errors an operation raises; the protocol turns each into an error response."""

from __future__ import annotations


class RequestError(Exception):
    """The request itself is wrong (unknown op, missing or bad argument).

    `kind` is a short machine-readable category; the message names what was
    wrong so a user can fix it.
    """

    def __init__(self, message: str, kind: str = "bad_request") -> None:
        super().__init__(message)
        self.kind = kind


class OperationTimeout(Exception):
    """A blocking operation did not finish within its timeout (seconds)."""
