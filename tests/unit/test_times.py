"""galleon.core.times: every time parsed is aware and in UTC, or refused with a reason;
no input makes it raise anything but ValueError (and `parse_or_none` nothing at all)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galleon.core import times

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2026-03-01T12:00:00Z", NOON, id="utc"),
        pytest.param("2026-03-01T12:00:00z", NOON, id="lower-case-z"),
        pytest.param("2026-03-01T14:00:00+02:00", NOON, id="offset"),
        pytest.param("2026-03-01T12:00:00.250Z", NOON.replace(microsecond=250000), id="fraction"),
        pytest.param(NOON.astimezone(timezone(timedelta(hours=-5))), NOON, id="aware-datetime"),
    ],
)
def test_times_with_a_zone_parse_to_utc(text: object, expected: datetime) -> None:
    parsed = times.parse(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        pytest.param("2026-03-01T12:00:00", "has no time zone", id="zone-less"),
        pytest.param("2026-03-01", "has no time zone", id="date-only"),
        pytest.param(datetime(2026, 3, 1, 12), "has no time zone", id="naive-datetime"),
        pytest.param("0001-01-01T00:00:00+01:00", "outside the years 1 to 9999", id="before-1"),
        pytest.param("9999-12-31T23:59:59-01:00", "outside the years 1 to 9999", id="after-9999"),
        pytest.param("soon", "not an RFC 3339 time", id="not-a-time"),
        pytest.param("2026-13-01T00:00:00Z", "not an RFC 3339 time", id="month-13"),
        pytest.param("x" * 500, "not an RFC 3339 time", id="long-text-is-cut"),
    ],
)
def test_anything_else_is_refused_with_a_reason(value: object, words: str) -> None:
    with pytest.raises(ValueError, match=words) as refused:
        times.parse(value)
    assert len(str(refused.value)) < 200
    assert times.parse_or_none(value) is None
    assert times.refusal(value) == str(refused.value)


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_is_no_time(empty: object) -> None:
    assert times.parse(empty) is None
    assert times.refusal(empty) is None


@given(st.text(max_size=40))
def test_no_text_raises_anything_but_value_error(text: str) -> None:
    try:
        parsed = times.parse(text)
    except ValueError:
        return
    # Whatever is accepted can be compared with an aware time and written back.
    assert parsed is None or (parsed.tzinfo is not None and (parsed < NOON or parsed >= NOON))
    if parsed is not None:
        times.format(parsed)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("PT1M30S", timedelta(seconds=90), id="minutes-seconds"),
        pytest.param("P1DT2H", timedelta(days=1, hours=2), id="days-hours"),
        pytest.param("", timedelta(minutes=5), id="empty-is-default"),
        pytest.param("P1M", timedelta(minutes=5), id="months-have-no-length"),
        pytest.param("P9999999999D", timedelta(minutes=5), id="overflows-timedelta"),
        pytest.param("PT99999999999999999999H", timedelta(minutes=5), id="overflows-hours"),
        pytest.param("-PT5M", timedelta(minutes=5), id="negative"),
        pytest.param("soon", timedelta(minutes=5), id="not-a-duration"),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert times.duration(text, timedelta(minutes=5)) == expected
