"""What `kubectl galleon` shows of the image builder: one ImageBuild in detail (`get
imagebuild NAME`), the list's columns (`get imagebuilds`) and the builds of an
ImageTemplate (`builds TEMPLATE`).

Rules of this module: those of `galleon.cli.render`; a digest in a table is cut to
`SHORT_DIGEST` hex digits (the detail view prints it whole), a message in a table to
`MESSAGE_WIDTH` characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from galleon.cli.outcome import build_duration, format_duration
from galleon.cli.render.pieces import (
    DASH,
    Column,
    age,
    conditions_table,
    entries,
    fields,
    format_bytes,
    heading,
    listing,
    section,
    state,
    table,
    text,
    timestamp,
    value_at,
)
from galleon.core import times

SHORT_DIGEST = 12
MESSAGE_WIDTH = 60
UNSTARTED_PHASE = "Pending"
"""The phase shown for a build whose status the builder has not written yet."""


# -- pieces -------------------------------------------------------------------------------


def short_digest(value: Any) -> str:
    """A digest as its algorithm and first `SHORT_DIGEST` hex digits, or a dash.

    >>> short_digest("sha256:" + "0123456789abcdef" * 4), short_digest(None)
    ('sha256:0123456789ab', '-')
    """
    if not value:
        return DASH
    algorithm, _, hexadecimal = str(value).partition(":")
    return f"{algorithm}:{hexadecimal[:SHORT_DIGEST]}" if hexadecimal else str(value)[:SHORT_DIGEST]


def truncate(value: Any, width: int = MESSAGE_WIDTH) -> str:
    """`value` on one line, cut to `width` characters with an ellipsis.

    >>> truncate("pushed 3 layers\\nto staging", 40), truncate("x" * 10, 6)
    ('pushed 3 layers to staging', 'xxxxx…')
    """
    line = " ".join(str(value or "").split())
    return line if len(line) <= width else line[: width - 1] + "…"


def duration(status: Mapping[str, Any], now: datetime) -> str:
    """How long the build took, or has been running (a dash before it started).

    >>> from datetime import UTC
    >>> duration({"startTime": "2026-11-23T13:40:00Z"}, datetime(2026, 11, 23, 13, 40, 45,
    ...     tzinfo=UTC))
    '45s'
    """
    took = build_duration(status)
    if took is not None:
        return took
    began = times.parse_or_none(status.get("startTime"))
    if began is None:
        return DASH
    return format_duration(max(0.0, (now - began).total_seconds()))


def newest_builds(builds: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Builds by creation, newest first; within one second (creation times are whole
    seconds) one not started yet, then the one started last, then by name.

    >>> [b["metadata"]["name"] for b in newest_builds([
    ...     {"metadata": {"name": "web-a", "creationTimestamp": "2026-11-23T13:00:00Z"}},
    ...     {"metadata": {"name": "web-b", "creationTimestamp": "2026-11-23T14:00:00Z"}}])]
    ['web-b', 'web-a']
    """

    def key(obj: Mapping[str, Any]) -> tuple[str, bool, str, str]:
        meta = section(obj, "metadata")
        started = times.parse_or_none(section(obj, "status").get("startTime"))
        return (
            timestamp(meta.get("creationTimestamp")),
            started is None,
            times.format(started) if started else "",
            str(meta.get("name") or ""),
        )

    return sorted(builds, key=key, reverse=True)


def _phase(obj: Mapping[str, Any]) -> Text:
    return state(section(obj, "status").get("phase") or UNSTARTED_PHASE)


def _version(obj: Mapping[str, Any]) -> Text:
    return text(section(section(obj, "status"), "imageVersion").get("version"))


def _digest(obj: Mapping[str, Any]) -> Text:
    return text(short_digest(section(obj, "status").get("outputDigest")))


# -- get imagebuilds, builds TEMPLATE -------------------------------------------------------

IMAGEBUILD_COLUMNS = (
    Column("TEMPLATE", value_at("spec.templateName")),
    Column("REASON", value_at("spec.reason")),
    Column("PHASE", _phase),
    Column("VERSION", _version),
    Column("DIGEST", _digest),
)
"""`get imagebuilds`: NAME TEMPLATE REASON PHASE VERSION DIGEST AGE."""


def build_columns(now: datetime) -> tuple[Column, ...]:
    """`builds TEMPLATE`, after NAME: REASON PHASE VERSION DURATION DIGEST AGE MESSAGE."""
    return (
        Column("REASON", value_at("spec.reason")),
        Column("PHASE", _phase),
        Column("VERSION", _version),
        Column("DURATION", lambda obj: text(duration(section(obj, "status"), now))),
        Column("DIGEST", _digest),
        Column(
            "AGE", lambda obj: text(age(section(obj, "metadata").get("creationTimestamp"), now))
        ),
        Column("MESSAGE", lambda obj: text(truncate(section(obj, "status").get("message")))),
    )


