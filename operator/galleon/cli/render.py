"""What `kubectl galleon` prints: pure functions from objects (dicts as the API returns
them, camelCase) to rich renderables.

Rules of this module:
- No I/O and no clock: a function that shows ages takes `now`.
- Text that comes from the cluster (names, messages, reasons) is never parsed as
  rich markup: it goes through `text()`, so a message with "[brackets]" prints as is.
- A field the operator has not written yet shows as "-", never as an error: the
  plugin must work on any status, including an empty one.
- Progress bars are plain characters (█ done, ░ left) so they read the same in a
  terminal, a CI log or a test's `export_text()`.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from galleon.cli.outcome import arrow, format_duration

BAR_WIDTH = 24
DASH = "-"
STATE_STYLES = {
    "Completed": "green",
    "True": "green",
    "Healthy": "green",
    "RollingForward": "cyan",
    "Replicating": "cyan",
    "InProgress": "cyan",
    "Queued": "yellow",
    "Cancelled": "yellow",
    "Removing": "yellow",
    "Unknown": "yellow",
    "Faulted": "red",
    "Failed": "red",
    "False": "red",
}


# -- small pieces ----------------------------------------------------------------


def text(value: Any, style: str = "") -> Text:
    """`value` as literal text (never markup); None and "" become a dash."""
    if value is None or value == "":
        return Text(DASH, style="dim")
    return Text(str(value), style=style)


def state(value: Any) -> Text:
    """A state or condition status, coloured by what it means."""
    return text(value, STATE_STYLES.get(str(value), ""))


def _map(obj: Mapping[str, Any] | None, key: str) -> Mapping[str, Any]:
    value = (obj or {}).get(key)
    return value if isinstance(value, Mapping) else {}


def _list(obj: Mapping[str, Any] | None, key: str) -> list[Mapping[str, Any]]:
    value = (obj or {}).get(key)
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


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


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime (None when absent or unreadable)."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def timestamp(value: Any) -> str:
    """A timestamp as RFC 3339 UTC to the second (`2026-11-23T13:45:00Z`), or a dash."""
    moment = parse_time(value)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else DASH


def age(value: Any, now: datetime) -> str:
    """How long ago `value` was, as kubectl prints ages (`45s`, `10m`, `2d3h`)."""
    moment = parse_time(value)
    if moment is None:
        return DASH
    return format_duration(max(0.0, (now - moment).total_seconds()))


def elapsed(start: Any, end: Any) -> str:
    """The time between two timestamps, or a dash."""
    began, ended = parse_time(start), parse_time(end)
    if began is None or ended is None:
        return DASH
    return format_duration(max(0.0, (ended - began).total_seconds()))


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


# -- conditions --------------------------------------------------------------------


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


# -- ScaleSet ----------------------------------------------------------------------


def _image(spec: Mapping[str, Any]) -> str:
    reference = _map(spec, "imageReference")
    if not reference:
        return DASH
    return f"{reference.get('imageDefinitionName', DASH)}:{reference.get('version', DASH)}"


def _mode(spec: Mapping[str, Any]) -> str:
    policy = _map(spec, "upgradePolicy")
    automatic = _map(policy, "automaticOSUpgradePolicy").get("enableAutomaticOSUpgrade")
    mode = policy.get("mode") or "Manual"
    return f"{mode}, automatic OS upgrades {'on' if automatic else 'off'}"


def instances_table(status: Mapping[str, Any]) -> RenderableType:
    """Instances per version: how many, how many healthy, how many not (yet)."""
    rows = _list(status, "instancesByVersion")
    if not rows:
        return Text("no instances", style="dim")
    grid = table("VERSION", "INSTANCES", "HEALTHY", "NOT HEALTHY")
    for row in rows:
        instances, healthy = int(row.get("instances") or 0), int(row.get("healthy") or 0)
        grid.add_row(
            text(row.get("version")),
            text(instances),
            text(healthy, "green" if healthy == instances else ""),
            text(instances - healthy, "red" if instances > healthy else ""),
        )
    return grid


def _counters(progress_: Mapping[str, Any]) -> str:
    return (
        f"successful {progress_.get('successfulInstanceCount', 0)} · "
        f"failed {progress_.get('failedInstanceCount', 0)} · "
        f"in progress {progress_.get('inProgressInstanceCount', 0)} · "
        f"pending {progress_.get('pendingInstanceCount', 0)}"
    )


def upgrade_view(upgrade: Mapping[str, Any], capacity: int) -> RenderableType:
    """The latest rolling upgrade: code, versions, batch, progress bar and counters,
    error and rollback."""
    if not upgrade:
        return heading("ROLLING UPGRADE", Text("none yet", style="dim"))
    running = _map(upgrade, "runningStatus")
    code = running.get("code")
    counts = _map(upgrade, "progress")
    successful = int(counts.get("successfulInstanceCount") or 0)
    title = heading(
        "ROLLING UPGRADE",
        state(code),
        text(arrow(upgrade.get("fromVersion"), upgrade.get("toVersion"))),
    )
    rows: list[tuple[str, RenderableType]] = [
        (
            "started",
            text(
                f"{timestamp(running.get('startTime'))} by {upgrade.get('startedBy') or DASH}"
                f" (last action {running.get('lastAction') or DASH}"
                f" at {timestamp(running.get('lastActionTime'))})"
            ),
        ),
        ("batch", text(_batch(upgrade, code))),
        ("progress", progress(successful, capacity, "successful")),
        ("instances", text(_counters(counts))),
    ]
    if upgrade.get("cancelRequested") and code == "RollingForward":
        rows.append(("cancel", text("requested: the upgrade stops after this batch", "yellow")))
    error = _map(upgrade, "error")
    if error:
        message = f": {error['message']}" if error.get("message") else ""
        rows.append(("error", text(f"{error.get('code') or DASH}{message}", "red")))
    rollback = _map(upgrade, "rollbackInfo")
    if rollback or upgrade.get("rolledBackInstances"):
        rows.append(
            (
                "rollback",
                text(
                    f"{rollback.get('successfullyRolledbackInstanceCount', 0)} rolled back, "
                    f"{rollback.get('failedRolledbackInstanceCount', 0)} failed"
                    + (
                        f" (instances {_indexes(upgrade.get('rolledBackInstances'))})"
                        if upgrade.get("rolledBackInstances")
                        else ""
                    )
                ),
            )
        )
    return Group(title, fields(rows))


def _batch(upgrade: Mapping[str, Any], code: Any) -> str:
    line = f"{upgrade.get('currentBatch') or 0}/{upgrade.get('totalBatches') or 0}"
    if upgrade.get("phase"):
        line += f", phase {upgrade['phase']}"
    if upgrade.get("batchInstances") and code == "RollingForward":
        line += f", instances {_indexes(upgrade['batchInstances'])}"
    return line


def _indexes(values: Any) -> str:
    return ", ".join(str(v) for v in values or [])


def scaleset_view(obj: Mapping[str, Any]) -> RenderableType:
    """Everything `get scaleset NAME` shows about one ScaleSet."""
    meta, spec, status = _map(obj, "metadata"), _map(obj, "spec"), _map(obj, "status")
    capacity = int(spec.get("capacity") or status.get("replicas") or 0)
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    summary: list[tuple[str, RenderableType]] = [
        ("region", text(spec.get("region"))),
        ("image", text(_image(spec))),
        (
            "capacity",
            text(
                f"{capacity} ({status.get('readyReplicas', 0)} ready, "
                f"{status.get('replicas', 0)} exist)"
            ),
        ),
        ("current version", text(status.get("currentVersion"))),
        ("target version", text(status.get("targetVersion"))),
    ]
    if status.get("waitingForReplication"):
        summary.append(
            (
                "waiting for replication",
                text(f"{status['waitingForReplication']} (not yet replicated here)", "yellow"),
            )
        )
    summary.append(("upgrade mode", text(_mode(spec))))
    if spec.get("paused"):
        summary.append(("paused", text("yes: no new batch starts until resumed", "yellow")))
    if generation is not None and observed != generation:
        summary.append(
            (
                "generation",
                text(f"{generation} (the operator has observed {observed or 'none'})", "yellow"),
            )
        )
    title = Text.assemble(
        ("ScaleSet ", "bold"),
        (str(meta.get("name", DASH)), "bold cyan"),
        f" in {meta.get('namespace', DASH)}",
    )
    return Group(
        title,
        fields(summary),
        Text(""),
        heading("INSTANCES"),
        instances_table(status),
        Text(""),
        upgrade_view(_map(status, "rollingUpgrade"), capacity),
        Text(""),
        heading("CONDITIONS"),
        conditions_table(_list(status, "conditions")),
    )


def _upgrade_cell(status: Mapping[str, Any]) -> Text:
    upgrade = _map(status, "rollingUpgrade")
    code = _map(upgrade, "runningStatus").get("code")
    if not code:
        return text(None)
    cell = state(code)
    if code == "RollingForward":
        cell.append(
            f" {arrow(upgrade.get('fromVersion'), upgrade.get('toVersion'))}"
            f" batch {upgrade.get('currentBatch') or 0}/{upgrade.get('totalBatches') or 0}"
        )
    return cell


def scaleset_list(
    objects: Sequence[Mapping[str, Any]], now: datetime, all_namespaces: bool = False
) -> RenderableType:
    """One line per ScaleSet, as `kubectl get` would print them."""
    if not objects:
        return Text("No scalesets found.", style="dim")
    columns = ["NAME", "REGION", "READY", "CURRENT", "TARGET", "UPGRADE", "AGE"]
    grid = table(*(["NAMESPACE", *columns] if all_namespaces else columns))
    for obj in objects:
        meta, spec, status = _map(obj, "metadata"), _map(obj, "spec"), _map(obj, "status")
        row = [
            text(meta.get("name")),
            text(spec.get("region")),
            text(f"{status.get('readyReplicas', 0)}/{spec.get('capacity', 0)}"),
            text(status.get("currentVersion")),
            text(status.get("targetVersion")),
            _upgrade_cell(status),
            text(age(meta.get("creationTimestamp"), now)),
        ]
        grid.add_row(*([text(meta.get("namespace")), *row] if all_namespaces else row))
    return grid


def _end(start: Any, end: Any) -> str:
    """The end time, as a time of day when it is the start's day (history stays narrow)."""
    began, ended = parse_time(start), parse_time(end)
    if ended is None:
        return DASH
    if began is not None and began.astimezone(UTC).date() == ended.astimezone(UTC).date():
        return ended.astimezone(UTC).strftime("%H:%M:%SZ")
    return timestamp(ended)


