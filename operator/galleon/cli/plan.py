"""`kubectl galleon plan scaleset NAME`: what the operator would do next with a
ScaleSet's upgrade (the batches with their instances and earliest start), and
`kubectl galleon plan imagedefinition NAME`: where a definition's release stands across
its waves and the ScaleSets following it; neither changes anything.

Rules of this module:
- Read only: GETs and LISTs (the ScaleSet, its pods by label, its Region, its
  ImageDefinition and that definition's ImageVersions, and for an image of another
  namespace its Gallery and, when the Gallery selects by label, this Namespace),
  the objects the controller's pass reads; never a write.
- The view is built as the controller builds its own (`galleon.core.observed`,
  `galleon.core.upgrade_trigger.upgrade_intent`, with the same refusals in the same
  order as `galleon.controllers.scaleset.reconcile`), and the batches come from
  `galleon.core.rollout.preview`, which replays the planner itself.
- When no upgrade starts by itself but a start request would start one
  (`kubectl galleon upgrade NAME`), the batches shown are those of that start, and
  the document says so (`upgrade.starts: OnRequest`).
- `plan_document` is the output (`-o json|yaml` prints it as is; the text view is
  rendered from it by `galleon.cli.render.plan_view`). Sections of data that does
  not exist for the ScaleSet (release waves, quarantines, maintenance windows) are
  left out: a key is present only when there is data for it.
- Release waves and quarantines are read from the ImageDefinition's status, where
  the operator writes what `galleon.core.waves` decided; the waves' regions are
  those of its spec, with the regions no wave lists joining the last wave
  (`galleon.core.waves.assign`). A ScaleSet's plan says why a version is quarantined
  as its own pass is told (`quarantine_reason`: another tenant's names never show).
- `plan imagedefinition NAME` reads the definition and LISTs ScaleSets across the
  namespaces (only the definition's own when that LIST is forbidden, and the
  document says so); `definition_document` is its output, rendered by
  `galleon.cli.render.plan.definition_view`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml
from lightkube.core.exceptions import ApiError
from pydantic import ValidationError

from galleon import clock
from galleon.api.gallery import SharingProfile
from galleon.api.region import endpoints_of
from galleon.api.scaleset import LATEST, ScaleSetSpec
from galleon.cli import render
from galleon.cli.cluster import CliError, Cluster, NotFound
from galleon.cli.console import out, reported
from galleon.cli.kinds import (
    GALLERY,
    IMAGEDEFINITION,
    IMAGEVERSION,
    NAMESPACE,
    POD,
    REGION,
    SCALESET,
)
from galleon.cli.options import ContextOption, KubeconfigOption, NamespaceOption, ScaleSetName
from galleon.cli.render.plan import definition_view
from galleon.core import instances as inst
from galleon.core import reasons, times, waves
from galleon.core import rollout as ro
from galleon.core.observed import (
    definition_namespace,
    observe,
    recorded_upgrade,
    release_of,
    target_revision,
    version_facts,
    version_images,
)
from galleon.core.sharing import needs_labels, sharing
from galleon.core.upgrade_trigger import Controls, UpgradeIntent, upgrade_intent
from galleon.core.versions import Resolution, is_newer, resolve
from galleon.core.waves import rollout_holds

ASSUMES = (
    "each replaced instance comes back on its target revision and is Ready at once, and "
    "nobody pauses, resumes or cancels: times are the earliest"
)


class Output(StrEnum):
    """`-o`: the plan as a document instead of the text view."""

    json = "json"
    yaml = "yaml"


OutputOption = Annotated[
    Output | None,
    typer.Option(
        "--output", "-o", help="Print the plan as a json or yaml document.", show_default=False
    ),
]


@dataclass(frozen=True)
class PlanInputs:
    """What the plan of one ScaleSet is made from, as the API returned it (dicts)."""

    scaleset: Mapping[str, Any]
    pods: Sequence[Mapping[str, Any]] = ()
    """The ScaleSet's pods (by its label)."""
    region: Mapping[str, Any] | None = None
    """The Region it names (None: it does not exist)."""
    definition: Mapping[str, Any] | None = None
    """Its ImageDefinition (None: it does not exist, or cannot be seen)."""
    versions: Sequence[Mapping[str, Any]] = ()
    """The ImageVersions of that definition, in the definition's namespace."""
    gallery: Mapping[str, Any] | None = None
    """The definition's Gallery, read only for an image of another namespace."""
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    """The ScaleSet's Namespace's labels, read only when that Gallery selects by label."""


