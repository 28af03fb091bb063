"""Times as the Kubernetes API writes them: RFC 3339, UTC, whole seconds.

Rules of this module: it never reads the clock (`galleon.clock` does); every
timestamp galleon parses or writes goes through `parse` and `format`, so one
grammar holds for status fields, annotations and the CLI.

- A time must say its zone (`Z` or an offset such as `+02:00`), as RFC 3339
  requires: "2026-03-01T12:00:00" could be any of 26 hours, so it is refused,
  never guessed. `parse` always returns an aware datetime in UTC, so comparing
  two parsed times can never raise TypeError.
- A time whose UTC value falls outside the years 1-9999 (which Python cannot
  represent) is refused like any other text that is not a time: ValueError from
  `parse`, None from `parse_or_none`, never OverflowError.
- A duration that no timedelta can hold is no duration: `duration` gives its
  default, never OverflowError.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import isodate

ZONE_EXAMPLE = "2026-03-01T12:00:00Z"


def format(moment: datetime) -> str:
    """`moment` in UTC, to the second, with a `Z`.

    >>> format(datetime(2026, 3, 1, 12, 0, 5, 999, tzinfo=UTC))
    '2026-03-01T12:00:05Z'
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: object) -> datetime | None:
    """An RFC 3339 time (or an aware datetime) as an aware datetime in UTC; None when
    empty. Raises ValueError, saying why, on anything else: text that is not a time,
    a time without a zone, a time outside the years 1-9999 in UTC.

    >>> parse("2026-03-01T12:00:05Z")
    datetime.datetime(2026, 3, 1, 12, 0, 5, tzinfo=datetime.timezone.utc)
    >>> parse("2026-03-01T14:00:05+02:00") == parse("2026-03-01T12:00:05Z")
    True
    >>> parse(None) is None
    True
    >>> parse("2026-03-01T12:00:05")
    Traceback (most recent call last):
    ...
    ValueError: '2026-03-01T12:00:05' has no time zone: add Z or an offset, e.g. ...
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(
                f"{_shown(value)} is not an RFC 3339 time, e.g. {ZONE_EXAMPLE}"
            ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{_shown(value)} has no time zone: add Z or an offset, e.g. {ZONE_EXAMPLE}"
        )
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        # Why: 0001-01-01T00:00:00+01:00 is a valid text whose UTC time Python cannot hold.
        raise ValueError(f"{_shown(value)} is outside the years 1 to 9999 in UTC") from None


def parse_or_none(value: object) -> datetime | None:
    """`parse`, with None for anything `parse` refuses (user-written annotations).

    >>> parse_or_none("yesterday") is None, parse_or_none("2026-03-01T12:00:00") is None
    (True, True)
    """
    try:
        return parse(value)
    except ValueError:
        return None


def refusal(value: object) -> str | None:
    """Why `parse` refuses `value` (None when it accepts it, or `value` is empty).

    >>> refusal("2026-03-01T12:00:00Z") is None
    True
    >>> refusal("soon")
    "'soon' is not an RFC 3339 time, e.g. 2026-03-01T12:00:00Z"
    """
    try:
        parse(value)
    except ValueError as error:
        return str(error)
    return None


def duration(text: str, default: timedelta) -> timedelta:
    """An ISO 8601 duration ("PT5M"); `default` when it is empty or not a duration
    of days and smaller units (years and months have no fixed length), or too long
    for any timedelta (more than 999999999 days).

    >>> duration("PT1M30S", timedelta(0))
    datetime.timedelta(seconds=90)
    >>> duration("", timedelta(minutes=5))
    datetime.timedelta(seconds=300)
    >>> duration("P9999999999D", timedelta(minutes=5))
    datetime.timedelta(seconds=300)
    """
    try:
        value = isodate.parse_duration(text)
    except (isodate.ISO8601Error, ValueError, OverflowError):
        return default
    # Why not a negative one: "-PT5M" is ISO 8601, but no wait lasts less than nothing.
    return value if isinstance(value, timedelta) and value >= timedelta(0) else default


def _shown(value: object) -> str:
    """`value` quoted for a message, cut to a readable length."""
    text = repr(str(value))
    return text if len(text) <= 80 else f"{text[:77]}..."
