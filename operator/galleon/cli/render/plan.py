"""What `kubectl galleon plan scaleset NAME` and `plan imagedefinition NAME` print,
from their documents (`galleon.cli.plan.plan_document`, `definition_document`, the
same ones `-o json` prints).

Rules of this module: those of `galleon.cli.render`; a view is a list of sections
(`PLAN_SECTIONS`, `DEFINITION_SECTIONS`), each a function of the document that
returns None when the document has nothing for it, so a section of data that does
not exist (release waves, quarantines, maintenance windows) prints nothing rather
than a placeholder. Both views print a wave the same way (`wave_line`); "in 4s" is
counted from the document's `now`, never from a clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from galleon.cli.outcome import arrow, format_duration
from galleon.cli.render.pieces import DASH, entries, fields, heading, section, state, text
from galleon.core import times
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


WAVE_STYLES = {"Waiting": "yellow", "Upgrading": "cyan", "Baking": "cyan", "Done": "green"}


def _until(moment: Any, now: Any) -> str:
    """` (in 4s)`, ` (due)` once passed, or nothing without both times."""
    at, base = times.parse_or_none(moment), times.parse_or_none(now)
    if at is None or base is None:
        return ""
    seconds = (at - base).total_seconds()
    return f" (in {format_duration(seconds)})" if seconds > 0 else " (due)"


def wave_line(wave: Mapping[str, Any], now: Any = None) -> Text:
    """One wave: number and name, regions, state and its times.

    >>> wave_line({"wave": 2, "regions": ["west", "south"], "state": "Waiting",
    ...            "opensAt": "2026-12-02T18:30:06Z"}, "2026-12-02T18:30:02Z").plain
    'wave 2: west, south — Waiting, opens earliest 2026-12-02T18:30:06Z (in 4s)'
    >>> wave_line({"wave": 1, "name": "canary", "regions": ["east"], "state": "Baking",
    ...            "bakeTime": "PT6S", "upgradedAt": "2026-12-02T18:30:00Z"}).plain
    'wave 1 (canary): east — Baking, upgraded 2026-12-02T18:30:00Z, bake 6s'
    """
    name = f" ({wave['name']})" if wave.get("name") else ""
    regions = ", ".join(str(r) for r in wave.get("regions") or []) or DASH
    wave_state = wave.get("state")
    parts = []
    if wave.get("releasedAt"):
        parts.append(f"opened {wave['releasedAt']}")
    elif wave.get("opensAt"):
        parts.append(f"opens earliest {wave['opensAt']}{_until(wave['opensAt'], now)}")
    if wave.get("upgradedAt"):
        parts.append(f"upgraded {wave['upgradedAt']}")
    bake = times.duration(str(wave.get("bakeTime") or ""), timedelta(0)).total_seconds()
    if wave_state in ("Upgrading", "Baking") and bake:
        parts.append(f"bake {format_duration(bake)}")
    return Text.assemble(
        f"wave {wave.get('wave')}{name}: {regions} — ",
        (str(wave_state or "not released"), WAVE_STYLES.get(str(wave_state), "dim")),
        *((", " + ", ".join(parts),) if parts else ()),
    )


def _message(value: Any) -> Text | None:
    return text(f"  {value}", "dim") if value else None


def waves_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The ScaleSet's region in the definition's release (document key `release`), then
    every wave (`waves`), its own marked. Printed only when the definition has waves."""
    release, found = section(document, "release"), entries(document, "waves")
    if not release and not found:
        return None
    now = document.get("now")
    here = f"{release.get('region') or DASH}, wave {release.get('wave') or DASH}"
    released = f"{release.get('version') or 'nothing'} released"
    rows: list[tuple[str, RenderableType]] = [
        ("releasing", text(release.get("releasing"))),
        ("region", text(f"{here}: {released}")),
    ]
    if release.get("pendingVersion"):
        opens = release.get("opensAt")
        when = f", opens earliest {opens}{_until(opens, now)}" if opens else ""
        rows.append(("pending", text(f"{release['pendingVersion']}{when}", "yellow")))
    own = next((w for w in found if w.get("wave") == release.get("wave")), {})
    if release.get("message") and release["message"] != own.get("message"):
        rows.append(("why", text(release["message"])))
    lines: list[RenderableType] = [heading("WAVES"), fields(rows)]
    for wave in found:
        mine = release.get("wave") is not None and wave.get("wave") == release.get("wave")
        line = wave_line(wave, now)
        lines.append(Text.assemble(line, ("  ← here", "bold")) if mine else line)
        message = _message(wave.get("message"))
        if message is not None:
            lines.append(message)
    return Group(*lines)


def quarantine_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The quarantined versions that concern the ScaleSet (document key `quarantined`)."""
    found = entries(document, "quarantined")
    if not found:
        return None
    lines = [
        Text.assemble(
            (str(q.get("version") or DASH), "red"),
            f": {q.get('effect') or DASH}",
            (f" ({q['message']})" if q.get("message") else "", "dim"),
        )
        for q in found
    ]
    return Group(heading("QUARANTINED"), *lines)


def maintenance_windows_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The maintenance windows (document key `maintenanceWindows`). Printed only when
    the document has windows."""
    return _listed(document, "maintenanceWindows", "MAINTENANCE WINDOWS")


PLAN_SECTIONS: tuple[Section, ...] = (
    summary_section,
    batches_section,
    waves_section,
    quarantine_section,
    maintenance_windows_section,
)
"""The view, in order; a section that returns None is left out."""