def history_view(obj: Mapping[str, Any]) -> RenderableType:
    """status.upgradeHistory of a ScaleSet, newest first: versions, who started it,
    when, the result, instance counters, rollbacks and the error code; then each
    error in full (codes are long: the table cuts them in a narrow terminal)."""
    history = _list(_map(obj, "status"), "upgradeHistory")
    if not history:
        return Text("no upgrade recorded yet", style="dim")
    grid = table(
        "FROM", "TO", "BY", "START", "END", "RESULT", "OK", "FAILED", "ROLLED BACK", "ERROR"
    )
    for column in grid.columns:
        column.no_wrap = True
    # The error code takes the room left (the table spans the console) and is cut
    # with an ellipsis when there is not enough; ERRORS below has it in full.
    grid.expand = True
    grid.columns[-1].ratio = 1
    grid.columns[-1].overflow = "ellipsis"
    errors: list[Text] = []
    for entry in history:
        counts = _map(entry, "progress")
        failed = int(counts.get("failedInstanceCount") or 0)
        rollback = _map(entry, "rollbackInfo")
        rolled: str | None = None
        if rollback:
            rolled = str(rollback.get("successfullyRolledbackInstanceCount", 0))
            if rollback.get("failedRolledbackInstanceCount"):
                rolled += f" ({rollback['failedRolledbackInstanceCount']} failed)"
        error = _map(entry, "error")
        grid.add_row(
            text(entry.get("fromVersion")),
            text(entry.get("toVersion")),
            text(entry.get("startedBy")),
            text(timestamp(entry.get("startTime"))),
            text(_end(entry.get("startTime"), entry.get("endTime"))),
            state(entry.get("result")),
            text(counts.get("successfulInstanceCount", 0)),
            text(failed, "red" if failed else ""),
            text(rolled),
            text(error.get("code"), "red"),
        )
        if error:
            errors.append(
                Text.assemble(
                    f"{arrow(entry.get('fromVersion'), entry.get('toVersion'))} started "
                    f"{timestamp(entry.get('startTime'))}: ",
                    (str(error.get("code") or DASH), "red"),
                    f": {error['message']}" if error.get("message") else "",
                )
            )
    if not errors:
        return grid
    return Group(grid, Text(""), heading("ERRORS"), *errors)


