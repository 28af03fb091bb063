"""Maintenance windows (galleon.core.windows) with injected time, to the minute,
across the daylight saving changes of 2026: Europe/Berlin on March 29 (02:00 CET
becomes 03:00 CEST) and October 25 (03:00 CEST becomes 02:00 CET), America/New_York
on March 8 (02:00 EST becomes 03:00 EDT) and November 1 (02:00 EDT becomes 01:00
EST). Each rule is said both as an RRULE and as a cron expression where cron can
say it, and both must open at the same instants.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from galleon.api.crd import kind_named, render_all
from galleon.api.scaleset import MaintenanceWindow, ScaleSetSpec
from galleon.core import reasons
from galleon.core import rollout as ro
from galleon.core.upgrade_trigger import Controls, RecordedUpgrade, upgrade_intent
from galleon.core.windows import (
    HORIZON,
    MAX_STEPS,
    WindowError,
    compile_windows,
    evaluate,
    holds_at,
    relative,
    verdict,
)

REPO = Path(__file__).resolve().parents[2]
BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"


def window(**fields: Any) -> MaintenanceWindow:
    return MaintenanceWindow.model_validate({"duration": "PT4H", **fields})


def utc(text: str) -> datetime:
    """'2026-03-29 01:00' as an instant in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def at(windows: list[MaintenanceWindow], now: str) -> tuple[bool, str | None, str]:
    """(allowed, when that changes in UTC to the minute, reason) at `now` (UTC)."""
    found = verdict(windows, utc(now))
    change = found.change.strftime("%Y-%m-%d %H:%M") if found.change else None
    return found.allowed, change, found.reason


NIGHTLY_BERLIN = [
    pytest.param(window(rrule="FREQ=DAILY;BYHOUR=2;BYMINUTE=0", timeZone=BERLIN), id="rrule"),
    pytest.param(window(cron="0 2 * * *", timeZone=BERLIN), id="cron"),
]


@pytest.mark.parametrize("nightly", NIGHTLY_BERLIN)
@pytest.mark.parametrize(
    ("now", "expected"),
    [
        # A winter night: 02:00 CET is 01:00 UTC, open for four hours.
        pytest.param("2026-03-27 00:59", (False, "2026-03-27 01:00"), id="a-minute-before"),
        pytest.param("2026-03-27 01:00", (True, "2026-03-27 05:00"), id="opens-at-02:00-CET"),
        pytest.param("2026-03-27 04:59", (True, "2026-03-27 05:00"), id="last-minute"),
        pytest.param("2026-03-27 05:00", (False, "2026-03-28 01:00"), id="closed-at-06:00-CET"),
        # March 29: 02:00 does not exist; the window opens when the clock jumps to
        # 03:00 CEST (01:00 UTC, RFC 5545: the offset before the gap) and lasts four
        # elapsed hours, to 07:00 CEST.
        pytest.param("2026-03-29 00:59", (False, "2026-03-29 01:00"), id="spring-a-minute-before"),
        pytest.param(
            "2026-03-29 01:00", (True, "2026-03-29 05:00"), id="spring-opens-at-03:00-CEST"
        ),
        pytest.param("2026-03-29 04:59", (True, "2026-03-29 05:00"), id="spring-last-minute"),
        pytest.param("2026-03-29 05:00", (False, "2026-03-30 00:00"), id="spring-closed-at-07:00"),
        # The first summer night: 02:00 CEST is 00:00 UTC.
        pytest.param("2026-03-29 23:59", (False, "2026-03-30 00:00"), id="summer-a-minute-before"),
        pytest.param("2026-03-30 00:00", (True, "2026-03-30 04:00"), id="summer-opens-at-02:00"),
        # October 25: 02:00 happens twice; the window opens at the first (CEST, 00:00
        # UTC) and lasts four elapsed hours, to 05:00 CET.
        pytest.param("2026-10-24 23:59", (False, "2026-10-25 00:00"), id="autumn-a-minute-before"),
        pytest.param("2026-10-25 00:00", (True, "2026-10-25 04:00"), id="autumn-opens-first-02:00"),
        pytest.param(
            "2026-10-25 01:00", (True, "2026-10-25 04:00"), id="autumn-second-02:00-inside"
        ),
        pytest.param("2026-10-25 03:59", (True, "2026-10-25 04:00"), id="autumn-last-minute"),
        pytest.param(
            "2026-10-25 04:00", (False, "2026-10-26 01:00"), id="autumn-closed-at-05:00-CET"
        ),
    ],
)
def test_a_nightly_berlin_window_across_both_changes_to_the_minute(
    nightly: MaintenanceWindow, now: str, expected: tuple[bool, str]
) -> None:
    allowed, change, reason = at([nightly], now)
    assert (allowed, change) == expected
    assert reason == (
        reasons.INSIDE_MAINTENANCE_WINDOW if allowed else reasons.OUTSIDE_MAINTENANCE_WINDOW
    )


