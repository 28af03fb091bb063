"""Times as the Kubernetes API writes them: RFC 3339, UTC, whole seconds.

Rules of this module: it never reads the clock (`galleon.clock` does); every
timestamp galleon parses or writes goes through `parse` and `format`, so one
grammar holds for status fields, annotations and the CLI.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import isodate


def format(moment: datetime) -> str:
    """`moment` in UTC, to the second, with a `Z`.

    >>> format(datetime(2026, 3, 1, 12, 0, 5, 999, tzinfo=UTC))
    '2026-03-01T12:00:05Z'
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: object) -> datetime | None:
    """An RFC 3339 time (or a datetime) as an aware datetime; None when empty.

    Naive datetimes are taken as UTC. Raises ValueError on text that is not a time.

    >>> parse("2026-03-01T12:00:05Z")
    datetime.datetime(2026, 3, 1, 12, 0, 5, tzinfo=datetime.timezone.utc)
    >>> parse(None) is None
    True
    """
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_or_none(value: object) -> datetime | None:
    """`parse`, with None for text that is not a time (user-written annotations).

    >>> parse_or_none("yesterday") is None
    True
    """
    try:
        return parse(value)
    except ValueError:
        return None


def duration(text: str, default: timedelta) -> timedelta:
    """An ISO 8601 duration ("PT5M"); `default` when it is empty or not a duration
    of days and smaller units (years and months have no fixed length).

    >>> duration("PT1M30S", timedelta(0))
    datetime.timedelta(seconds=90)
    >>> duration("", timedelta(minutes=5))
    datetime.timedelta(seconds=300)
    """
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError):
        return default
    return value if isinstance(value, timedelta) else default
