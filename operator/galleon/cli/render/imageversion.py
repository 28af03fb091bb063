"""What `kubectl galleon` shows of images: an ImageVersion's replication per region
(`get imageversion NAME`, `replication NAME`), the list's columns (`get
imageversions`) and the versions of an ImageDefinition (`versions DEFINITION`).

Rules of this module: those of `galleon.cli.render`; versions are ordered by
`galleon.core.versions`, the operator's own rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from galleon.cli.render.pieces import (
    DASH,
    Column,
    bar,
    entries,
    fields,
    format_bytes,
    heading,
    listing,
    section,
    state,
    state_at,
    table,
    text,
    timestamp,
    value_at,
)
from galleon.core.versions import InvalidVersion, version_key

# -- versions DEFINITION ----------------------------------------------------------------


def newest_first(versions: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """ImageVersions by `spec.version`, highest first, in numeric order; one whose
    version is not MAJOR.MINOR.PATCH (the API server refuses those) comes last.

    >>> [v["spec"].get("version") for v in newest_first(
    ...     [{"spec": {}}, {"spec": {"version": "0.9.12"}}, {"spec": {"version": "1.0.0"}}])]
    ['1.0.0', '0.9.12', None]
    """

    def key(obj: Mapping[str, Any]) -> tuple[bool, tuple[int, ...]]:
        try:
            return (True, version_key(str(section(obj, "spec").get("version") or "")))
        except InvalidVersion:
            return (False, ())

    return sorted(versions, key=key, reverse=True)


def _excluded(spec: Mapping[str, Any]) -> str:
    profile = section(spec, "publishingProfile")
    if profile.get("excludeFromLatest"):
        return "yes (all regions)"
    regions = [
        str(t.get("name")) for t in entries(profile, "targetRegions") if t.get("excludeFromLatest")
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
                for line in entries(section(section(v, "status"), "replicationStatus"), "summary")
            }
            | {
                str(t.get("name"))
                for v in versions
                for t in entries(section(section(v, "spec"), "publishingProfile"), "targetRegions")
            }
        )
        grid = table("VERSION", "NAME", "STATE", "REGIONS", *regions, "EXCLUDED FROM LATEST")
        for column in grid.columns[:-1]:
            column.no_wrap = True
        for obj in newest_first(versions):
            spec, status = section(obj, "spec"), section(obj, "status")
            replication = section(status, "replicationStatus")
            lines = {str(s.get("region")): s for s in entries(replication, "summary")}
            grid.add_row(
                text(spec.get("version")),
                text(section(obj, "metadata").get("name")),
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
    status = section(definition, "status")
    parts.append(
        heading(
            "LATEST",
            text(f"{status.get('latestVersion') or DASH} overall"),
            text(f"{status.get('versionCount', len(versions))} version(s)", "dim"),
        )
    )
    by_region = entries(status, "latestVersionByRegion")
    if by_region:
        grid = table("REGION", "LATEST VERSION")
        for line in by_region:
            grid.add_row(text(line.get("region")), text(line.get("version")))
        parts.append(grid)
    else:
        parts.append(Text("no version has completed replication to any region yet", style="dim"))
    return Group(*parts)


# -- get imageversion NAME, replication NAME ------------------------------------------------


def replication_view(obj: Mapping[str, Any]) -> RenderableType:
    """Per-region replication of one ImageVersion, with progress bars."""
    meta, spec, status = section(obj, "metadata"), section(obj, "spec"), section(obj, "status")
    replication = section(status, "replicationStatus")
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
            ("source", text(section(spec, "source").get("image"))),
            ("digest", text(status.get("sourceDigest"))),
            ("size", text(format_bytes(status.get("sizeBytes")))),
            ("repository", text(status.get("repository"))),
            ("published", text(timestamp(status.get("publishedDate")))),
        ]
    )
    lines = entries(replication, "summary")
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
    ready = next((c for c in entries(status, "conditions") if c.get("type") == "Ready"), None)
    parts: list[RenderableType] = [title, summary, Text(""), regions]
    if ready is not None and ready.get("status") != "True" and ready.get("message"):
        parts.extend([Text(""), text(f"Ready: {ready.get('reason')}: {ready['message']}")])
    return Group(*parts)


def _percent_bar(done: int) -> Text:
    return Text.assemble(bar(done, 100, width=16), f" {done:3d}%")


# -- get imageversions ------------------------------------------------------------------------

IMAGEVERSION_COLUMNS = (
    Column("DEFINITION", value_at("spec.imageDefinitionName")),
    Column("VERSION", value_at("spec.version")),
    Column("REPLICATION", state_at("status.replicationStatus.aggregatedState", "Unknown")),
    Column("REGIONS", value_at("status.replicationStatus.completedRegions")),
)
"""`get imageversions`: NAME DEFINITION VERSION REPLICATION REGIONS AGE."""


def imageversion_list(
    objects: Sequence[Mapping[str, Any]], now: datetime, all_namespaces: bool = False
) -> RenderableType:
    """One line per ImageVersion."""
    return listing(objects, IMAGEVERSION_COLUMNS, now, all_namespaces, "imageversions")