@pytest.mark.parametrize(
    ("rule", "now", "expected"),
    [
        # 02:30 does not exist on March 8: the window opens at 03:30 EDT (07:30 UTC).
        pytest.param(
            {"rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=30", "duration": "PT1H"},
            "2026-03-08 07:29",
            (False, "2026-03-08 07:30"),
            id="spring-gap-02:30-opens-03:30-EDT",
        ),
        pytest.param(
            {"cron": "30 2 * * *", "duration": "PT1H"},
            "2026-03-08 07:30",
            (True, "2026-03-08 08:30"),
            id="spring-gap-cron-the-same",
        ),
        # The day before, 02:30 EST is 07:30 UTC too: once a day, never skipped.
        pytest.param(
            {"cron": "30 2 * * *", "duration": "PT1H"},
            "2026-03-07 07:30",
            (True, "2026-03-07 08:30"),
            id="the-day-before",
        ),
        # 01:30 happens twice on November 1: the first (EDT, 05:30 UTC); one elapsed
        # hour later it is 01:30 again (EST), and the window closes.
        pytest.param(
            {"rrule": "FREQ=DAILY;BYHOUR=1;BYMINUTE=30", "duration": "PT1H"},
            "2026-11-01 05:29",
            (False, "2026-11-01 05:30"),
            id="autumn-twice-01:30-opens-at-the-first",
        ),
        pytest.param(
            {"cron": "30 1 * * *", "duration": "PT1H"},
            "2026-11-01 06:29",
            (True, "2026-11-01 06:30"),
            id="autumn-closes-at-the-second-01:30",
        ),
        pytest.param(
            {"cron": "30 1 * * *", "duration": "PT1H"},
            "2026-11-01 06:30",
            (False, "2026-11-02 06:30"),
            id="autumn-once-that-day",
        ),
        # A duration is elapsed time: from 01:00 EST on March 8, PT4H ends at 06:00 EDT.
        pytest.param(
            {"cron": "0 1 * * *", "duration": "PT4H"},
            "2026-03-08 09:59",
            (True, "2026-03-08 10:00"),
            id="four-elapsed-hours-across-the-jump",
        ),
    ],
)
def test_new_york_gap_and_overlap_to_the_minute(
    rule: dict[str, Any], now: str, expected: tuple[bool, str]
) -> None:
    allowed, change, _ = at([window(timeZone=NEW_YORK, **rule)], now)
    assert (allowed, change) == expected


def test_the_condition_says_when_the_next_window_opens_in_the_windows_zone() -> None:
    nightly = window(name="nightly", rrule="FREQ=DAILY;BYHOUR=2;BYMINUTE=0", timeZone=BERLIN)
    found = verdict([nightly], utc("2026-03-28 21:48"))
    assert found.message == (
        "outside maintenance windows: next opens 2026-03-29T03:00:00+02:00 "
        "(in 3h12m, window 'nightly' opens)"
    )
    hold = found.hold()
    assert hold == ro.Hold(
        reasons.OUTSIDE_MAINTENANCE_WINDOW, found.message, utc("2026-03-29 01:00")
    )
    inside = verdict([nightly], utc("2026-03-29 01:00"))
    assert inside.hold() is None
    assert inside.message == (
        "inside window 'nightly': batches may start until 2026-03-29T07:00:00+02:00 (in 4h)"
    )


FREEZE = window(
    name="year-end",
    rrule="FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=15",
    duration="P23D",
    timeZone=BERLIN,
    deny=True,
)
WEEKEND = window(name="weekend", cron="0 2 * * 6,0", timeZone=BERLIN)