# -- ImageVersion and ImageDefinition -----------------------------------------------


def _version_key(obj: Mapping[str, Any]) -> tuple[int, ...]:
    version = str(_map(obj, "spec").get("version") or "")
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (-1,)


def _excluded(spec: Mapping[str, Any]) -> str:
    profile = _map(spec, "publishingProfile")
    if profile.get("excludeFromLatest"):
        return "yes (all regions)"
    regions = [
        str(t.get("name")) for t in _list(profile, "targetRegions") if t.get("excludeFromLatest")
    ]
    return ", ".join(regions) if regions else "no"


def _region_cell(line: Mapping[str, Any] | None) -> Text:
    if line is None:
        return text(None)
    cell = state(line.get("state"))
    if line.get("state") != "Completed":
        cell.append(f" {line.get('progress', 0)}%")
    return cell


def versions_view(
    definition_name: str,
    versions: Sequence[Mapping[str, Any]],
    definition: Mapping[str, Any] | None,
) -> RenderableType:
    """The versions of one ImageDefinition (newest first), with each region's
    replication, then the latest version per region from the definition's status."""
    parts: list[RenderableType] = []
    if versions:
        regions = sorted(
            {
                str(line.get("region"))
                for v in versions
                for line in _list(_map(_map(v, "status"), "replicationStatus"), "summary")
            }
            | {
                str(t.get("name"))
                for v in versions
                for t in _list(_map(_map(v, "spec"), "publishingProfile"), "targetRegions")
            }
        )
        grid = table("VERSION", "NAME", "STATE", "REGIONS", *regions, "EXCLUDED FROM LATEST")
        for column in grid.columns[:-1]:
            column.no_wrap = True
        for obj in sorted(versions, key=_version_key, reverse=True):
            spec, status = _map(obj, "spec"), _map(obj, "status")
            replication = _map(status, "replicationStatus")
            lines = {str(s.get("region")): s for s in _list(replication, "summary")}
            grid.add_row(
                text(spec.get("version")),
                text(_map(obj, "metadata").get("name")),
                state(replication.get("aggregatedState") or "Unknown"),
                text(replication.get("completedRegions")),
                *(_region_cell(lines.get(region)) for region in regions),
                text(_excluded(spec)),
            )
        parts.append(grid)
    else:
        parts.append(Text(f"no versions of {definition_name}", style="dim"))
    parts.append(Text(""))
    if definition is None:
        parts.append(Text(f"imagedefinition {definition_name} not found", style="yellow"))
        return Group(*parts)
    status = _map(definition, "status")
    parts.append(
        heading(
            "LATEST",
            text(f"{status.get('latestVersion') or DASH} overall"),
            text(f"{status.get('versionCount', len(versions))} version(s)", "dim"),
        )
    )
    by_region = _list(status, "latestVersionByRegion")
    if by_region:
        grid = table("REGION", "LATEST VERSION")
        for line in by_region:
            grid.add_row(text(line.get("region")), text(line.get("version")))
        parts.append(grid)
    else:
        parts.append(Text("no version has completed replication to any region yet", style="dim"))
    return Group(*parts)


