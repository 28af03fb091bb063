"""Maintenance windows: when a ScaleSet's upgrade may start a batch, and when that changes.

`compile_windows(specs)` checks each `spec.upgradePolicy.maintenanceWindows` entry
(its rule, duration and time zone) and returns them ready to evaluate, or raises
`WindowError` saying which window is wrong and why; `evaluate(windows, now)` says
whether a batch may start at `now`, until when, or when it next may. No clock is
read (`now` is passed in) and nothing is written; the only data read is a zone's
rules, through zoneinfo (the system's tz database, else the pinned `tzdata`).

Rules of this module (docs/rollout.md#maintenance-windows):
- A window is a recurrence of local start times in an IANA time zone (an RFC 5545
  RRULE with an optional local `start`, or a five-field cron expression), each start
  opening it for `duration`. An opening is the interval [start, start + duration):
  open at its first instant, closed at its last.
- Allow and deny: with at least one allow window, batches start only inside one;
  never inside a deny window (deny wins); without windows, at any time.
- Starts are computed on the zone's wall clock; a duration is elapsed time (PT4H
  from 01:00 on the night clocks go forward ends at 06:00 local, four hours later).
- A start in the gap when clocks go forward is read with the offset before the gap
  (02:30 on that night is 03:30 local, one hour after 01:30), and one that occurs
  twice when clocks go back is the first of the two (RFC 5545, 3.3.5); cron
  expressions are read the same way. So a daily 02:30 window opens once a day,
  every day: never skipped, never twice.
- Every search is bounded, and says where it stopped rather than guess: it looks
  at most HORIZON (400 days) ahead ("no window opens in the next 400 days"),
  follows at most MAX_STEPS changes between windows ("none before <where it
  stopped>"), chains at most MAX_CHAIN back-to-back openings when it says until
  when a window stays open ("until at least ..."), and examines at most MAX_STARTS
  starts in one evaluation (past that, the windows are refused: WindowError). A
  rule that never opens at all (FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30) is refused when
  it is compiled.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter
from dateutil.rrule import rrulestr

from galleon.api.scaleset import (
    WINDOW_DURATION_MAX_SECONDS,
    WINDOW_DURATION_MIN_SECONDS,
    MaintenanceWindow,
    duration_seconds,
    is_iso8601_duration,
)
from galleon.core import reasons, times
from galleon.core.rollout.model import Hold

HORIZON = timedelta(days=400)
"""How far ahead a search looks for the next opening."""
MAX_STEPS = 100
"""Most changes between windows one evaluation follows (a deny window ending, an
allow window opening, ...) when deny windows keep covering the allow windows."""
MAX_CHAIN = 48
"""Most back-to-back openings followed to say until when batches may start."""
MAX_STARTS = 20000
"""Most window starts one evaluation examines."""
DEFAULT_ANCHOR = datetime(2000, 1, 1)
"""An RRULE's DTSTART when the window says no `start`: midnight, January 1st."""
PROBE_FROM = datetime(9970, 1, 1)
PROBE_YEARS = 30
"""A rule is refused when it opens in none of the last 30 years the calendar holds
(the Gregorian calendar repeats, so such a rule never opens)."""
_FIRST_CHUNK = timedelta(hours=1)
_CHUNK = timedelta(days=2)
"""Searches look at spans growing from an hour to two days: a window that opens often
is found in the first, one that opens yearly in a few jumps."""
_DAY = timedelta(days=1)
_EARLIEST = timedelta(microseconds=1)
_WIDEST_OFFSET = timedelta(hours=26)
"""More than any UTC offset (-12h to +14h): a local time is within this of its instant."""
_RRULE_PARTS = frozenset(
    {
        "FREQ",
        "INTERVAL",
        "UNTIL",
        "BYMINUTE",
        "BYHOUR",
        "BYDAY",
        "BYMONTHDAY",
        "BYYEARDAY",
        "BYWEEKNO",
        "BYMONTH",
        "BYSETPOS",
        "WKST",
    }
)
_REFUSED_PARTS = {
    "COUNT": "COUNT is not supported: end the rule with UNTIL",
    "BYSECOND": "BYSECOND is not supported: windows open on whole minutes",
    "DTSTART": "DTSTART belongs in the window's start field",
}
_FREQUENCIES = ("HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_UNTIL = re.compile(r"^(\d{8})(T(\d{6})(Z?))?$")
_HASHED_OR_RANDOM = re.compile(r"(^|[\s,/-])[hr](\(|$|[\s,/-])", re.IGNORECASE)
_NOT_ZONES = frozenset({"localtime", "posixrules"})


class WindowError(ValueError):
    """A maintenance window that cannot be used, with the field and why."""


class _Recurrence(Protocol):
    def starts(self, lo: datetime, hi: datetime) -> Iterator[datetime]:
        """Local (naive) start times in [lo, hi], in local order."""
        ...


@dataclass(frozen=True)
class _RRule:
    """An RFC 5545 RRULE (python-dateutil), iterated from a start near the range
    asked for: a DTSTART moved forward by whole periods (INTERVAL of them) keeps
    the rule's occurrences, so no iteration runs from the anchor to today."""

    rule: Any
    """The dateutil rrule, with the anchor as DTSTART."""
    frequency: str
    interval: int
    anchor: datetime
    until: datetime | None

    def starts(self, lo: datetime, hi: datetime) -> Iterator[datetime]:
        begin = _rebased(self.anchor, self.frequency, self.interval, lo)
        end = hi if self.until is None else min(hi, self.until)
        if end < begin:
            return
        for start in self.rule.replace(dtstart=begin, until=end):
            if start >= lo:
                yield start


@dataclass(frozen=True)
class _Cron:
    """A five-field cron expression (croniter), on the zone's wall clock."""

    expression: str

    def starts(self, lo: datetime, hi: datetime) -> Iterator[datetime]:
        # Why a second before: croniter gives the first start strictly after its base.
        base = lo.replace(microsecond=0) - timedelta(seconds=1)
        found = croniter(self.expression, base, ret_type=datetime, max_years_between_matches=2)
        while True:
            try:
                start = found.get_next(datetime)
            except CroniterBadDateError:
                return  # no start within two years of the last one
            if start > hi:
                return
            if start >= lo:
                yield start


@dataclass(frozen=True)
class Window:
    """One maintenance window, checked and ready to evaluate."""

    label: str
    """How messages name it: "window 'nightly'", "deny window 'freeze'", or by its
    place, "maintenanceWindows[2]", "deny window maintenanceWindows[3]"."""
    deny: bool
    duration: timedelta
    zone: ZoneInfo
    recurrence: _Recurrence = field(repr=False)

    def local(self, moment: datetime) -> str:
        """`moment` on this window's wall clock, with its offset, to the second."""
        return moment.astimezone(self.zone).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Verdict:
    """Whether a batch may start at `now`, and when that changes.

    Allowed: `change` is when it stops being allowed (the open window's opening
    ends, a deny window opens; None: not within the horizon). Not allowed: `change`
    is the next instant a batch may start (None: none found, see `searched`).
    """

    now: datetime
    allowed: bool
    change: datetime | None = None
    open_window: Window | None = None
    """The allow window open now (allowed), if any."""
    deny_window: Window | None = None
    """The deny window covering now (not allowed), if any."""
    next_window: Window | None = None
    """The window whose opening, end or start is `change`."""
    at_least: bool = False
    """Allowed: back-to-back openings go on past `change` (MAX_CHAIN followed)."""
    searched: datetime | None = None
    """Not allowed and no `change`: how far the search got before MAX_STEPS (None:
    it looked the whole HORIZON)."""
    error: str = ""
    """Why the windows cannot be used at all (`WindowError`): never allowed."""
    configured: bool = True
    """Whether any window is configured."""

    @property
    def reason(self) -> str:
        if self.error:
            return reasons.INVALID_MAINTENANCE_WINDOW
        if not self.configured:
            return reasons.NO_MAINTENANCE_WINDOWS
        if self.allowed:
            if self.open_window is not None:
                return reasons.INSIDE_MAINTENANCE_WINDOW
            return reasons.OUTSIDE_DENY_WINDOWS
        if self.deny_window is not None:
            return reasons.INSIDE_DENY_WINDOW
        return reasons.OUTSIDE_MAINTENANCE_WINDOW

    @property
    def message(self) -> str:
        """What the MaintenanceWindow condition says, with the times."""
        if self.error:
            return f"{self.error}; no batch starts until it is fixed"
        if not self.configured:
            return "no maintenance windows: batches may start at any time"
        horizon = f"in the next {HORIZON.days} days"
        if self.allowed:
            head = f"inside {self.open_window.label}" if self.open_window else "no deny window"
            shown = self.next_window or self.open_window
            if self.change is None or shown is None:
                ahead = "no window closes" if self.open_window else "no deny window opens"
                return f"{head}: {ahead} {horizon}"
            until = "until at least" if self.at_least else "until"
            which = f", {shown.label} opens" if shown.deny else ""
            return (
                f"{head}: batches may start {until} {shown.local(self.change)} "
                f"({relative(self.change - self.now)}{which})"
            )
        head = (
            f"inside {self.deny_window.label}"
            if self.deny_window
            else "outside maintenance windows"
        )
        if self.change is None or self.next_window is None:
            if self.searched is not None:
                return (
                    f"{head}: no window opens before {times.format(self.searched)} (the "
                    f"search stops after {MAX_STEPS} changes of the windows)"
                )
            return f"{head}: no window opens {horizon}"
        if self.next_window is self.deny_window:
            which = "when it ends"
        elif self.next_window.deny:
            which = f"when {self.next_window.label} ends"
        else:
            which = f"{self.next_window.label} opens"
        return (
            f"{head}: next opens {self.next_window.local(self.change)} "
            f"({relative(self.change - self.now)}, {which})"
        )

    def hold(self) -> Hold | None:
        """The planner's hold while no batch may start (None while one may)."""
        if self.allowed:
            return None
        return Hold(self.reason, self.message, None if self.error else self.change)


def relative(span: timedelta) -> str:
    """A wait as the MaintenanceWindow condition says it: rounded up to the minute,
    days and hours when a day or more (so the message changes at most once a minute,
    and once an hour while days away).

    >>> relative(timedelta(hours=3, minutes=11, seconds=1)), relative(timedelta(seconds=5))
    ('in 3h12m', 'in 1m')
    >>> relative(timedelta(days=2, hours=4, minutes=59)), relative(timedelta(hours=2))
    ('in 2d4h', 'in 2h')
    """
    minutes = max(1, math.ceil(span.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"in {days}d{hours}h" if hours else f"in {days}d"
    if hours:
        return f"in {hours}h{minutes}m" if minutes else f"in {hours}h"
    return f"in {minutes}m"


def compile_windows(specs: Sequence[MaintenanceWindow]) -> tuple[Window, ...]:
    """The windows of `specs`, checked; WindowError names the first that is wrong.

    >>> spec = MaintenanceWindow.model_validate(
    ...     {"name": "nightly", "cron": "0 2 * * *", "duration": "PT4H",
    ...      "timeZone": "Europe/Berlin"})
    >>> compile_windows([spec])[0].label
    "window 'nightly'"
    >>> compile_windows([spec.model_copy(update={"time_zone": "Europe/Berln"})])
    Traceback (most recent call last):
    ...
    galleon.core.windows.WindowError: maintenanceWindows[0].timeZone: 'Europe/Berln' is not ...
    """
    return tuple(_compiled(index, spec) for index, spec in enumerate(specs))


def _compiled(index: int, spec: MaintenanceWindow) -> Window:
    where = f"maintenanceWindows[{index}]"
    kind = "deny window" if spec.deny else "window"
    label = f"{kind} {spec.name!r}" if spec.name else ("deny window " if spec.deny else "") + where
    zone = _zone(where, spec.time_zone)
    duration = _duration(where, spec.duration)
    if (spec.rrule is None) == (spec.cron is None):
        raise WindowError(f"{where}: must set exactly one of rrule and cron")
    recurrence: _Recurrence
    if spec.rrule is not None:
        anchor = _anchor(where, spec.start)
        recurrence = _rrule(f"{where}.rrule", spec.rrule, anchor, zone, spec.start is not None)
    else:
        if spec.start is not None:
            raise WindowError(f"{where}.start: applies to rrule only (cron has no start)")
        recurrence = _cron(f"{where}.cron", spec.cron or "")
    return Window(label, spec.deny, duration, zone, recurrence)


def _zone(where: str, name: str) -> ZoneInfo:
    try:
        if name in _NOT_ZONES:
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise WindowError(
            f"{where}.timeZone: {name!r} is not an IANA time zone name (e.g. "
            "'Europe/Berlin', 'America/New_York', 'UTC')"
        ) from None


def _duration(where: str, text: str) -> timedelta:
    if not is_iso8601_duration(text):
        raise WindowError(f"{where}.duration: {text!r} is not an ISO 8601 duration (e.g. PT4H)")
    seconds = duration_seconds(text)
    if not WINDOW_DURATION_MIN_SECONDS <= seconds <= WINDOW_DURATION_MAX_SECONDS:
        raise WindowError(
            f"{where}.duration: {text!r} must be at least PT1M and at most "
            f"P{WINDOW_DURATION_MAX_SECONDS // 86400}D"
        )
    return timedelta(seconds=seconds)


def _anchor(where: str, start: str | None) -> datetime:
    if start is None:
        return DEFAULT_ANCHOR
    try:
        moment = datetime.fromisoformat(start)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is not None:
        raise WindowError(
            f"{where}.start: {start!r} must be a local date and time without an offset, "
            "e.g. 2026-01-03T02:00:00 (it is read in the window's timeZone)"
        )
    return moment.replace(microsecond=0)


def _rrule(where: str, text: str, anchor: datetime, zone: ZoneInfo, started: bool) -> _RRule:
    """The RRULE `text` (RFC 5545 3.3.10, with or without "RRULE:"), its DTSTART the
    local `anchor`. UNTIL is a local date-time, or a UTC one ending in Z (RFC 5545:
    UTC when DTSTART has a zone), converted to the zone's wall clock."""
    body = text.strip()
    if body[:6].upper() == "RRULE:":
        body = body[6:]
    parts: dict[str, str] = {}
    for part in body.split(";"):
        key, equals, value = part.partition("=")
        key = key.strip().upper()
        if not equals or not key or not value.strip():
            raise WindowError(f"{where}: {part!r} is not NAME=VALUE in {text!r}")
        if key in _REFUSED_PARTS:
            raise WindowError(f"{where}: {_REFUSED_PARTS[key]}")
        if key not in _RRULE_PARTS:
            raise WindowError(f"{where}: unknown rule part {key!r} in {text!r}")
        if key in parts:
            raise WindowError(f"{where}: {key} is given twice in {text!r}")
        parts[key] = value.strip().upper()
    frequency = parts.get("FREQ", "")
    if frequency not in _FREQUENCIES:
        raise WindowError(
            f"{where}: FREQ must be one of {', '.join(_FREQUENCIES)} (a window opens at most "
            f"hourly), got {frequency or 'none'}"
        )
    if frequency == "WEEKLY" and "BYDAY" not in parts and not started:
        raise WindowError(f"{where}: FREQ=WEEKLY needs BYDAY (or a start that gives the day)")
    until = None
    if "UNTIL" in parts:
        until = _until(where, parts["UNTIL"], zone)
        parts["UNTIL"] = until.strftime("%Y%m%dT%H%M%S")
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or not 1 <= int(interval) <= 1000:
        raise WindowError(f"{where}: INTERVAL must be a whole number from 1 to 1000")
    try:
        rule = rrulestr(";".join(f"{k}={v}" for k, v in parts.items()), dtstart=anchor)
        # Why a probe: python-dateutil looks for an occurrence up to the year 9999
        # before it gives up, so a rule that never opens is refused here, in 30 years.
        probe = _rebased(anchor, frequency, int(interval), PROBE_FROM)
        opens = next(iter(rule.replace(dtstart=probe, until=None)), None)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as error:
        raise WindowError(f"{where}: {text!r} is not a valid RRULE: {error}") from None
    if opens is None:
        raise WindowError(f"{where}: {text!r} never opens (no date matches all its parts)")
    return _RRule(rule, frequency, int(interval), anchor, until)


def _until(where: str, value: str, zone: ZoneInfo) -> datetime:
    match = _UNTIL.match(value)
    if match is None or match.group(2) is None:
        raise WindowError(
            f"{where}: UNTIL must be a date-time such as 20261231T235959Z (UTC) or "
            f"20261231T235959 (local), got {value!r}"
        )
    try:
        moment = datetime.strptime(match.group(1) + match.group(3), "%Y%m%d%H%M%S")
    except ValueError:
        raise WindowError(f"{where}: UNTIL {value!r} is not a date-time") from None
    if match.group(4):
        moment = moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    return moment


def _cron(where: str, expression: str) -> _Cron:
    fields = expression.split()
    if len(fields) != 5:
        raise WindowError(
            f"{where}: {expression!r} must have five fields (minute hour day-of-month month "
            "day-of-week)"
        )
    if _HASHED_OR_RANDOM.search(expression):
        raise WindowError(f"{where}: hashed (H) and random (R) fields are not supported")
    try:
        croniter(" ".join(fields), DEFAULT_ANCHOR)
    except (CroniterError, ValueError, KeyError, IndexError) as error:
        raise WindowError(f"{where}: {expression!r} is not a cron expression: {error}") from None
    return _Cron(" ".join(fields))


def _rebased(anchor: datetime, frequency: str, interval: int, lo: datetime) -> datetime:
    """The latest DTSTART at or before `lo` that is the anchor moved by whole rule
    periods (INTERVAL of them): the rule's occurrences from it on are the same.

    >>> _rebased(datetime(2000, 1, 1), "WEEKLY", 2, datetime(2026, 3, 29, 12))
    datetime.datetime(2026, 3, 21, 0, 0)
    >>> _rebased(datetime(2000, 1, 31, 2), "MONTHLY", 1, datetime(2026, 3, 1))
    datetime.datetime(2026, 1, 31, 2, 0)
    """
    if lo <= anchor:
        return anchor
    steps = {"HOURLY": timedelta(hours=1), "DAILY": _DAY, "WEEKLY": timedelta(weeks=1)}
    if frequency in steps:
        step = steps[frequency] * interval
        return anchor + step * ((lo - anchor) // step)
    months = 12 if frequency == "YEARLY" else 1
    count = ((lo.year - anchor.year) * 12 + lo.month - anchor.month) // (months * interval)
    for periods in range(count, -1, -1):  # a day that some months lack: go back
        total = anchor.month - 1 + periods * months * interval
        try:
            moved = anchor.replace(year=anchor.year + total // 12, month=total % 12 + 1)
        except ValueError:
            continue
        if moved <= lo:
            return moved
    return anchor


def _instant(local: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in `zone` as an instant (RFC 5545 3.3.5: in a gap, the
    offset before it; twice, the first): zoneinfo's fold=0.

    >>> berlin = ZoneInfo("Europe/Berlin")
    >>> _instant(datetime(2026, 3, 29, 2, 30), berlin).isoformat()
    '2026-03-29T01:30:00+00:00'
    >>> _instant(datetime(2026, 10, 25, 2, 30), berlin).isoformat()
    '2026-10-25T00:30:00+00:00'
    """
    return local.replace(tzinfo=zone, fold=0).astimezone(UTC)


def _wall(moment: datetime, offset: timedelta) -> datetime:
    """`moment` (an instant) shifted by `offset`, as a naive time to compare with local
    starts."""
    return (moment.astimezone(UTC) + offset).replace(tzinfo=None)


class _Search:
    """One evaluation: the starts it examines are counted against MAX_STARTS, and the
    zones' offsets it samples are kept."""

    def __init__(self) -> None:
        self.starts = 0
        self.offsets: dict[tuple[str, int], timedelta] = {}

    def spread(self, zone: ZoneInfo, lo: datetime, hi: datetime) -> tuple[timedelta, timedelta]:
        """The smallest and largest UTC offset of `zone` between the instants `lo` and
        `hi` (sampled hourly: no offset lasts less than an hour)."""
        seen = []
        for hour in range(math.floor(lo.timestamp() / 3600), math.ceil(hi.timestamp() / 3600) + 1):
            key = (zone.key, hour)
            if key not in self.offsets:
                moment = datetime.fromtimestamp(hour * 3600, UTC).astimezone(zone)
                self.offsets[key] = moment.utcoffset() or timedelta(0)
            seen.append(self.offsets[key])
        return min(seen), max(seen)

    def instants(self, window: Window, lo: datetime, hi: datetime) -> list[datetime]:
        """The instants in [lo, hi) at which `window` opens, in order: its local starts
        between lo and hi on any offset the zone has around them, each read as an
        instant (a start in a gap may come after a later one: hence the sort)."""
        low, high = self.spread(window.zone, lo - _DAY, hi + _DAY)
        found = []
        for local in window.recurrence.starts(_wall(lo, low), _wall(hi, high)):
            self._count(window)
            instant = _instant(local, window.zone)
            if lo <= instant < hi:
                found.append(instant)
        return sorted(found)

    def covering(self, window: Window, moment: datetime) -> datetime | None:
        """The end of `window`'s latest opening that covers `moment` (start <= moment <
        end), or None: its newest start in (moment - duration, moment]."""
        low, high, span = moment - window.duration + _EARLIEST, moment + _EARLIEST, _FIRST_CHUNK
        while high > low:
            begin = max(low, high - span)
            found = self.instants(window, begin, high)
            if found:
                return found[-1] + window.duration
            high, span = begin, min(_CHUNK, span * 2)
        return None

    def next_start(self, window: Window, after: datetime, limit: datetime) -> datetime | None:
        """The first instant after `after` (strictly), before `limit`, at which
        `window` opens."""
        cursor, span = after + _EARLIEST, _FIRST_CHUNK
        while cursor < limit:
            end = min(limit, cursor + span)
            found = self.instants(window, cursor, end)
            if found:
                return found[0]
            if span < _CHUNK:
                cursor, span = end, span * 2
                continue
            # Why the jump: a rule that opens yearly need not be walked two days at a time.
            low, _ = self.spread(window.zone, end - _DAY, end + _DAY)
            starts = window.recurrence.starts(_wall(end, low), _wall(limit, _WIDEST_OFFSET))
            first = next(starts, None)
            if first is None:
                return None
            self._count(window)
            cursor = max(end, _instant(first, window.zone) - _DAY)
        return None

    def _count(self, window: Window) -> None:
        self.starts += 1
        if self.starts > MAX_STARTS:
            raise WindowError(
                f"{window.label} opens too often to evaluate: more than {MAX_STARTS} starts "
                "examined in one pass"
            )


def evaluate(windows: Sequence[Window], now: datetime) -> Verdict:
    """Whether a batch may start at `now` under `windows` (the module's rules).

    A nightly window in Berlin, 02:00 for 4 hours, seen on the afternoon before the
    clocks go forward (2026-03-29, 02:00 CET becomes 03:00 CEST):

    >>> nightly = compile_windows([MaintenanceWindow.model_validate(
    ...     {"name": "nightly", "rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=0",
    ...      "duration": "PT4H", "timeZone": "Europe/Berlin"})])
    >>> closed = evaluate(nightly, datetime(2026, 3, 28, 14, 0, tzinfo=UTC))
    >>> closed.allowed, closed.reason
    (False, 'OutsideMaintenanceWindow')
    >>> for part in closed.message.split(": "):
    ...     print(part)
    outside maintenance windows
    next opens 2026-03-29T03:00:00+02:00 (in 11h, window 'nightly' opens)
    >>> opened = evaluate(nightly, datetime(2026, 3, 29, 1, 0, tzinfo=UTC))
    >>> print(opened.message)
    inside window 'nightly': batches may start until 2026-03-29T07:00:00+02:00 (in 4h)
    """
    if not windows:
        return Verdict(now, True, configured=False)
    search = _Search()
    limit = now + HORIZON
    allows = [w for w in windows if not w.deny]
    denies = [w for w in windows if w.deny]
    moment, deny_now, cause = now, None, None
    for _ in range(MAX_STEPS):
        denied = _latest_end(search, denies, moment)
        if denied is not None:
            if moment == now:
                deny_now = denied[1]
            moment, cause = denied
            if moment >= limit:
                return Verdict(now, False, deny_window=deny_now)
            continue
        if not allows or _latest_end(search, allows, moment) is not None:
            break
        opening = _earliest_start(search, allows, moment, limit)
        if opening is None:
            return Verdict(now, False, deny_window=deny_now)
        moment, cause = opening
    else:
        return Verdict(now, False, deny_window=deny_now, searched=moment)
    if moment > now:
        return Verdict(now, False, moment, deny_window=deny_now, next_window=cause)
    return _open_until(search, allows, denies, now, limit)


def _latest_end(
    search: _Search, windows: Sequence[Window], moment: datetime
) -> tuple[datetime, Window] | None:
    """The latest end of the openings of `windows` that cover `moment`, and whose."""
    ends = [(end, w) for w in windows if (end := search.covering(w, moment)) is not None]
    return max(ends, key=lambda found: found[0]) if ends else None


def _earliest_start(
    search: _Search, windows: Sequence[Window], after: datetime, limit: datetime
) -> tuple[datetime, Window] | None:
    """The earliest opening of `windows` after `after`, before `limit`, and whose."""
    starts = [
        (start, w) for w in windows if (start := search.next_start(w, after, limit)) is not None
    ]
    return min(starts, key=lambda found: found[0]) if starts else None


def _open_until(
    search: _Search,
    allows: Sequence[Window],
    denies: Sequence[Window],
    now: datetime,
    limit: datetime,
) -> Verdict:
    """Allowed at `now`: until the allow windows' openings, chained from now (one that
    starts before another ends continues it), end, or a deny window opens first."""
    open_window, end, chained = None, None, False
    if allows:
        found = _latest_end(search, allows, now)
        assert found is not None  # evaluate found `now` inside an allow window
        end, open_window = found
        for _ in range(MAX_CHAIN):
            following = _latest_end(search, allows, end) if end < limit else None
            if following is None or following[0] <= end:
                break
            end = following[0]
        else:
            chained = True
    denied = _earliest_start(search, denies, now, min(limit, end) if end else limit)
    if denied is not None:
        return Verdict(now, True, denied[0], open_window=open_window, next_window=denied[1])
    if end is not None and end >= limit:
        end, chained = None, False
    return Verdict(
        now, True, end, open_window=open_window, next_window=open_window, at_least=chained
    )


def holds_at(specs: Sequence[MaintenanceWindow]) -> Callable[[datetime], tuple[Hold, ...]]:
    """The windows' hold at any moment, compiled once: for a preview that replays an
    upgrade over time (`galleon.core.rollout.preview`'s `holds_at`).

    >>> at = holds_at([MaintenanceWindow.model_validate(
    ...     {"cron": "0 2 * * *", "duration": "PT1H", "timeZone": "UTC"})])
    >>> at(datetime(2026, 6, 1, 2, 30, tzinfo=UTC))
    ()
    >>> at(datetime(2026, 6, 1, 3, tzinfo=UTC))[0].until
    datetime.datetime(2026, 6, 2, 2, 0, tzinfo=datetime.timezone.utc)
    """
    try:
        compiled = compile_windows(specs)
    except WindowError as error:
        refused = str(error)
        return lambda moment: _held(Verdict(moment, False, error=refused))

    def at(moment: datetime) -> tuple[Hold, ...]:
        try:
            return _held(evaluate(compiled, moment))
        except WindowError as error:
            return _held(Verdict(moment, False, error=str(error)))

    return at


def _held(found: Verdict) -> tuple[Hold, ...]:
    hold = found.hold()
    return (hold,) if hold is not None else ()


def verdict(specs: Sequence[MaintenanceWindow], now: datetime) -> Verdict:
    """`evaluate(compile_windows(specs), now)`, a WindowError said as a Verdict that
    allows nothing (refuse, never guess)."""
    try:
        return evaluate(compile_windows(specs), now)
    except WindowError as error:
        return Verdict(now, False, error=str(error))