@pytest.mark.parametrize(
    ("windows", "now", "expected", "message"),
    [
        pytest.param(
            [],
            "2026-12-20 12:00",
            (True, None, reasons.NO_MAINTENANCE_WINDOWS),
            "no maintenance windows: batches may start at any time",
            id="no-windows-any-time",
        ),
        pytest.param(
            [FREEZE],
            "2026-12-20 12:00",
            (False, "2027-01-06 23:00", reasons.INSIDE_DENY_WINDOW),
            "inside deny window 'year-end': next opens 2027-01-07T00:00:00+01:00 (in 17d11h, "
            "when it ends)",
            id="a-deny-window-covers-now",
        ),
        pytest.param(
            [FREEZE],
            "2026-12-01 12:00",
            (True, "2026-12-14 23:00", reasons.OUTSIDE_DENY_WINDOWS),
            "no deny window: batches may start until 2026-12-15T00:00:00+01:00 (in 13d11h, "
            "deny window 'year-end' opens)",
            id="only-deny-windows-allowed-until-one-opens",
        ),
        pytest.param(
            [WEEKEND, FREEZE],
            "2026-12-19 01:30",  # a Saturday, 02:30 in Berlin: the weekend window is open
            (False, "2027-01-09 01:00", reasons.INSIDE_DENY_WINDOW),
            "inside deny window 'year-end': next opens 2027-01-09T02:00:00+01:00 (in 20d23h, "
            "window 'weekend' opens)",
            id="deny-wins-over-an-open-window-and-the-next-allowed-comes-after-it",
        ),
        pytest.param(
            [WEEKEND, FREEZE],
            "2026-12-12 01:30",  # a Saturday before the freeze
            (True, "2026-12-12 05:00", reasons.INSIDE_MAINTENANCE_WINDOW),
            "inside window 'weekend': batches may start until 2026-12-12T06:00:00+01:00 (in 3h30m)",
            id="inside-an-allow-window",
        ),
        pytest.param(
            [WEEKEND, window(name="late", cron="0 2 * * 6", duration="PT6H", timeZone=BERLIN)],
            "2026-12-12 01:30",
            (True, "2026-12-12 07:00", reasons.INSIDE_MAINTENANCE_WINDOW),
            "inside window 'late': batches may start until 2026-12-12T08:00:00+01:00 (in 5h30m)",
            id="overlapping-allow-windows-the-later-end",
        ),
        pytest.param(
            [
                window(name="first", cron="0 0 * * *", duration="PT2H"),
                window(name="then", cron="0 2 * * *", duration="PT2H"),
            ],
            "2026-06-01 01:00",
            (True, "2026-06-01 04:00", reasons.INSIDE_MAINTENANCE_WINDOW),
            "inside window 'first': batches may start until 2026-06-01T04:00:00+00:00 (in 3h)",
            id="back-to-back-openings-chain",
        ),
        pytest.param(
            [window(name="gone", rrule="FREQ=DAILY;UNTIL=20260101T000000Z")],
            "2026-06-01 00:00",
            (False, None, reasons.OUTSIDE_MAINTENANCE_WINDOW),
            f"outside maintenance windows: no window opens in the next {HORIZON.days} days",
            id="a-rule-that-ended-opens-no-more",
        ),
        pytest.param(
            [
                window(
                    name="fortnightly",
                    rrule="FREQ=WEEKLY;INTERVAL=2;BYDAY=SA;BYHOUR=3",
                    start="2026-01-03T00:00:00",
                    duration="PT2H",
                    timeZone="Asia/Tokyo",
                )
            ],
            "2026-06-01 00:00",
            (False, "2026-06-05 18:00", reasons.OUTSIDE_MAINTENANCE_WINDOW),
            "outside maintenance windows: next opens 2026-06-06T03:00:00+09:00 (in 4d18h, "
            "window 'fortnightly' opens)",
            id="interval-counts-from-start",
        ),
        pytest.param(
            [
                window(
                    name="nightly",
                    rrule="FREQ=DAILY;BYHOUR=2;UNTIL=20260329T010000Z",
                    timeZone=BERLIN,
                )
            ],
            "2026-03-29 05:00",
            (False, None, reasons.OUTSIDE_MAINTENANCE_WINDOW),
            f"outside maintenance windows: no window opens in the next {HORIZON.days} days",
            id="until-in-utc-the-last-opening-is-the-spring-night",
        ),
    ],
)
def test_allow_and_deny_windows(
    windows: list[MaintenanceWindow], now: str, expected: tuple[Any, ...], message: str
) -> None:
    assert at(windows, now) == expected
    assert verdict(windows, utc(now)).message == message