def _view(sections: tuple[Section, ...], document: Mapping[str, Any]) -> RenderableType:
    parts: list[RenderableType] = []
    for render_section in sections:
        found = render_section(document)
        if found is not None:
            parts.extend([Text(""), found] if parts else [found])
    return Group(*parts)


def plan_view(document: Mapping[str, Any]) -> RenderableType:
    """Everything `plan scaleset NAME` prints, section after section."""
    return _view(PLAN_SECTIONS, document)


# -- plan imagedefinition NAME --------------------------------------------------------------


def definition_summary_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The title, the version being released and which ScaleSets were seen."""
    found = section(document, "imageDefinition")
    title = Text.assemble(
        ("Plan for ImageDefinition ", "bold"),
        (str(found.get("name") or DASH), "bold cyan"),
        f" in {found.get('namespace') or DASH} at {document.get('now') or DASH}",
    )
    release, listed = section(document, "release"), section(document, "scaleSetsListed")
    releasing = text(release.get("version") or "nothing")
    if not release.get("inWaves"):
        releasing = text(
            "no release waves: a version is latest in a region as soon as it is replicated there",
            "dim",
        )
    count = len(entries(document, "scaleSets"))
    where = "in the namespaces you may list"
    if not listed.get("allNamespaces", True):
        where = f"in namespace {listed.get('namespace') or DASH} only"
    rows: list[tuple[str, RenderableType]] = [
        ("releasing", releasing),
        ("latest", text(release.get("latestVersion"))),
        ("scalesets", text(f"{count} following it {where}")),
    ]
    if listed.get("message"):
        rows.append(("", text(f"listing across namespaces: {listed['message']}", "yellow")))
    if release.get("statusNote"):
        rows.append(("status", text(release["statusNote"], "yellow")))
    return Group(title, fields(rows))


def _scaleset_line(scaleset: Mapping[str, Any]) -> Text:
    """`team-a/web  latest  1.0.0 → 1.0.2  RollingForward batch 2 of 5 (Waiting)`."""
    name = f"{scaleset.get('namespace') or DASH}/{scaleset.get('name') or DASH}"
    current, target = scaleset.get("currentVersion"), scaleset.get("targetVersion")
    versions = arrow(current, target) if target and target != current else (current or DASH)
    upgrade = scaleset.get("upgrade") or {}
    said: list[Any] = [f"    {name}  follows {scaleset.get('follows') or DASH}  runs {versions}"]
    if upgrade:
        batch = f" batch {upgrade['batch']} of {upgrade['of']}" if upgrade.get("batch") else ""
        phase = f" ({upgrade['phase']})" if upgrade.get("phase") else ""
        said.extend(
            [
                f"  upgrade {arrow(upgrade.get('fromVersion'), upgrade.get('toVersion'))} ",
                state(upgrade.get("state")),
                f"{batch}{phase}",
            ]
        )
    if scaleset.get("waitingFor"):
        said.append((f"  {scaleset['waitingFor']} waits", "yellow"))
    return Text.assemble(*said)


def _region_line(region: Mapping[str, Any], now: Any, said_of_wave: Any = None) -> Text:
    """`  west: 1.0.0 released, 1.0.2 pending` (and when its wave opens, unless its wave's
    line said it: `said_of_wave`)."""
    said = f"  {region.get('region')}: {region.get('version') or 'nothing'} released"
    if region.get("pendingVersion"):
        opens = region.get("opensAt")
        shown = opens and opens != said_of_wave
        when = f", opens earliest {opens}{_until(opens, now)}" if shown else ""
        return Text.assemble(said, (f", {region['pendingVersion']} pending{when}", "yellow"))
    return Text(said)


def definition_waves_section(document: Mapping[str, Any]) -> RenderableType | None:
    """Each wave in order (or, without waves, each region) with its regions and the
    ScaleSets following the definition there."""
    now = document.get("now")
    regions = {str(r.get("region")): r for r in entries(document, "regions")}
    scalesets = entries(document, "scaleSets")
    found = entries(document, "waves")
    groups: list[tuple[Mapping[str, Any] | None, list[str]]] = [
        (w, [str(r) for r in w.get("regions") or []]) for w in found
    ]
    if not found:
        groups = [(None, list(regions))]
    lines: list[RenderableType] = [heading("WAVES" if found else "REGIONS")]
    for wave, names in groups:
        if wave is not None:
            lines.append(wave_line(wave, now))
            message = _message(wave.get("message"))
            if message is not None:
                lines.append(message)
        for name in names:
            said_of_wave = (wave or {}).get("opensAt")
            lines.append(_region_line(regions.get(name) or {"region": name}, now, said_of_wave))
            lines.extend(_scaleset_line(s) for s in scalesets if s.get("region") == name)
    return Group(*lines)


def definition_quarantine_section(document: Mapping[str, Any]) -> RenderableType | None:
    """The quarantined versions, with the ScaleSet that faulted and since when."""
    found = entries(document, "quarantinedVersions")
    if not found:
        return None
    lines = [
        Text.assemble(
            (str(q.get("version") or DASH), "red"),
            f" since {q.get('since') or DASH}: scaleset {q.get('scaleSet') or DASH} faulted",
            (f": {q['message']}" if q.get("message") else "", "dim"),
        )
        for q in found
    ]
    return Group(heading("QUARANTINED"), *lines)


DEFINITION_SECTIONS: tuple[Section, ...] = (
    definition_summary_section,
    definition_waves_section,
    definition_quarantine_section,
)
"""The view of `plan imagedefinition NAME`, in order."""


def definition_view(document: Mapping[str, Any]) -> RenderableType:
    """Everything `plan imagedefinition NAME` prints, section after section."""
    return _view(DEFINITION_SECTIONS, document)