@dataclass(frozen=True)
class Started:
    """An upgrade as the preview runs it: the intent it is planned with, and the replay."""

    intent: UpgradeIntent
    preview: ro.Preview


@dataclass(frozen=True)
class ScaleSetPlan:
    """What `plan scaleset NAME` found and foresees."""

    name: str
    namespace: str
    now: datetime
    spec: ScaleSetSpec | None = None
    refused: tuple[str, str] | None = None
    """(reason, message) when the operator changes nothing on this ScaleSet at all (as
    its pass refuses: invalid spec, no ImageDefinition, no Region, image not shared)."""
    resolution: Resolution | None = None
    target: str | None = None
    """The target revision (None: no version with a copy in the region)."""
    as_is: Started | None = None
    """The replay from what is observed (None when refused)."""
    requested: Started | None = None
    """The replay of a start request made now, when nothing starts without one and the
    operator would take one (it may still start nothing: a paused ScaleSet)."""
    definition: Mapping[str, Any] | None = None
    """The ImageDefinition as read: its release waves and where the release stands."""
    quarantined: Mapping[str, str] = field(default_factory=dict)
    """Quarantined version → why, as this ScaleSet's pass is told (`quarantine_reason`)."""

    @property
    def on_request(self) -> Started | None:
        """The replay of a start request, when it starts an upgrade."""
        if self.requested is None or self.requested.preview.outcome == "Idle":
            return None
        return self.requested

    @property
    def shown(self) -> Started | None:
        """The replay whose batches are shown."""
        return self.on_request or self.as_is


# -- the plan, from the objects (pure) ---------------------------------------------------


def plan_of(inputs: PlanInputs, now: datetime) -> ScaleSetPlan:
    """The plan of one ScaleSet from the objects its pass reads, at `now`."""
    meta = inputs.scaleset.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    base = ScaleSetPlan(name=name, namespace=namespace, now=now)
    try:
        spec = ScaleSetSpec.model_validate(inputs.scaleset.get("spec") or {})
        inst.check_model(spec)
    except (ValidationError, inst.InvalidModel) as error:
        return replace(base, refused=(reasons.INVALID_SPEC, str(error)))
    base = replace(base, spec=spec)
    source = definition_namespace(namespace, spec)
    definition_name = spec.image_reference.image_definition_name
    if source == namespace and inputs.definition is None:
        message = f'image definition "{definition_name}" does not exist in namespace {source}'
        return replace(base, refused=(reasons.DEFINITION_NOT_FOUND, message))
    if inputs.region is None:
        message = f"Region {spec.region} does not exist"
        return replace(base, refused=(reasons.REGION_NOT_FOUND, message))
    shared = sharing(
        namespace,
        source,
        definition_name,
        inputs.definition,
        inputs.gallery,
        inputs.namespace_labels,
    )
    if not shared.allowed:
        return replace(base, refused=(shared.reason, shared.message))
    endpoints, _ = endpoints_of(inputs.region.get("spec") or {})
    quarantined, released = release_of(inputs.definition, spec.region, namespace)
    resolution = resolve(
        [version_facts(v) for v in inputs.versions],
        spec.region,
        spec.image_reference.version,
        quarantined,
        released,
    )
    images = version_images(inputs.versions, spec.region, endpoints)
    target = target_revision(namespace, spec, resolution, images)
    instances = [i for i in map(observe, inputs.pods) if i is not None]
    recorded = recorded_upgrade(inputs.scaleset.get("status") or {}, now)
    controls = Controls.from_annotations(meta.get("annotations") or {})
    holds, cancel = rollout_holds(quarantined, recorded.rollout, resolution.target)

    def replay(asked: Controls) -> Started:
        intent = upgrade_intent(spec, instances, target, recorded, asked, now, holds)
        observation = replace(intent.observation(spec, instances, target), cancel=cancel)
        return Started(intent, ro.preview(observation, intent.rollout, intent.policy, now))

    as_is = replay(controls)
    requested = None
    if as_is.preview.outcome == "Idle":
        asked = replay(replace(controls, start_at=now))
        requested = asked if asked.intent.start_requested else None
    return replace(
        base,
        resolution=resolution,
        target=target,
        as_is=as_is,
        requested=requested,
        definition=inputs.definition,
        quarantined=quarantined,
    )