def test_until_in_utc_keeps_the_opening_at_that_instant() -> None:
    nightly = window(rrule="FREQ=DAILY;BYHOUR=2;UNTIL=20260329T010000Z", timeZone=BERLIN)
    assert at([nightly], "2026-03-29 01:00") == (
        True,
        "2026-03-29 05:00",
        reasons.INSIDE_MAINTENANCE_WINDOW,
    )


def test_a_search_that_never_finds_an_opening_says_where_it_stopped() -> None:
    # The deny window covers the allow window's every opening.
    windows = [
        window(cron="0 2 * * *", duration="PT1H"),
        window(cron="0 1 * * *", duration="PT3H", deny=True),
    ]
    found = verdict(windows, utc("2026-06-01 00:00"))
    assert not found.allowed and found.change is None and found.searched is not None
    assert found.searched < utc("2026-06-01 00:00") + HORIZON
    assert f"the search stops after {MAX_STEPS} changes of the windows" in found.message
    assert found.hold() == ro.Hold(found.reason, found.message, None)


def test_a_window_that_opens_every_minute_is_bounded() -> None:
    always = window(cron="* * * * *", duration="PT1M")
    found = verdict([always], utc("2026-06-01 00:00"))
    assert found.allowed and found.at_least
    assert "batches may start until at least" in found.message


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        pytest.param(
            {"cron": "0 2 * * *", "timeZone": "Europe/Berln"}, "is not an IANA time zone", id="zone"
        ),
        pytest.param(
            {"cron": "0 2 * * *", "timeZone": "localtime"},
            "is not an IANA time zone",
            id="localtime",
        ),
        pytest.param({"rrule": "FREQ=DAILY;FOO=1"}, "unknown rule part 'FOO'", id="unknown-part"),
        pytest.param({"rrule": "FREQ=DAILY;FREQ=WEEKLY"}, "FREQ is given twice", id="twice"),
        pytest.param({"rrule": "FREQ=DAILY;BYDAY=XX"}, "is not a valid RRULE", id="bad-byday"),
        pytest.param({"rrule": "FREQ=DAILY;BYHOUR=25"}, "is not a valid RRULE", id="bad-hour"),
        pytest.param({"rrule": "FREQ=WEEKLY"}, "FREQ=WEEKLY needs BYDAY", id="weekly-no-day"),
        pytest.param(
            {"rrule": "FREQ=DAILY;UNTIL=20261231"}, "UNTIL must be a date-time", id="until-date"
        ),
        pytest.param({"rrule": "FREQ=DAILY;INTERVAL=0"}, "INTERVAL must be", id="interval"),
        pytest.param(
            {"rrule": "FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30"}, "never opens", id="never-opens"
        ),
        pytest.param({"cron": "61 2 * * *"}, "is not a cron expression", id="cron-minute"),
        pytest.param({"cron": "H 2 * * *"}, "hashed (H) and random (R)", id="cron-hashed"),
        pytest.param({"cron": "0 2 * * R"}, "hashed (H) and random (R)", id="cron-random"),
    ],
)
def test_what_admission_cannot_check_is_refused_with_the_field(
    fields: dict[str, Any], words: str
) -> None:
    with pytest.raises(WindowError, match=re.escape(words)) as caught:
        compile_windows([window(**fields)])
    assert str(caught.value).startswith("maintenanceWindows[0].")
    found = verdict([window(**fields)], utc("2026-06-01 00:00"))
    assert (found.allowed, found.reason) == (False, reasons.INVALID_MAINTENANCE_WINDOW)
    assert found.message.endswith("no batch starts until it is fixed")
    assert found.hold() == ro.Hold(reasons.INVALID_MAINTENANCE_WINDOW, found.message, None)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        pytest.param(
            {"cron": "0 2 * * *", "rrule": "FREQ=DAILY"}, "exactly one of rrule", id="both"
        ),
        pytest.param({}, "exactly one of rrule", id="neither"),
        pytest.param({"cron": "0 2 * *"}, "should match pattern", id="cron-four-fields"),
        pytest.param({"cron": "0 0 2 * * *"}, "should match pattern", id="cron-six-fields"),
        pytest.param({"rrule": "FREQ=MINUTELY"}, "FREQ=HOURLY, DAILY", id="minutely"),
        pytest.param({"rrule": "FREQ=DAILY;COUNT=3"}, "must not use COUNT", id="count"),
        pytest.param({"rrule": "FREQ=DAILY;BYSECOND=5"}, "must not use COUNT", id="bysecond"),
        pytest.param({"rrule": "DTSTART:20260101T000000"}, "should match pattern", id="dtstart"),
        pytest.param(
            {"cron": "0 2 * * *", "start": "2026-01-01T00:00"}, "start must only", id="start-cron"
        ),
        pytest.param(
            {"rrule": "FREQ=DAILY", "start": "2026-01-01T00:00+01:00"},
            "String should",
            id="start-offset",
        ),
        pytest.param({"cron": "0 2 * * *", "duration": "PT30S"}, "at least one minute", id="short"),
        pytest.param({"cron": "0 2 * * *", "duration": "P91D"}, "at most 90 days", id="long"),
        pytest.param(
            {"cron": "0 2 * * *", "timeZone": "../etc"}, "should match pattern", id="zone-path"
        ),
    ],
)
def test_admission_refuses_what_the_schema_can_check(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        MaintenanceWindow.model_validate({"duration": "PT4H", **fields})


def test_the_schema_bounds_the_list_and_its_strings() -> None:
    crd = render_all()[f"galleon.dev_{kind_named('ScaleSet').plural}.yaml"]
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    windows = spec["properties"]["upgradePolicy"]["properties"]["maintenanceWindows"]
    assert windows["maxItems"] == 16
    item = windows["items"]
    assert item["required"] == ["duration"]
    for name in ("name", "rrule", "cron", "start", "timeZone", "duration"):
        assert item["properties"][name]["maxLength"] <= 512, name
    rules = [r["rule"] for r in item["x-kubernetes-validations"]]
    assert "has(self.rrule) != has(self.cron)" in rules
    pattern = item["properties"]["rrule"]["pattern"]
    assert jsonschema.Draft7Validator({"type": "string", "pattern": pattern}).is_valid(
        "RRULE:FREQ=WEEKLY;BYDAY=SA,-1SU;BYHOUR=2;UNTIL=20261231T235959Z"
    )


def test_relative_waits_round_up_to_the_minute() -> None:
    assert relative(timedelta(seconds=1)) == "in 1m"
    assert relative(timedelta(hours=3, minutes=12)) == "in 3h12m"
    assert relative(timedelta(days=1)) == "in 1d"


def test_holds_at_a_moment_for_the_preview() -> None:
    at_moment = holds_at([window(name="nightly", cron="0 2 * * *", timeZone=BERLIN)])
    assert at_moment(utc("2026-03-29 01:00")) == ()
    (held,) = at_moment(utc("2026-03-29 05:00"))
    assert held.until == utc("2026-03-30 00:00")
    (refused,) = holds_at([window(cron="0 2 * * *", timeZone="Mars/Olympus")])(utc("2026-03-29"))
    assert refused.reason == reasons.INVALID_MAINTENANCE_WINDOW and refused.until is None


# An oracle: daily windows computed the plain way, day by day with zoneinfo, against
# the search, at random instants of 2026 in zones with and without daylight saving.

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


def oracle(
    hour: int, minute: int, length: timedelta, zone: str, now: datetime
) -> tuple[bool, datetime]:
    """(allowed at now, when that changes) for a window opening daily at hour:minute."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz).date()
    opens = sorted(
        datetime(day.year, day.month, day.day, hour, minute, tzinfo=tz).astimezone(UTC)
        for day in (local + timedelta(days=d) for d in range(-3, 4))
    )
    covering = [s for s in opens if s <= now < s + length]
    if covering:
        end = max(s + length for s in covering)
        while any(s <= end < s + length for s in opens):  # back to back
            end = max(s + length for s in opens if s <= end < s + length)
        return True, end
    return False, min(s for s in opens if s > now)


@settings(max_examples=300, deadline=None)
@given(
    hour=st.integers(0, 23),
    minute=st.sampled_from([0, 15, 30, 45]),
    length=st.integers(1, 20 * 60).map(lambda m: timedelta(minutes=m)),
    zone=st.sampled_from(ZONES),
    now=st.datetimes(datetime(2026, 1, 2), datetime(2026, 12, 28)).map(
        lambda d: d.replace(second=0, microsecond=0, tzinfo=UTC)
    ),
    as_cron=st.booleans(),
)
def test_daily_windows_match_the_day_by_day_oracle(
    hour: int, minute: int, length: timedelta, zone: str, now: datetime, as_cron: bool
) -> None:
    rule = (
        {"cron": f"{minute} {hour} * * *"}
        if as_cron
        else {"rrule": f"FREQ=DAILY;BYHOUR={hour};BYMINUTE={minute}"}
    )
    seconds = int(length.total_seconds())
    spec = window(duration=f"PT{seconds}S", timeZone=zone, **rule)
    found = evaluate(compile_windows([spec]), now)
    assert (found.allowed, found.change) == oracle(hour, minute, length, zone, now)


# The pass: windows become the planner's first hold, and the status says them.


def scaleset(windows: list[dict[str, Any]]) -> ScaleSetSpec:
    return ScaleSetSpec.model_validate(
        {
            "region": "eastus",
            "capacity": 4,
            "imageReference": {"imageDefinitionName": "ubuntu"},
            "template": {
                "spec": {
                    "containers": [{"name": "os", "readinessProbe": {"exec": {"command": ["t"]}}}]
                }
            },
            "upgradePolicy": {
                "mode": "Rolling",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                "maintenanceWindows": windows,
            },
        }
    )


def test_windows_are_the_first_hold_and_others_compose_after_them() -> None:
    spec = scaleset(
        [{"name": "nightly", "cron": "0 2 * * *", "duration": "PT4H", "timeZone": BERLIN}]
    )
    fleet = [ro.Instance(i, "1.0.0-h", ready=True) for i in range(4)]
    quarantine = ro.Hold("VersionQuarantined", "1.0.1 is quarantined")
    now = utc("2026-03-28 21:48")
    intent = upgrade_intent(
        spec, fleet, "1.0.1-h", RecordedUpgrade(), Controls(), now, holds=[quarantine]
    )
    assert [h.reason for h in intent.holds] == [
        reasons.OUTSIDE_MAINTENANCE_WINDOW,
        "VersionQuarantined",
    ]
    decided = ro.plan(intent.observation(spec, fleet, "1.0.1-h"), None, intent.policy, now)
    assert decided.rollout is None and decided.actions == ()
    assert decided.requeue_after == 30.0  # capped; the opening is 3h12m away
    opening = upgrade_intent(
        spec, fleet, "1.0.1-h", RecordedUpgrade(), Controls(), utc("2026-03-29 01:00")
    )
    assert opening.holds == ()
    started = ro.plan(
        opening.observation(spec, fleet, "1.0.1-h"), None, opening.policy, utc("2026-03-29 01:00")
    )
    assert started.rollout is not None and started.rollout.batch == 1


def test_a_start_request_waits_for_the_window_too() -> None:
    spec = scaleset([{"cron": "0 2 * * *", "duration": "PT1H", "deny": True}])
    fleet = [ro.Instance(i, "1.0.0-h", ready=True) for i in range(4)]
    now = utc("2026-06-01 02:30")
    asked = Controls(start_at=now - timedelta(minutes=1))
    intent = upgrade_intent(spec, fleet, "1.0.1-h", RecordedUpgrade(), asked, now)
    assert intent.start_requested
    decided = ro.plan(intent.observation(spec, fleet, "1.0.1-h"), None, intent.policy, now)
    assert decided.rollout is None
    assert decided.requeue_after == 30.0


def test_the_requeue_comes_at_the_opening() -> None:
    spec = scaleset([{"cron": "0 2 * * *", "duration": "PT1H"}])
    fleet = [ro.Instance(i, "1.0.0-h", ready=True) for i in range(4)]
    now = utc("2026-06-01 01:59:48")
    intent = upgrade_intent(spec, fleet, "1.0.1-h", RecordedUpgrade(), Controls(), now)
    decided = ro.plan(intent.observation(spec, fleet, "1.0.1-h"), None, intent.policy, now)
    assert decided.requeue_after == 12.0


# The example in docs/rollout.md is a valid ScaleSet whose windows compile.


def test_the_documented_example_is_valid() -> None:
    text = (REPO / "docs" / "rollout.md").read_text()
    section = text[text.index("## Maintenance windows") :]
    block = re.search(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert block is not None, "docs/rollout.md: no yaml example under Maintenance windows"
    document = yaml.safe_load(block.group(1))
    spec = ScaleSetSpec.model_validate(document["spec"])
    compiled = compile_windows(spec.upgrade_policy.maintenance_windows)
    assert len(compiled) >= 2 and any(w.deny for w in compiled)