def replication_view(obj: Mapping[str, Any]) -> RenderableType:
    """Per-region replication of one ImageVersion, with progress bars."""
    meta, spec, status = _map(obj, "metadata"), _map(obj, "spec"), _map(obj, "status")
    replication = _map(status, "replicationStatus")
    title = Text.assemble(
        ("ImageVersion ", "bold"),
        (str(meta.get("name", DASH)), "bold cyan"),
        f" in {meta.get('namespace', DASH)}: {spec.get('imageDefinitionName', DASH)} "
        f"{spec.get('version', DASH)}",
    )
    summary = fields(
        [
            (
                "replication",
                Text.assemble(
                    state(replication.get("aggregatedState") or "Unknown"),
                    f" ({replication.get('completedRegions') or DASH} regions)",
                ),
            ),
            ("source", text(_map(spec, "source").get("image"))),
            ("digest", text(status.get("sourceDigest"))),
            ("size", text(format_bytes(status.get("sizeBytes")))),
            ("repository", text(status.get("repository"))),
            ("published", text(timestamp(status.get("publishedDate")))),
        ]
    )
    lines = _list(replication, "summary")
    regions: RenderableType
    if lines:
        grid = table("REGION", "STATE", "PROGRESS", "REPLICAS", "COPIED / TOTAL", "DETAILS")
        for column in grid.columns[:-1]:
            column.no_wrap = True
        for line in lines:
            total = line.get("bytesTotal") or 0
            copied = line.get("bytesCopied") or 0
            moved = f"{format_bytes(copied)} / {format_bytes(total)}" if total else DASH
            details = [str(line["details"])] if line.get("details") else []
            if line.get("bytesSkipped"):
                details.append(f"{format_bytes(line['bytesSkipped'])} already there")
            done = int(line.get("progress") or 0)
            grid.add_row(
                text(line.get("region")),
                state(line.get("state")),
                _percent_bar(done),
                text(f"{line.get('completedReplicas', 0)}/{line.get('desiredReplicas', 0)}"),
                text(moved),
                text("; ".join(details)),
            )
        regions = grid
    else:
        regions = Text("no replication reported yet", style="dim")
    ready = next((c for c in _list(status, "conditions") if c.get("type") == "Ready"), None)
    parts: list[RenderableType] = [title, summary, Text(""), regions]
    if ready is not None and ready.get("status") != "True" and ready.get("message"):
        parts.extend([Text(""), text(f"Ready: {ready.get('reason')}: {ready['message']}")])
    return Group(*parts)


def _percent_bar(done: int) -> Text:
    return Text.assemble(bar(done, 100, width=16), f" {done:3d}%")


def imageversion_list(
    objects: Sequence[Mapping[str, Any]], now: datetime, all_namespaces: bool = False
) -> RenderableType:
    """One line per ImageVersion."""
    if not objects:
        return Text("No imageversions found.", style="dim")
    columns = ["NAME", "DEFINITION", "VERSION", "REPLICATION", "REGIONS", "AGE"]
    grid = table(*(["NAMESPACE", *columns] if all_namespaces else columns))
    for obj in objects:
        meta, spec = _map(obj, "metadata"), _map(obj, "spec")
        replication = _map(_map(obj, "status"), "replicationStatus")
        row = [
            text(meta.get("name")),
            text(spec.get("imageDefinitionName")),
            text(spec.get("version")),
            state(replication.get("aggregatedState") or "Unknown"),
            text(replication.get("completedRegions")),
            text(age(meta.get("creationTimestamp"), now)),
        ]
        grid.add_row(*([text(meta.get("namespace")), *row] if all_namespaces else row))
    return grid
