"""How a value written by JSON merge patch reads back from the API server.

Rules of this module: a null deletes its key in a merge patch (RFC 7386), and a CRD's
schema drops a null of a field that is not nullable, in objects inside lists too; so
a value is compared as stored with every null-valued key taken as absent, at every
depth. Pure, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def stored(value: Any) -> Any:
    """`value` without its null-valued keys, at every depth (lists kept in order, a
    null element of a list kept).

    >>> stored({"a": {"b": None, "c": 1}, "d": [{"e": None}, None], "f": None})
    {'a': {'c': 1}, 'd': [{}, None]}
    """
    if isinstance(value, Mapping):
        return {k: stored(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [stored(v) for v in value]
    return value
