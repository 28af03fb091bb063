"""What `kubectl galleon plan scaleset NAME` prints, from the plan document
(`galleon.cli.plan.plan_document`, the same one `-o json` prints).

Rules of this module: those of `galleon.cli.render`; the view is a list of sections
(`PLAN_SECTIONS`), each a function of the document that returns None when the
document has nothing for it, so a section of data that does not exist yet (release
waves, maintenance windows) prints nothing rather than a placeholder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from galleon.cli.outcome import arrow
from galleon.cli.render.pieces import DASH, entries, fields, heading, section, state, text
from galleon.core.rollout.notes import instances

Section = Callable[[Mapping[str, Any]], RenderableType | None]


def _starts(upgrade: Mapping[str, Any], name: str) -> Text:
    starts, message = upgrade.get("starts"), upgrade.get("message") or ""
    why = f": {message}" if message else ""
    if starts == "Running":
        return text(f"running since {upgrade.get('startTime') or DASH}", "cyan")
    if starts == "ByItself":
        return text(f"now, by itself ({upgrade.get('reason') or DASH})", "cyan")
    if starts == "OnRequest":
        return text(f"on request (kubectl galleon upgrade {name}){why}", "yellow")
    return text(f"no{why}" if why else "no", "dim")


def summary_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The title, then the upgrade: versions, mode, whether and by whom it starts, the
    planner's notes for now; or why the operator changes nothing at all."""
    scaleset = section(document, "scaleSet")
    name = str(scaleset.get("name") or DASH)
    title = Text.assemble(
        ("Plan for ScaleSet ", "bold"),
        (name, "bold cyan"),
        f" in {scaleset.get('namespace') or DASH} at {document.get('now') or DASH}",
    )
    refused = section(document, "refused")
    if refused:
        said = f"{refused.get('reason') or DASH}: {refused.get('message') or DASH}"
        return Group(title, text(f"the operator changes nothing on this ScaleSet: {said}", "red"))
    upgrade = section(document, "upgrade")
    automatic = "on" if upgrade.get("automaticOSUpgrades") else "off"
    versions = text(arrow(upgrade.get("fromVersion"), upgrade.get("toVersion")))
    if upgrade.get("fromRevision") == upgrade.get("toRevision"):
        versions = text(f"none: the fleet runs {upgrade.get('toVersion') or DASH}", "dim")
    rows: list[tuple[str, RenderableType]] = [
        ("upgrade", versions),
        ("mode", text(f"{upgrade.get('mode') or DASH}, automatic OS upgrades {automatic}")),
        ("starts", _starts(upgrade, name)),
    ]
    if upgrade.get("startedBy"):
        rows.append(("started by", text(upgrade["startedBy"])))
    waiting = section(upgrade, "waiting")
    if waiting:
        rows.append(
            ("waiting", text(f"{waiting.get('version')}: {waiting.get('message')}", "yellow"))
        )
    if upgrade.get("targetMessage"):
        rows.append(("target", text(upgrade["targetMessage"], "yellow")))
    for ignored in upgrade.get("ignoredControls") or []:
        rows.append(("ignored", text(ignored, "yellow")))
    notes = [str(n) for n in document.get("notes") or []]
    if notes:
        rows.append(("planner now", Group(*(text(n) for n in notes))))
    asked = [str(n) for n in document.get("notesOnRequest") or []]
    if asked and upgrade.get("starts") == "No":
        rows.append(("if started", Group(*(text(n) for n in asked))))
    return Group(title, fields(rows))


def batch_line(batch: Mapping[str, Any]) -> Text:
    """`batch 3 of 5: instances 4, 5 — earliest 2026-12-02T18:40:00Z` (the running batch:
    `— running since ...`).

    >>> batch_line({"number": 3, "of": 5, "instances": [4, 5],
    ...             "earliest": "2026-12-02T18:40:00Z"}).plain
    'batch 3 of 5: instances 4, 5 — earliest 2026-12-02T18:40:00Z'
    """
    members = instances(int(i) for i in batch.get("instances") or [])
    head = f"batch {batch.get('number')} of {batch.get('of')}: {members}"
    if "since" in batch:
        return Text.assemble(head, (f" — running since {batch['since']}", "cyan"))
    return Text(f"{head} — earliest {batch.get('earliest') or DASH}")


def batches_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The running batch, the batches to come and how the upgrade ends (None when no
    upgrade runs or starts)."""
    upgrade, outcome = section(document, "upgrade"), section(document, "outcome")
    if not outcome or upgrade.get("starts") == "No":
        return None
    batches = entries(document, "batches")
    running = section(document, "runningBatch")
    lines: list[RenderableType] = []
    if running:
        lines.append(batch_line(running))
    lines.extend(batch_line(b) for b in batches)
    if not lines:
        lines.append(text("no batch to start", "dim"))
    when = "if started now" if upgrade.get("starts") == "OnRequest" else "from now"
    result = outcome.get("result")
    ending = Text.assemble(
        "then ", state(result), f", earliest {outcome['at']}" if outcome.get("at") else ""
    )
    notes = [text(f"  {n}", "dim") for n in outcome.get("notes") or [] if n]
    return Group(
        heading("BATCHES", Text(when)),
        *lines,
        ending,
        *notes[-3:],
        text(f"assuming {document.get('assumes') or DASH}", "dim"),
    )


def _listed(document: Mapping[str, Any], key: str, title: str) -> RenderableType | None:
    """A section of `key`'s entries, one line each, when the document has any."""
    found = entries(document, key)
    if not found:
        return None
    lines = [text(", ".join(f"{k} {v}" for k, v in item.items())) for item in found]
    return Group(heading(title), *lines)


def waves_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The release waves (document key `waves`): their regions and earliest times.
    Printed only when the document has waves."""
    return _listed(document, "waves", "WAVES")


def maintenance_windows_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The maintenance windows (document key `maintenanceWindows`). Printed only when
    the document has windows."""
    return _listed(document, "maintenanceWindows", "MAINTENANCE WINDOWS")


PLAN_SECTIONS: tuple[Section, ...] = (
    summary_section,
    batches_section,
    waves_section,
    maintenance_windows_section,
)
"""The view, in order; a section that returns None is left out."""


def plan_view(document: Mapping[str, Any]) -> RenderableType:
    """Everything `plan scaleset NAME` prints, section after section."""
    parts: list[RenderableType] = []
    for render_section in PLAN_SECTIONS:
        found = render_section(document)
        if found is not None:
            parts.extend([Text(""), found] if parts else [found])
    return Group(*parts)
