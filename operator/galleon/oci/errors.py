"""Registry errors with a machine-readable reason and whether retrying can help.

Rules of this module: `permanent` is True only when the same request cannot
succeed later without a human (missing image, bad credentials, refused access,
a digest that does not match); connection failures, timeouts, 429 and 5xx are
transient.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base of every registry error. `reason` is CamelCase, e.g. "Unavailable"."""

    reason = "ProtocolError"
    permanent = True

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(RegistryError):
    reason = "NotFound"


class Unauthorized(RegistryError):
    reason = "Unauthorized"


class Denied(RegistryError):
    reason = "Denied"


class DigestMismatch(RegistryError):
    reason = "DigestMismatch"


class Unavailable(RegistryError):
    reason = "Unavailable"
    permanent = False


class ProtocolError(RegistryError):
    reason = "ProtocolError"


def for_status(status: int, message: str) -> RegistryError:
    """The error an HTTP status stands for.

    >>> for_status(503, "x").permanent, for_status(404, "x").reason
    (False, 'NotFound')
    """
    if status == 404:
        return NotFound(message, status=status)
    if status == 401:
        return Unauthorized(message, status=status)
    if status == 403:
        return Denied(message, status=status)
    if status == 429 or status >= 500 or status == 408:
        return Unavailable(message, status=status)
    return ProtocolError(message, status=status)
