"""The pieces every view of `kubectl galleon` is built from: literal text, coloured
states, progress bars, sizes, times, kubectl-like tables, and the list table of a kind
(`Column`, `listing`).

Rules of this module: the rules of `galleon.cli.render` (no I/O, no clock, cluster
text never parsed as markup, a dash for what is not written yet); times are parsed
and formatted by `galleon.core.times`, so the plugin reads and prints the grammar
the operator writes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from galleon.cli.outcome import format_duration
from galleon.core import times

BAR_WIDTH = 24
DASH = "-"
STATE_STYLES = {
    "Completed": "green",
    "Succeeded": "green",
    "True": "green",
    "Healthy": "green",
    "RollingForward": "cyan",
    "Replicating": "cyan",
    "InProgress": "cyan",
    "Resolving": "cyan",
    "Building": "cyan",
    "Pushing": "cyan",
    "Publishing": "cyan",
    "Running": "cyan",
    "Queued": "yellow",
    "Pending": "yellow",
    "Skipped": "yellow",
    "Cancelled": "yellow",
    "Removing": "yellow",
    "Unknown": "yellow",
    "Faulted": "red",
    "Failed": "red",
    "False": "red",
}


# -- reading objects ----------------------------------------------------------------


def section(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    """`obj[key]` when it is a mapping, else an empty one (a status not written yet)."""
    value = (obj or {}).get(key)
    return value if isinstance(value, Mapping) else {}


def entries(obj: Mapping[str, Any] | None, key: str) -> list[Mapping[str, Any]]:
    """The mappings in the list `obj[key]` (none when it is absent or not a list)."""
    value = (obj or {}).get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def dig(obj: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path, or None where a step is missing or not a mapping.

    >>> dig({"status": {"replicationStatus": {"completedRegions": "1/3"}}},
    ...     "status.replicationStatus.completedRegions")
    '1/3'
    >>> dig({"status": None}, "status.currentVersion") is None
    True
    """
    *steps, last = path.split(".")
    for step in steps:
        obj = section(obj, step)
    return obj.get(last)


# -- text ---------------------------------------------------------------------------


def text(value: Any, style: str = "") -> Text:
    """`value` as literal text (never markup); None and "" become a dash."""
    if value is None or value == "":
        return Text(DASH, style="dim")
    return Text(str(value), style=style)


def state(value: Any) -> Text:
    """A state or condition status, coloured by what it means."""
    return text(value, STATE_STYLES.get(str(value), ""))