def builds_view(
    template_name: str,
    builds: Sequence[Mapping[str, Any]],
    template: Mapping[str, Any] | None,
    now: datetime,
) -> RenderableType:
    """The builds of one ImageTemplate, newest first, one line each (the message last:
    the one column that folds in a narrow terminal)."""
    parts: list[RenderableType] = []
    if builds:
        columns = build_columns(now)
        grid = table("NAME", *(column.header for column in columns))
        for column in grid.columns[:-1]:
            column.no_wrap = True
        for obj in newest_builds(builds):
            name = text(section(obj, "metadata").get("name"))
            grid.add_row(name, *(column.cell(obj) for column in columns))
        parts.append(grid)
    else:
        parts.append(Text(f"no builds of {template_name} yet", style="dim"))
    if template is None:
        parts.extend([Text(""), Text(f"imagetemplate {template_name} not found", style="yellow")])
    return Group(*parts)


def imagebuild_list(
    objects: Sequence[Mapping[str, Any]], now: datetime, all_namespaces: bool = False
) -> RenderableType:
    """One line per ImageBuild."""
    return listing(objects, IMAGEBUILD_COLUMNS, now, all_namespaces, "imagebuilds")


# -- get imagebuild NAME ------------------------------------------------------------------


def _template(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    generation = spec.get("templateGeneration") or status.get("templateGeneration")
    name = spec.get("templateName") or DASH
    return f"{name} (generation {generation})" if generation else str(name)


def _completed(status: Mapping[str, Any]) -> str:
    ended = timestamp(status.get("completionTime"))
    took = build_duration(status)
    return f"{ended} (took {took})" if took else ended


def _published(status: Mapping[str, Any]) -> str:
    published = section(status, "imageVersion")
    if not published:
        return DASH
    name, version = published.get("name") or DASH, published.get("version") or DASH
    return f"imageversion {name} (version {version})"


def steps_table(status: Mapping[str, Any]) -> RenderableType:
    """NAME, TYPE, PHASE, DURATION, LAYER, SIZE and MESSAGE of each step, in order."""
    steps = entries(status, "steps")
    if not steps:
        return Text("no steps reported yet", style="dim")
    grid = table("NAME", "TYPE", "PHASE", "DURATION", "LAYER", "SIZE", "MESSAGE")
    for column in grid.columns[:-1]:
        column.no_wrap = True
    for step in steps:
        seconds = step.get("durationSeconds")
        grid.add_row(
            text(step.get("name")),
            text(step.get("type")),
            state(step.get("phase") or UNSTARTED_PHASE),
            text(format_duration(float(seconds)) if seconds is not None else None),
            text(short_digest(step.get("layerDigest"))),
            text(format_bytes(step.get("sizeBytes"))),
            text(step.get("message")),
        )
    return grid


def imagebuild_view(obj: Mapping[str, Any]) -> RenderableType:
    """Everything `get imagebuild NAME` shows about one ImageBuild."""
    meta, spec, status = section(obj, "metadata"), section(obj, "spec"), section(obj, "status")
    title = Text.assemble(
        ("ImageBuild ", "bold"),
        (str(meta.get("name", DASH)), "bold cyan"),
        f" in {meta.get('namespace', DASH)}",
    )
    summary: list[tuple[str, RenderableType]] = [
        ("template", text(_template(spec, status))),
        ("reason", text(spec.get("reason"))),
        ("phase", _phase(obj)),
        ("started", text(timestamp(status.get("startTime")))),
        ("completed", text(_completed(status))),
    ]
    if status.get("source"):
        summary.append(("source", text(status["source"])))
    summary.extend(
        [
            ("source digest", text(status.get("sourceDigest"))),
            ("output digest", text(status.get("outputDigest"))),
            ("staging image", text(status.get("stagingImage"))),
            ("published", text(_published(status))),
        ]
    )
    if status.get("message"):
        failed = status.get("phase") == "Failed"
        summary.append(("message", text(status["message"], "red" if failed else "")))
    steps = entries(status, "steps")
    succeeded = sum(1 for step in steps if step.get("phase") == "Succeeded")
    parts: list[RenderableType] = [
        title,
        fields(summary),
        Text(""),
        heading("STEPS", text(f"{succeeded} of {len(steps)} succeeded", "dim"))
        if steps
        else heading("STEPS"),
        steps_table(status),
    ]
    inputs = entries(status, "inputs")
    if inputs:
        grid = table("NAME", "DIGEST")
        for item in inputs:
            grid.add_row(text(item.get("name")), text(item.get("digest")))
        parts.extend([Text(""), heading("INPUTS"), grid])
    conditions = entries(status, "conditions")
    if conditions:
        parts.extend([Text(""), heading("CONDITIONS"), conditions_table(conditions)])
    return Group(*parts)