# -- release waves and quarantines, from the ImageDefinition (pure) ----------------------


def _status(definition: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (definition or {}).get("status") or {}


def _release(definition: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _status(definition).get("release") or {}


def _spec_waves(definition: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    policy = ((definition or {}).get("spec") or {}).get("releasePolicy") or {}
    return [w for w in policy.get("waves") or [] if isinstance(w, Mapping)]


def has_waves(definition: Mapping[str, Any] | None) -> bool:
    """Whether the definition releases in waves (`spec.releasePolicy`)."""
    return bool(_spec_waves(definition))


def region_lines(definition: Mapping[str, Any] | None) -> dict[str, Mapping[str, Any]]:
    """Region → its entry of status.latestVersionByRegion."""
    lines = _status(definition).get("latestVersionByRegion") or []
    return {str(line["region"]): line for line in lines if line.get("region")}


def wave_list(
    definition: Mapping[str, Any] | None, regions: Sequence[str] = ()
) -> list[dict[str, Any]]:
    """The definition's waves in order: their regions (the spec's, then the regions of
    its status and `regions` that no wave lists, with the last wave), bake time, and
    where the version being released stands in each (status.release.waves: state,
    releasedAt, upgradedAt, opensAt, message; None where the status has none yet).

    >>> definition = {"spec": {"releasePolicy": {"waves": [
    ...     {"name": "canary", "regions": ["east"], "bakeTime": "PT1H"},
    ...     {"regions": ["west"]}]}},
    ...     "status": {"release": {"version": "1.0.2", "waves": [
    ...         {"wave": 1, "state": "Baking"},
    ...         {"wave": 2, "state": "Waiting", "opensAt": "2026-12-02T19:40:00Z"}]}}}
    >>> [(w["wave"], w["regions"], w["state"], w["opensAt"])
    ...  for w in wave_list(definition, ["south"])]
    [(1, ['east'], 'Baking', None), (2, ['west', 'south'], 'Waiting', '2026-12-02T19:40:00Z')]
    """
    spec_waves = _spec_waves(definition)
    known = [*region_lines(definition), *regions]
    assigned = waves.assign(
        [waves.Wave(tuple(str(r) for r in w.get("regions") or ())) for w in spec_waves], known
    )
    recorded = {w.get("wave"): w for w in _release(definition).get("waves") or []}
    found = []
    for number, (spec, wave) in enumerate(zip(spec_waves, assigned, strict=True), start=1):
        status = recorded.get(number) or {}
        found.append(
            {
                "wave": number,
                "name": spec.get("name"),
                "regions": list(wave.regions),
                "bakeTime": spec.get("bakeTime") or "PT0S",
                "minHealthyPercent": spec.get("minHealthyPercent"),
                "state": status.get("state"),
                "releasedAt": status.get("releasedAt"),
                "upgradedAt": status.get("upgradedAt"),
                "opensAt": status.get("opensAt"),
                "message": status.get("message"),
            }
        )
    return found


# -- the document (`-o json|yaml`; the text view is rendered from it) --------------------


def _version(revision: str | None) -> str | None:
    return inst.version_of(revision) if revision else None


def _starts(plan: ScaleSetPlan) -> str:
    """Running (recorded, not ended), ByItself (the operator starts it), OnRequest (a
    start request would), or No."""
    assert plan.as_is is not None
    recorded = plan.as_is.intent.rollout
    if recorded is not None and recorded.active:
        return "Running"
    if plan.as_is.preview.outcome != "Idle":
        return "ByItself"
    return "OnRequest" if plan.on_request is not None else "No"


def _upgrade(plan: ScaleSetPlan) -> dict[str, Any]:
    """The upgrade the batches belong to: versions, mode, who starts it and why."""
    assert plan.spec is not None and plan.as_is is not None and plan.shown is not None
    shown, intent = plan.shown, plan.as_is.intent
    starts = _starts(plan)
    rollout = shown.preview.rollout if starts != "No" else None
    source = rollout.from_revision if rollout is not None else intent.source
    to = rollout.to_revision if rollout is not None else plan.target
    policy = plan.spec.upgrade_policy
    if starts == "Running":
        started_by = intent.recorded_started_by or intent.starter
    else:
        started_by = shown.intent.starter
    document: dict[str, Any] = {
        "fromVersion": _version(source),
        "toVersion": _version(to),
        "fromRevision": source,
        "toRevision": to,
        "mode": policy.mode,
        "automaticOSUpgrades": policy.automatic_os_upgrade_policy.enable_automatic_os_upgrade,
        "starts": starts,
        "startedBy": started_by if starts != "No" else None,
        "reason": intent.trigger.reason,
        "message": intent.trigger.message,
    }
    if rollout is not None:
        document["startTime"] = times.format(rollout.started)
    if plan.resolution is not None and plan.resolution.waiting_for_replication:
        document["waiting"] = {
            "version": plan.resolution.waiting_for_replication,
            "reason": plan.resolution.reason,
            "message": plan.resolution.message,
        }
    if plan.target is None and plan.resolution is not None:
        document["targetMessage"] = plan.resolution.message
    if intent.refused_controls:
        document["ignoredControls"] = list(intent.refused_controls)
    return document


def _batch(batch: ro.PreviewBatch, total: int, running: bool = False) -> dict[str, Any]:
    return {
        "number": batch.number,
        "of": total,
        "instances": list(batch.instances),
        ("since" if running else "earliest"): times.format(batch.earliest),
    }


def release_in_region(plan: ScaleSetPlan) -> dict[str, Any] | None:
    """Where the definition's release stands in the ScaleSet's region: its wave, the
    version released there, a newer one waiting for the wave and when and why the wave
    opens (None: the definition has no release waves)."""
    if plan.spec is None or not has_waves(plan.definition):
        return None
    region = plan.spec.region
    line = region_lines(plan.definition).get(region, {})
    wave = line.get("wave") or next(
        (w["wave"] for w in wave_list(plan.definition, [region]) if region in w["regions"]), None
    )
    return {
        "releasing": _release(plan.definition).get("version"),
        "region": region,
        "wave": wave,
        "version": line.get("version"),
        "pendingVersion": line.get("pendingVersion"),
        "opensAt": line.get("opensAt"),
        "message": line.get("message"),
    }


def waves_of(plan: ScaleSetPlan) -> list[dict[str, Any]] | None:
    """The ImageDefinition's release waves in order, with their regions, state and
    earliest times (`wave_list`; None: the definition has no release waves)."""
    if plan.spec is None or not has_waves(plan.definition):
        return None
    return wave_list(plan.definition, [plan.spec.region])


def quarantined_of(plan: ScaleSetPlan) -> list[dict[str, Any]] | None:
    """The quarantined versions that concern this ScaleSet, and what that does to it:
    the version its running upgrade goes to (it holds after its batch), the version it
    pins (no upgrade to it starts), or, following latest, a newer version than its
    target (not latest anywhere). None: none concerns it."""
    if plan.spec is None or not plan.quarantined:
        return None
    recorded = plan.as_is.intent.rollout if plan.as_is is not None else None
    running = _version(recorded.to_revision) if recorded is not None and recorded.active else None
    requested = plan.spec.image_reference.version
    target = plan.resolution.target if plan.resolution is not None else None
    found = []
    for version_, why in sorted(plan.quarantined.items()):
        if version_ == running:
            effect = "the running upgrade to it holds after its batch"
            if target is not None and is_newer(target, version_):
                effect = f"the running upgrade to it is cancelled after its batch, for {target}"
        elif version_ == requested:
            effect = "pinned here: no upgrade to it starts"
        elif requested == LATEST and (target is None or is_newer(version_, target)):
            effect = "not latest anywhere: this ScaleSet does not follow it"
        else:
            continue
        found.append({"version": version_, "message": why, "effect": effect})
    return found or None


def maintenance_windows_of(plan: ScaleSetPlan) -> list[dict[str, Any]] | None:
    """The maintenance windows batches must start in: a hook for when windows exist
    (None: no data, so the document has no `maintenanceWindows`)."""
    return None


EXTRA_SECTIONS: tuple[tuple[str, Callable[[ScaleSetPlan], Any]], ...] = (
    ("release", release_in_region),
    ("waves", waves_of),
    ("quarantined", quarantined_of),
    ("maintenanceWindows", maintenance_windows_of),
)
"""Document keys after the batches, each with the function that gives its data (a
key is left out when its function returns None); `render.PLAN_SECTIONS` prints them."""


def plan_document(plan: ScaleSetPlan) -> dict[str, Any]:
    """The plan as a document (camelCase, times RFC 3339): what `-o json` prints."""
    document: dict[str, Any] = {
        "scaleSet": {"name": plan.name, "namespace": plan.namespace},
        "now": times.format(plan.now),
    }
    if plan.refused is not None or plan.as_is is None or plan.shown is None:
        reason, message = plan.refused or ("", "")
        document["refused"] = {"reason": reason, "message": message}
        return document
    shown = plan.shown.preview
    document["upgrade"] = _upgrade(plan)
    document["notes"] = list(plan.as_is.preview.first_notes)
    if plan.requested is not None:
        document["notesOnRequest"] = list(plan.requested.preview.first_notes)
    if shown.running is not None:
        document["runningBatch"] = _batch(shown.running, shown.total, running=True)
    document["batches"] = [_batch(b, shown.total) for b in shown.batches]
    document["outcome"] = {
        "result": shown.outcome,
        "at": times.format(shown.ends) if shown.ends is not None else None,
        "notes": list(shown.last_notes),
    }
    document["assumes"] = ASSUMES
    for key, data in EXTRA_SECTIONS:
        value = data(plan)
        if value is not None:
            document[key] = value
    return document


# -- reading (the command's only I/O) -----------------------------------------------------


def _or_none(read: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    try:
        return read()
    except NotFound:
        return None


def read_inputs(cluster: Cluster, name: str) -> PlanInputs:
    """The objects the ScaleSet's pass reads, by GET and LIST (never a write)."""
    scaleset = cluster.get(SCALESET, name)
    spec = scaleset.get("spec") or {}
    reference = spec.get("imageReference") or {}
    source = reference.get("namespace") or cluster.namespace
    definition_name = str(reference.get("imageDefinitionName") or "")
    region = _or_none(lambda: cluster.get(REGION, str(spec.get("region") or "")))
    definition = _or_none(lambda: cluster.get(IMAGEDEFINITION, definition_name, namespace=source))
    gallery, labels = None, {}
    if source != cluster.namespace and definition is not None:
        gallery_name = str((definition.get("spec") or {}).get("galleryName") or "")
        gallery = _or_none(lambda: cluster.get(GALLERY, gallery_name, namespace=source))
        profile = SharingProfile.model_validate(
            ((gallery or {}).get("spec") or {}).get("sharingProfile") or {}
        )
        if gallery is not None and needs_labels(profile):
            found = cluster.get(NAMESPACE, cluster.namespace)
            labels = dict((found.get("metadata") or {}).get("labels") or {})
    versions = [
        v
        for v in cluster.list(IMAGEVERSION, namespace=source)
        if (v.get("spec") or {}).get("imageDefinitionName") == definition_name
    ]
    pods = cluster.list(POD, labels={inst.SCALESET_LABEL: name})
    return PlanInputs(scaleset, pods, region, definition, versions, gallery, labels)


# -- the command --------------------------------------------------------------------------


def plan_scaleset(
    name: ScaleSetName,
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """What the operator would do next with a ScaleSet's upgrade, read only."""
    cluster = Cluster(kubeconfig, context, namespace)
    document = plan_document(plan_of(read_inputs(cluster, name), clock.now()))
    _print(document, output, render.plan_view)


# -- plan imagedefinition NAME -------------------------------------------------------------


@dataclass(frozen=True)
class DefinitionInputs:
    """What the plan of one ImageDefinition is made from, as the API returned it."""

    definition: Mapping[str, Any]
    scalesets: Sequence[Mapping[str, Any]] = ()
    """The ScaleSets following it, of the namespaces listed."""
    all_namespaces: bool = True
    """Whether ScaleSets were listed across namespaces (False: only the definition's)."""
    listing_refused: str = ""
    """Why the LIST across namespaces was refused, when it was."""


def follows(scaleset: Mapping[str, Any], namespace: str, name: str) -> bool:
    """Whether a ScaleSet follows the ImageDefinition `namespace`/`name`.

    >>> web = {"metadata": {"namespace": "team-a"},
    ...        "spec": {"imageReference": {"imageDefinitionName": "os", "namespace": "images"}}}
    >>> follows(web, "images", "os"), follows(web, "team-a", "os")
    (True, False)
    """
    own = str((scaleset.get("metadata") or {}).get("namespace") or "")
    reference = (scaleset.get("spec") or {}).get("imageReference") or {}
    source = reference.get("namespace") or own
    return source == namespace and reference.get("imageDefinitionName") == name


def _scaleset_line(scaleset: Mapping[str, Any], wave: int | None) -> dict[str, Any]:
    """One ScaleSet following the definition: where, what it follows and runs, its
    upgrade as its status records it (None: never upgraded)."""
    meta, spec = scaleset.get("metadata") or {}, scaleset.get("spec") or {}
    status = scaleset.get("status") or {}
    recorded = status.get("rollingUpgrade") or {}
    running = recorded.get("runningStatus") or {}
    upgrade = None
    if recorded.get("toVersion") or running.get("code"):
        upgrade = {
            "fromVersion": recorded.get("fromVersion"),
            "toVersion": recorded.get("toVersion"),
            "state": running.get("code"),
            "phase": recorded.get("phase"),
            "batch": recorded.get("currentBatch"),
            "of": recorded.get("totalBatches"),
            "startTime": running.get("startTime"),
        }
    return {
        "namespace": meta.get("namespace"),
        "name": meta.get("name"),
        "region": spec.get("region"),
        "wave": wave,
        "follows": (spec.get("imageReference") or {}).get("version") or LATEST,
        "currentVersion": status.get("currentVersion"),
        "targetVersion": status.get("targetVersion"),
        "waitingFor": status.get("waitingForReplication"),
        "upgrade": upgrade,
    }


def definition_document(inputs: DefinitionInputs, now: datetime) -> dict[str, Any]:
    """The plan of an ImageDefinition's release (camelCase, times RFC 3339): the version
    being released, each wave in order with its regions, state and earliest times, each
    region's released and pending version, the ScaleSets following the definition (by
    wave, region, namespace and name) and the quarantined versions. What `plan
    imagedefinition NAME -o json` prints."""
    definition = inputs.definition
    meta, status = definition.get("metadata") or {}, _status(definition)
    regions = sorted({str((s.get("spec") or {}).get("region") or "") for s in inputs.scalesets})
    wave_lines = wave_list(definition, [r for r in regions if r]) if has_waves(definition) else []
    wave_by_region = {r: w["wave"] for w in wave_lines for r in w["regions"]}
    lines = region_lines(definition)
    region_list = [
        {
            "region": region,
            "wave": wave_by_region.get(region),
            "version": line.get("version"),
            "pendingVersion": line.get("pendingVersion"),
            "opensAt": line.get("opensAt"),
            "message": line.get("message"),
        }
        for region in sorted({*lines, *(r for r in regions if r)})
        for line in [lines.get(region) or {}]
    ]
    scalesets = sorted(
        (
            _scaleset_line(s, wave_by_region.get(str((s.get("spec") or {}).get("region"))))
            for s in inputs.scalesets
        ),
        key=lambda s: (s["wave"] or 0, str(s["region"]), str(s["namespace"]), str(s["name"])),
    )
    document: dict[str, Any] = {
        "imageDefinition": {"name": meta.get("name"), "namespace": meta.get("namespace")},
        "now": times.format(now),
        "release": {
            "version": _release(definition).get("version"),
            "latestVersion": status.get("latestVersion"),
            "inWaves": has_waves(definition),
        },
    }
    generation, observed = meta.get("generation"), status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        document["release"]["statusNote"] = (
            f"the status is of generation {observed}; the operator has not yet seen "
            f"generation {generation}"
        )
    if has_waves(definition):
        document["waves"] = wave_lines
    document["regions"] = region_list
    document["scaleSets"] = scalesets
    document["scaleSetsListed"] = {
        "allNamespaces": inputs.all_namespaces,
        "namespace": None if inputs.all_namespaces else meta.get("namespace"),
        "message": inputs.listing_refused or None,
    }
    document["quarantinedVersions"] = [
        {
            "version": q.get("version"),
            "since": q.get("since"),
            "scaleSet": q.get("scaleSet"),
            "message": q.get("message"),
        }
        for q in status.get("quarantinedVersions") or []
        if q.get("version")
    ]
    return document


def _forbidden(error: CliError) -> bool:
    """Whether the API server refused the request as forbidden (403)."""
    cause = error.__cause__
    return isinstance(cause, ApiError) and getattr(cause.status, "code", None) == 403


def read_definition_inputs(cluster: Cluster, name: str) -> DefinitionInputs:
    """The ImageDefinition (GET) and the ScaleSets following it (a LIST across
    namespaces; when that is forbidden, a LIST in the definition's namespace)."""
    definition = cluster.get(IMAGEDEFINITION, name)
    try:
        found = cluster.list(SCALESET, all_namespaces=True)
        every, refused = True, ""
    except CliError as error:
        if not _forbidden(error):
            raise
        found = cluster.list(SCALESET)
        every, refused = False, str(error)
    mine = [s for s in found if follows(s, cluster.namespace, name)]
    return DefinitionInputs(definition, mine, every, refused)


def plan_imagedefinition(
    name: Annotated[
        str, typer.Argument(help="ImageDefinition name.", metavar="NAME", show_default=False)
    ],
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Where an ImageDefinition's release stands and what comes next, read only."""
    cluster = Cluster(kubeconfig, context, namespace)
    document = definition_document(read_definition_inputs(cluster, name), clock.now())
    _print(document, output, definition_view)


def _print(
    document: Mapping[str, Any], output: Output | None, view: Callable[[Mapping[str, Any]], Any]
) -> None:
    if output is Output.json:
        typer.echo(json.dumps(document, indent=2))
    elif output is Output.yaml:
        typer.echo(yaml.safe_dump(dict(document), sort_keys=False), nl=False)
    else:
        out().print(view(document))


def register(app: typer.Typer) -> None:
    """Add `plan scaleset NAME` (aliases `scalesets`, `ss`) and `plan imagedefinition
    NAME` (aliases `imagedefinitions`, `imgdef`, `idef`, the CRD's short names) to `app`."""
    plan_app = typer.Typer(
        help="Show what the operator would do next, without changing anything.",
        no_args_is_help=True,
    )
    help_ = (
        "What a ScaleSet's upgrade would do next, from the operator's own planner: the "
        "upgrade, its batches with their instances and earliest start, and how it ends. "
        "Changes nothing."
    )
    command = reported(plan_scaleset)
    plan_app.command("scaleset", help=help_)(command)
    for alias in ("scalesets", "ss"):
        plan_app.command(alias, help=help_, hidden=True)(command)
    help_ = (
        "Where an ImageDefinition's release stands: the version being released, each wave "
        "with its regions, state and earliest time, the ScaleSets following it by wave and "
        "region, the quarantined versions. Changes nothing."
    )
    command = reported(plan_imagedefinition)
    plan_app.command("imagedefinition", help=help_)(command)
    for alias in ("imagedefinitions", "imgdef", "idef"):
        plan_app.command(alias, help=help_, hidden=True)(command)
    app.add_typer(plan_app, name="plan")