def percent(done: int | float, total: int | float) -> int:
    """Whole percent of `done` in `total` (100 when there is nothing to do).

    >>> percent(4, 10), percent(0, 0), percent(1, 3)
    (40, 100, 33)
    """
    if total <= 0:
        return 100
    return int(100 * min(max(done, 0), total) // total)


def bar(done: int | float, total: int | float, width: int = BAR_WIDTH) -> Text:
    """A progress bar of `width` characters.

    >>> bar(1, 4, width=8).plain
    '██░░░░░░'
    """
    filled = width if total <= 0 else int(width * min(max(done, 0), total) // total)
    style = "green" if total <= 0 or done >= total else "cyan"
    return Text.assemble(("█" * filled, style), ("░" * (width - filled), "dim"))


def progress(done: int, total: int, label: str = "", width: int = BAR_WIDTH) -> Text:
    """A bar followed by `done/total label (pct%)`.

    >>> progress(4, 10, "upgraded", width=10).plain
    '████░░░░░░  4/10 upgraded (40%)'
    """
    suffix = f"  {done}/{total}{' ' + label if label else ''} ({percent(done, total)}%)"
    return Text.assemble(bar(done, total, width), suffix)


def format_bytes(size: int | float | None) -> str:
    """Bytes in binary units.

    >>> [format_bytes(n) for n in (0, 512, 1536, 5 * 1024**3, None)]
    ['0 B', '512 B', '1.5 KiB', '5.0 GiB', '-']
    """
    if size is None:
        return DASH
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return DASH  # pragma: no cover - the loop always returns


# -- times ----------------------------------------------------------------------------


def timestamp(value: Any) -> str:
    """A timestamp as RFC 3339 UTC to the second, or a dash.

    >>> timestamp("2026-11-23T13:45:00.123+01:00"), timestamp(None), timestamp("soon")
    ('2026-11-23T12:45:00Z', '-', '-')
    """
    moment = times.parse_or_none(value)
    return times.format(moment) if moment else DASH


def age(value: Any, now: datetime) -> str:
    """How long ago `value` was, as kubectl prints ages (`45s`, `10m`, `2d3h`)."""
    moment = times.parse_or_none(value)
    if moment is None:
        return DASH
    return format_duration(max(0.0, (now - moment).total_seconds()))


def elapsed(start: Any, end: Any) -> str:
    """The time between two timestamps, or a dash."""
    began, ended = times.parse_or_none(start), times.parse_or_none(end)
    if began is None or ended is None:
        return DASH
    return format_duration(max(0.0, (ended - began).total_seconds()))


# -- layout ---------------------------------------------------------------------------


def table(*columns: str) -> Table:
    """A kubectl-like table: bold upper-case headers, no borders."""
    grid = Table(box=None, pad_edge=False, show_edge=False, header_style="bold", expand=False)
    for column in columns:
        grid.add_column(column, overflow="fold")
    return grid


def fields(rows: Iterable[tuple[str, RenderableType]]) -> Table:
    """Aligned `label  value` lines."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def heading(title: str, *rest: Text | str) -> Text:
    """A section title, optionally followed by a few words about it."""
    parts: list[Text | str] = [Text(title, style="bold underline")]
    for part in rest:
        parts.extend(["  ", part])
    return Text.assemble(*parts)


def to_text(renderable: RenderableType, width: int = 120) -> str:
    """What `renderable` prints, as plain text (for snapshots and tests)."""
    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def conditions_table(conditions: Sequence[Mapping[str, Any]]) -> RenderableType:
    """TYPE, STATUS, REASON, SINCE, MESSAGE of each condition, in the order written."""
    if not conditions:
        return Text("no conditions reported yet", style="dim")
    grid = table("TYPE", "STATUS", "REASON", "SINCE", "MESSAGE")
    for index in (0, 1, 3):
        grid.columns[index].no_wrap = True
    for item in conditions:
        grid.add_row(
            text(item.get("type")),
            state(item.get("status")),
            text(item.get("reason")),
            text(timestamp(item.get("lastTransitionTime"))),
            text(item.get("message")),
        )
    return grid


# -- the list of a kind -----------------------------------------------------------------

Cell = Callable[[Mapping[str, Any]], Text]
"""What one column shows of one object."""


@dataclass(frozen=True)
class Column:
    """One column of a kind's list, between NAME and AGE."""

    header: str
    cell: Cell


def value_at(path: str) -> Cell:
    """A cell showing the value at a dotted path (a dash when there is none).

    >>> value_at("spec.region")({"spec": {"region": "eastus2"}}).plain
    'eastus2'
    """
    return lambda obj: text(dig(obj, path))


def state_at(path: str, unset: str) -> Cell:
    """A cell showing the state at a dotted path, coloured; `unset` when it is empty.

    >>> state_at("status.replicationStatus.aggregatedState", "Unknown")({}).plain
    'Unknown'
    """
    return lambda obj: state(dig(obj, path) or unset)


def listing(
    objects: Sequence[Mapping[str, Any]],
    columns: Sequence[Column],
    now: datetime,
    all_namespaces: bool,
    plural: str,
) -> RenderableType:
    """One line per object as `kubectl get` prints them: NAMESPACE (with -A), NAME,
    the kind's columns, AGE; `No <plural> found.` for none."""
    if not objects:
        return Text(f"No {plural} found.", style="dim")
    headers = ["NAME", *(column.header for column in columns), "AGE"]
    grid = table(*(["NAMESPACE", *headers] if all_namespaces else headers))
    for obj in objects:
        meta = section(obj, "metadata")
        row = [
            text(meta.get("name")),
            *(column.cell(obj) for column in columns),
            text(age(meta.get("creationTimestamp"), now)),
        ]
        grid.add_row(*([text(meta.get("namespace")), *row] if all_namespaces else row))
    return grid
