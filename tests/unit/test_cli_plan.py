"""`kubectl galleon plan scaleset NAME` without a cluster: the plan built from the
objects a ScaleSet's pass reads (as the API returns them), its document (`-o json`,
`-o yaml`), its text view, and that the command only reads."""

from __future__ import annotations

import copy
import doctest
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status
from rich.console import Console
from typer.testing import CliRunner

from galleon.api.scaleset import ScaleSetSpec
from galleon.cli import main as cli
from galleon.cli import plan as plan_module
from galleon.cli import render
from galleon.cli.cluster import CliError, Kind, NotFound
from galleon.cli.plan import (
    DefinitionInputs,
    PlanInputs,
    definition_document,
    plan_document,
    plan_of,
)
from galleon.cli.render.plan import definition_view
from galleon.core import instances as inst

NOW = datetime(2026, 12, 2, 18, 30, tzinfo=UTC)
NS = "platform"
HOUR_AGO = "2026-12-02T17:30:00Z"


def scaleset(automatic: bool = False, **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {"name": "web", "namespace": NS, "generation": 1},
        "spec": {
            "region": "eastus2",
            "capacity": 10,
            "imageReference": {"imageDefinitionName": "os", "version": "latest"},
            "osContainerName": "os",
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "os",
                            "image": "set-by-galleon",
                            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                        }
                    ]
                }
            },
            "upgradePolicy": {
                "mode": "Rolling",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": automatic},
                "rollingUpgradePolicy": {
                    "maxBatchInstancePercent": 30,
                    "maxUnhealthyInstancePercent": 30,
                    "pauseTimeBetweenBatches": "PT2M",
                },
            },
        },
        "status": status,
    }


def revision(version: str) -> str:
    spec = ScaleSetSpec.model_validate(scaleset()["spec"])
    return inst.revision(version, inst.model_hash(spec, inst.image_identity(NS, "os")))


def pod(index: int, version: str = "1.0.0") -> dict[str, Any]:
    return {
        "metadata": {
            "name": f"web-{index}",
            "namespace": NS,
            "labels": {
                inst.SCALESET_LABEL: "web",
                inst.INDEX_LABEL: str(index),
                inst.REVISION_LABEL: revision(version),
                inst.VERSION_LABEL: version,
            },
            "creationTimestamp": HOUR_AGO,
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": HOUR_AGO}],
        },
    }


def version(number: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"os-{number.replace('.', '-')}", "namespace": NS},
        "spec": {
            "version": number,
            "imageDefinitionName": "os",
            "publishingProfile": {"targetRegions": [{"name": "eastus2"}]},
        },
        "status": {
            "repository": "galleon/platform/gallery/os",
            "sourceDigest": "sha256:" + "ab" * 32,
            "replicationStatus": {
                "summary": [
                    {
                        "region": "eastus2",
                        "state": "Completed",
                        "replicas": [{"registry": "a", "state": "Completed"}],
                    }
                ]
            },
        },
    }


REGION = {
    "metadata": {"name": "eastus2"},
    "spec": {"registries": [{"name": "a", "url": "http://10.0.0.5:5000"}]},
}
DEFINITION = {"metadata": {"name": "os", "namespace": NS}, "spec": {"galleryName": "gallery"}}


def inputs(body: dict[str, Any], pods: list[dict[str, Any]] | None = None, **kw: Any) -> PlanInputs:
    return PlanInputs(
        scaleset=body,
        pods=pods if pods is not None else [pod(i) for i in range(10)],
        region=kw.pop("region", REGION),
        definition=kw.pop("definition", DEFINITION),
        versions=kw.pop("versions", [version("1.0.0"), version("1.0.1")]),
        **kw,
    )


def document(body: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return plan_document(plan_of(inputs(body, **kw), NOW))


def printed(doc: Mapping[str, Any], view: Any = render.plan_view) -> list[str]:
    console = Console(record=True, width=160)
    console.print(view(doc))
    return [line.rstrip() for line in console.export_text().splitlines()]


def printed_definition(doc: Mapping[str, Any]) -> list[str]:
    return printed(doc, definition_view)


def test_with_automatic_upgrades_off_the_batches_are_those_a_start_request_takes() -> None:
    doc = document(scaleset())
    upgrade = doc["upgrade"]
    assert upgrade["starts"] == "OnRequest" and upgrade["startedBy"] == "User"
    assert (upgrade["fromVersion"], upgrade["toVersion"]) == ("1.0.0", "1.0.1")
    assert upgrade["toRevision"] == revision("1.0.1") and upgrade["reason"] == "UpgradeAvailable"
    assert doc["notes"] == [
        f"no upgrade: {revision('1.0.0')} -> {revision('1.0.1')} may not start by itself "
        "(waits for a start request)"
    ]
    assert doc["batches"] == [
        {"number": 1, "of": 4, "instances": [0, 1, 2], "earliest": "2026-12-02T18:30:00Z"},
        {"number": 2, "of": 4, "instances": [3, 4, 5], "earliest": "2026-12-02T18:32:00Z"},
        {"number": 3, "of": 4, "instances": [6, 7, 8], "earliest": "2026-12-02T18:34:00Z"},
        {"number": 4, "of": 4, "instances": [9], "earliest": "2026-12-02T18:36:00Z"},
    ]
    assert (
        doc["outcome"]["result"] == "Completed" and doc["outcome"]["at"] == "2026-12-02T18:36:00Z"
    )
    assert "runningBatch" not in doc and "waves" not in doc and "maintenanceWindows" not in doc
    lines = printed(doc)
    assert lines[0] == "Plan for ScaleSet web in platform at 2026-12-02T18:30:00Z"
    assert "upgrade      1.0.0 → 1.0.1" in lines
    assert any(
        line.startswith("starts       on request (kubectl galleon upgrade web): 1.0.1 is available")
        for line in lines
    )
    assert "BATCHES  if started now" in lines
    assert "batch 1 of 4: instances 0-2 — earliest 2026-12-02T18:30:00Z" in lines
    assert "batch 4 of 4: instance 9 — earliest 2026-12-02T18:36:00Z" in lines
    assert "then Completed, earliest 2026-12-02T18:36:00Z" in lines
    assert not any("WAVES" in line or "MAINTENANCE" in line for line in lines)


def test_with_automatic_upgrades_on_the_operator_starts_it_by_itself() -> None:
    doc = document(scaleset(automatic=True))
    assert doc["upgrade"]["starts"] == "ByItself" and doc["upgrade"]["startedBy"] == "Platform"
    assert doc["notes"][0] == (
        f"upgrade {revision('1.0.0')} -> {revision('1.0.1')}: starting (a new target revision)"
    )
    assert [b["instances"] for b in doc["batches"]] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    assert "BATCHES  from now" in printed(doc)


def test_an_upgrade_half_way_shows_its_running_batch_and_the_batches_left() -> None:
    running = {
        "fromVersion": "1.0.0",
        "toVersion": "1.0.1",
        "fromRevision": revision("1.0.0"),
        "toRevision": revision("1.0.1"),
        "startedBy": "User",
        "runningStatus": {"code": "RollingForward", "startTime": "2026-12-02T18:20:00Z"},
        "currentBatch": 2,
        "totalBatches": 4,
        "phase": "Waiting",
        "phaseSince": "2026-12-02T18:29:00Z",
        "batchStartTime": "2026-12-02T18:29:00Z",
        "batchInstances": [3, 4, 5],
        "upgradedInstances": [0, 1, 2],
    }
    pods = [pod(i, "1.0.1" if i < 6 else "1.0.0") for i in range(10)]
    doc = document(scaleset(rollingUpgrade=running), pods=pods)
    assert doc["upgrade"]["starts"] == "Running" and doc["upgrade"]["startedBy"] == "User"
    assert doc["upgrade"]["startTime"] == "2026-12-02T18:20:00Z"
    assert doc["runningBatch"] == {
        "number": 2,
        "of": 4,
        "instances": [3, 4, 5],
        "since": "2026-12-02T18:29:00Z",
    }
    assert [(b["number"], b["instances"]) for b in doc["batches"]] == [(3, [6, 7, 8]), (4, [9])]
    # Batch 2 is judged now (its members are Healthy), then the 2-minute pause.
    assert [b["earliest"] for b in doc["batches"]] == [
        "2026-12-02T18:32:00Z",
        "2026-12-02T18:34:00Z",
    ]
    lines = printed(doc)
    assert "batch 2 of 4: instances 3-5 — running since 2026-12-02T18:29:00Z" in lines
    assert "batch 3 of 4: instances 6-8 — earliest 2026-12-02T18:32:00Z" in lines


def test_nothing_starts_at_the_target_and_no_batches_are_printed() -> None:
    doc = document(scaleset(), pods=[pod(i, "1.0.1") for i in range(10)])
    assert doc["upgrade"]["starts"] == "No" and doc["batches"] == []
    assert doc["notes"] == [f"no upgrade: fleet at target {revision('1.0.1')}, 10 of 10 present"]
    lines = printed(doc)
    assert "upgrade      none: the fleet runs 1.0.1" in lines
    assert not any("BATCHES" in line for line in lines)
    assert any(line.startswith("planner now  no upgrade: fleet at target") for line in lines)


def test_a_paused_scaleset_starts_nothing_even_on_request() -> None:
    body = scaleset()
    body["spec"]["paused"] = True
    doc = document(body)
    assert doc["upgrade"]["starts"] == "No" and doc["batches"] == []
    assert doc["notes"][0].endswith("may not start by itself (waits for a start request)")
    held = (
        f"no upgrade: {revision('1.0.0')} -> {revision('1.0.1')} held while the ScaleSet is paused"
    )
    assert doc["notesOnRequest"] == [held]
    assert f"if started   {held}" in printed(doc)


@pytest.mark.parametrize(
    ("change", "reason", "message"),
    [
        pytest.param(
            {"region": None}, "RegionNotFound", "Region eastus2 does not exist", id="no-region"
        ),
        pytest.param(
            {"definition": None},
            "ImageDefinitionNotFound",
            'image definition "os" does not exist in namespace platform',
            id="no-definition",
        ),
    ],
)
def test_what_the_operator_refuses_is_said_and_nothing_planned(
    change: dict[str, Any], reason: str, message: str
) -> None:
    doc = document(scaleset(), **change)
    assert doc["refused"] == {"reason": reason, "message": message}
    assert "batches" not in doc and "upgrade" not in doc
    assert printed(doc)[1] == f"the operator changes nothing on this ScaleSet: {reason}: {message}"


def test_an_image_of_another_namespace_needs_its_gallery_to_share_it() -> None:
    body = scaleset()
    body["spec"]["imageReference"]["namespace"] = "images"
    doc = document(body, gallery={"spec": {"sharingProfile": {"permissions": "Private"}}})
    assert doc["refused"]["reason"] == "ImageNotShared"


def test_a_section_prints_only_when_the_document_has_its_data() -> None:
    doc = document(scaleset())
    assert not any("WAVES" in line or "QUARANTINED" in line for line in printed(doc))
    with_waves = {
        **copy.deepcopy(doc),
        "waves": [{"wave": 1, "name": "canary", "regions": ["eastus2"], "state": "Done"}],
    }
    lines = printed(with_waves)
    assert "WAVES" in lines and "wave 1 (canary): eastus2 — Done" in lines


class ReadOnlyCluster:
    """A cluster that answers GETs and LISTs from objects and has no write method at
    all: a command that tried to write would fail with AttributeError."""

    namespace = NS

    def __init__(self, *_: Any) -> None:
        self.calls: list[tuple[str, str, str | None]] = []

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append(("get", kind.label, name))
        found = {"scaleset": scaleset(), "region": REGION, "imagedefinition": DEFINITION}
        if kind.label not in found:
            raise NotFound(f"{kind.label} {name} not found")
        return copy.deepcopy(found[kind.label])

    def list(
        self,
        kind: Kind,
        all_namespaces: bool = False,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> list[dict[str, Any]]:
        self.calls.append(("list", kind.label, json.dumps(dict(labels or {}))))
        if kind.label == "pod":
            assert labels == {"galleon.dev/scaleset": "web"}
            return [pod(i) for i in range(10)]
        assert kind.label == "imageversion"
        return [
            version("1.0.0"),
            version("1.0.1"),
            {**version("2.0.0"), "spec": {"imageDefinitionName": "other", "version": "2.0.0"}},
        ]


def test_the_command_only_reads_and_prints_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[ReadOnlyCluster] = []

    def cluster(*args: Any) -> ReadOnlyCluster:
        made.append(ReadOnlyCluster(*args))
        return made[-1]

    monkeypatch.setattr(plan_module, "Cluster", cluster)
    monkeypatch.setattr(plan_module.clock, "now", lambda: NOW)
    runner = CliRunner()
    as_json = runner.invoke(cli.app, ["plan", "scaleset", "web", "-o", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == document(scaleset())
    assert sorted({call[:2] for call in made[0].calls}) == [
        ("get", "imagedefinition"),
        ("get", "region"),
        ("get", "scaleset"),
        ("list", "imageversion"),
        ("list", "pod"),
    ]
    as_yaml = runner.invoke(cli.app, ["plan", "ss", "web", "-o", "yaml"])
    assert as_yaml.exit_code == 0, as_yaml.output
    assert yaml.safe_load(as_yaml.stdout) == document(scaleset())
    text = runner.invoke(cli.app, ["plan", "scaleset", "web"], env={"COLUMNS": "160"})
    assert text.exit_code == 0, text.output
    assert "batch 2 of 4: instances 3-5 — earliest 2026-12-02T18:32:00Z" in text.stdout
    bad = runner.invoke(cli.app, ["plan", "scaleset", "web", "-o", "wide"])
    assert bad.exit_code == 2


def test_a_version_not_yet_in_the_region_is_waited_for_not_planned() -> None:
    replicating = version("1.0.1")
    replicating["status"]["replicationStatus"]["summary"][0]["state"] = "Replicating"
    doc = document(scaleset(), versions=[version("1.0.0"), replicating])
    assert doc["upgrade"]["starts"] == "No" and doc["batches"] == []
    assert doc["upgrade"]["waiting"] == {
        "version": "1.0.1",
        "reason": "LatestResolved",
        "message": "latest in eastus2 is 1.0.0; 1.0.1 is waiting for replication to eastus2",
    }
    assert (
        "waiting      1.0.1: latest in eastus2 is 1.0.0; 1.0.1 is waiting for replication to "
        "eastus2" in printed(doc)
    )


def test_a_quarantined_version_is_not_the_target() -> None:
    quarantined = {
        **DEFINITION,
        "status": {
            "quarantinedVersions": [
                {"version": "1.0.1", "scaleSet": "other/db", "message": "2 of 3 unhealthy"}
            ]
        },
    }
    doc = document(scaleset(automatic=True), definition=quarantined)
    assert doc["upgrade"]["toVersion"] == "1.0.0" and doc["upgrade"]["starts"] == "No"


def running_to(to: str) -> dict[str, Any]:
    """status.rollingUpgrade: batch 1 of 1.0.0 -> `to` (instances 0-2) being checked."""
    return {
        "fromRevision": revision("1.0.0"),
        "toRevision": revision(to),
        "startedBy": "Platform",
        "runningStatus": {"code": "RollingForward", "startTime": "2026-12-02T18:29:00Z"},
        "currentBatch": 1,
        "phase": "Waiting",
        "phaseSince": "2026-12-02T18:29:00Z",
        "batchStartTime": "2026-12-02T18:29:00Z",
        "batchInstances": [0, 1, 2],
    }


def quarantining(version_: str) -> dict[str, Any]:
    entry = {"version": version_, "scaleSet": f"{NS}/db", "message": "2 of 3 unhealthy"}
    return {**DEFINITION, "status": {"quarantinedVersions": [entry]}}


def test_a_running_upgrade_to_a_quarantined_version_holds_after_its_batch() -> None:
    """As the pass composes it (`quarantine_hold`): the running batch finishes, then no
    batch starts."""
    pods = [pod(i, "1.0.1" if i < 3 else "1.0.0") for i in range(10)]
    doc = document(
        scaleset(automatic=True, rollingUpgrade=running_to("1.0.1")),
        pods=pods,
        definition=quarantining("1.0.1"),
    )
    assert doc["upgrade"]["starts"] == "Running"
    assert doc["runningBatch"]["instances"] == [0, 1, 2] and doc["batches"] == []
    assert doc["outcome"]["result"] == "Held"
    assert any("1.0.1 is quarantined" in note for note in doc["outcome"]["notes"]), doc


def test_a_running_upgrade_superseded_by_a_newer_version_is_cancelled_after_its_batch() -> None:
    pods = [pod(i, "1.0.1" if i < 3 else "1.0.0") for i in range(10)]
    doc = document(
        scaleset(automatic=True, rollingUpgrade=running_to("1.0.1")),
        pods=pods,
        definition=quarantining("1.0.1"),
        versions=[version("1.0.0"), version("1.0.1"), version("1.0.2")],
    )
    assert doc["runningBatch"]["instances"] == [0, 1, 2] and doc["batches"] == []
    assert doc["outcome"]["result"] == "Cancelled"


# -- release waves and quarantines in the ScaleSet's plan ------------------------------------

OPENS = "2026-12-02T18:40:00Z"
WAVES = {
    "waves": [
        {"name": "canary", "regions": ["westus"], "bakeTime": "PT1H"},
        {"regions": ["eastus2"]},
    ]
}
RELEASE_STATUS = {
    "latestVersion": "1.0.1",
    "latestVersionByRegion": [
        {"region": "westus", "version": "1.0.1", "wave": 1},
        {
            "region": "eastus2",
            "version": "1.0.0",
            "wave": 2,
            "pendingVersion": "1.0.1",
            "opensAt": OPENS,
            "message": "wave 2 opens after 1h bake of wave 1 (canary): 10m left",
        },
    ],
    "release": {
        "version": "1.0.1",
        "waves": [
            {
                "wave": 1,
                "name": "canary",
                "state": "Baking",
                "releasedAt": "2026-12-02T17:10:00Z",
                "upgradedAt": "2026-12-02T17:40:00Z",
                "message": "wave 1 (canary) baking",
            },
            {
                "wave": 2,
                "state": "Waiting",
                "opensAt": OPENS,
                "message": "wave 2 opens after 1h bake of wave 1 (canary): 10m left",
            },
        ],
    },
}
IN_WAVES = {
    "metadata": {"name": "os", "namespace": NS, "generation": 2},
    "spec": {"galleryName": "gallery", "releasePolicy": WAVES},
    "status": {"observedGeneration": 2, **RELEASE_STATUS},
}


def test_a_scaleset_in_a_wave_not_yet_open_shows_its_wave_and_when_it_opens() -> None:
    doc = document(scaleset(automatic=True), definition=IN_WAVES)
    # The wave holds 1.0.1 back: nothing starts, and the plan says when the wave opens.
    assert doc["upgrade"]["starts"] == "No" and doc["upgrade"]["toVersion"] == "1.0.0"
    assert doc["upgrade"]["waiting"]["reason"] == "WaitingForWave"
    assert doc["release"] == {
        "releasing": "1.0.1",
        "region": "eastus2",
        "wave": 2,
        "version": "1.0.0",
        "pendingVersion": "1.0.1",
        "opensAt": OPENS,
        "message": "wave 2 opens after 1h bake of wave 1 (canary): 10m left",
    }
    assert [(w["wave"], w["name"], w["regions"], w["state"]) for w in doc["waves"]] == [
        (1, "canary", ["westus"], "Baking"),
        (2, None, ["eastus2"], "Waiting"),
    ]
    assert doc["waves"][0]["bakeTime"] == "PT1H" and doc["waves"][1]["opensAt"] == OPENS
    assert "quarantined" not in doc
    lines = printed(doc)
    assert "WAVES" in lines
    assert "releasing  1.0.1" in lines
    assert "region     eastus2, wave 2: 1.0.0 released" in lines
    assert f"pending    1.0.1, opens earliest {OPENS} (in 10m)" in lines
    assert (
        "wave 1 (canary): westus — Baking, opened 2026-12-02T17:10:00Z, upgraded "
        "2026-12-02T17:40:00Z, bake 1h" in lines
    )
    assert f"wave 2: eastus2 — Waiting, opens earliest {OPENS} (in 10m)  ← here" in lines


def test_a_region_no_wave_lists_is_in_the_last_wave() -> None:
    body = scaleset()
    body["spec"]["region"] = "southus"
    region = {**REGION, "metadata": {"name": "southus"}}
    definition = copy.deepcopy(IN_WAVES)
    doc = document(body, definition=definition, region=region)
    assert doc["release"]["region"] == "southus" and doc["release"]["wave"] == 2
    assert doc["waves"][1]["regions"] == ["eastus2", "southus"]


@pytest.mark.parametrize(
    ("status", "pinned", "definition", "expected"),
    [
        pytest.param(
            {"rollingUpgrade": running_to("1.0.1")},
            None,
            quarantining("1.0.1"),
            [
                {
                    "version": "1.0.1",
                    "message": "scaleset platform/db faulted: 2 of 3 unhealthy",
                    "effect": "the running upgrade to it holds after its batch",
                }
            ],
            id="running-upgrade-holds",
        ),
        pytest.param(
            {},
            "1.0.1",
            quarantining("1.0.1"),
            [
                {
                    "version": "1.0.1",
                    "message": "scaleset platform/db faulted: 2 of 3 unhealthy",
                    "effect": "pinned here: no upgrade to it starts",
                }
            ],
            id="pinned",
        ),
        pytest.param(
            {},
            None,
            {
                **DEFINITION,
                "status": {
                    "quarantinedVersions": [
                        {"version": "1.0.1", "scaleSet": "other/db", "message": "secret"}
                    ]
                },
            },
            [
                {
                    "version": "1.0.1",
                    "message": "an upgrade in another namespace faulted",
                    "effect": "not latest anywhere: this ScaleSet does not follow it",
                }
            ],
            id="newer-than-latest-of-another-tenant",
        ),
        pytest.param({}, None, quarantining("0.9.0"), None, id="an-older-version-is-not-shown"),
    ],
)
def test_a_quarantine_is_shown_when_it_concerns_the_scaleset(
    status: dict[str, Any],
    pinned: str | None,
    definition: dict[str, Any],
    expected: list[dict[str, Any]] | None,
) -> None:
    body = scaleset(automatic=True, **status)
    if pinned is not None:
        body["spec"]["imageReference"]["version"] = pinned
    pods = [pod(i, "1.0.1" if i < 3 and status else "1.0.0") for i in range(10)]
    doc = document(body, pods=pods, definition=definition)
    assert doc.get("quarantined") == expected
    assert "release" not in doc and "waves" not in doc  # no release waves
    lines = printed(doc)
    if expected is None:
        assert "QUARANTINED" not in lines
    else:
        assert "QUARANTINED" in lines
        assert f"1.0.1: {expected[0]['effect']} ({expected[0]['message']})" in lines


def test_a_superseded_quarantined_upgrade_says_it_is_cancelled_for_the_newer_version() -> None:
    pods = [pod(i, "1.0.1" if i < 3 else "1.0.0") for i in range(10)]
    doc = document(
        scaleset(automatic=True, rollingUpgrade=running_to("1.0.1")),
        pods=pods,
        definition=quarantining("1.0.1"),
        versions=[version("1.0.0"), version("1.0.1"), version("1.0.2")],
    )
    assert [q["effect"] for q in doc["quarantined"]] == [
        "the running upgrade to it is cancelled after its batch, for 1.0.2"
    ]


# -- plan imagedefinition NAME -----------------------------------------------------------------


def follower(
    namespace: str,
    name: str,
    region: str,
    current: str = "1.0.0",
    target: str | None = None,
    **status: Any,
) -> dict[str, Any]:
    reference: dict[str, Any] = {"imageDefinitionName": "os", "version": "latest"}
    if namespace != NS:
        reference["namespace"] = NS
    return {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"region": region, "imageReference": reference},
        "status": {"currentVersion": current, "targetVersion": target or current, **status},
    }


FOLLOWERS = [
    follower(NS, "web", "eastus2", waitingForReplication="1.0.1"),
    follower(
        "team-b",
        "api",
        "westus",
        target="1.0.1",
        rollingUpgrade={
            "fromVersion": "1.0.0",
            "toVersion": "1.0.1",
            "runningStatus": {"code": "RollingForward", "startTime": "2026-12-02T17:20:00Z"},
            "currentBatch": 2,
            "totalBatches": 4,
            "phase": "Pausing",
        },
    ),
    follower(NS, "db", "southus"),
]


def test_the_definition_plan_lists_the_waves_regions_and_scalesets_in_order() -> None:
    doc = definition_document(DefinitionInputs(IN_WAVES, FOLLOWERS), NOW)
    assert doc["imageDefinition"] == {"name": "os", "namespace": NS}
    assert doc["release"] == {"version": "1.0.1", "latestVersion": "1.0.1", "inWaves": True}
    # southus is in no wave: it goes with the last one.
    assert [(w["wave"], w["regions"], w["state"], w["opensAt"]) for w in doc["waves"]] == [
        (1, ["westus"], "Baking", None),
        (2, ["eastus2", "southus"], "Waiting", OPENS),
    ]
    regions = [(r["region"], r["wave"], r["version"], r["pendingVersion"]) for r in doc["regions"]]
    assert regions == [
        ("eastus2", 2, "1.0.0", "1.0.1"),
        ("southus", 2, None, None),
        ("westus", 1, "1.0.1", None),
    ]
    assert [(s["namespace"], s["name"], s["wave"]) for s in doc["scaleSets"]] == [
        ("team-b", "api", 1),
        (NS, "web", 2),
        (NS, "db", 2),
    ]
    api = doc["scaleSets"][0]
    assert api["upgrade"] == {
        "fromVersion": "1.0.0",
        "toVersion": "1.0.1",
        "state": "RollingForward",
        "phase": "Pausing",
        "batch": 2,
        "of": 4,
        "startTime": "2026-12-02T17:20:00Z",
    }
    assert doc["scaleSets"][1]["upgrade"] is None and doc["scaleSets"][1]["waitingFor"] == "1.0.1"
    assert doc["scaleSetsListed"] == {"allNamespaces": True, "namespace": None, "message": None}
    assert doc["quarantinedVersions"] == []
    lines = printed_definition(doc)
    assert lines[0] == "Plan for ImageDefinition os in platform at 2026-12-02T18:30:00Z"
    assert "releasing  1.0.1" in lines
    assert "scalesets  3 following it in the namespaces you may list" in lines
    wave_two = lines.index(f"wave 2: eastus2, southus — Waiting, opens earliest {OPENS} (in 10m)")
    assert lines[wave_two + 1 :] == [
        "  wave 2 opens after 1h bake of wave 1 (canary): 10m left",
        "  eastus2: 1.0.0 released, 1.0.1 pending",
        "    platform/web  follows latest  runs 1.0.0  1.0.1 waits",
        "  southus: nothing released",
        "    platform/db  follows latest  runs 1.0.0",
    ]
    assert (
        "    team-b/api  follows latest  runs 1.0.0 → 1.0.1  upgrade 1.0.0 → 1.0.1 RollingForward "
        "batch 2 of 4 (Pausing)" in lines
    )
    assert not any("QUARANTINED" in line for line in lines)


def test_the_definition_plan_lists_quarantines_and_a_status_behind_the_spec() -> None:
    definition = copy.deepcopy(IN_WAVES)
    definition["metadata"]["generation"] = 3
    definition["status"]["quarantinedVersions"] = [
        {
            "version": "1.0.2",
            "since": "2026-12-02T18:00:00Z",
            "scaleSet": "team-b/api",
            "message": "2 of 4 unhealthy",
        }
    ]
    doc = definition_document(DefinitionInputs(definition, []), NOW)
    assert doc["quarantinedVersions"] == definition["status"]["quarantinedVersions"]
    assert "generation 2" in doc["release"]["statusNote"]
    lines = printed_definition(doc)
    assert "QUARANTINED" in lines
    assert (
        "1.0.2 since 2026-12-02T18:00:00Z: scaleset team-b/api faulted: 2 of 4 unhealthy" in lines
    )
    assert any(line.startswith("status     the status is of generation 2") for line in lines)


def test_without_waves_the_definition_plan_groups_scalesets_by_region() -> None:
    definition = {
        "metadata": {"name": "os", "namespace": NS},
        "spec": {"galleryName": "gallery"},
        "status": {
            "latestVersion": "1.0.1",
            "latestVersionByRegion": [{"region": "eastus2", "version": "1.0.1"}],
        },
    }
    doc = definition_document(DefinitionInputs(definition, FOLLOWERS[:1]), NOW)
    assert "waves" not in doc and doc["release"]["inWaves"] is False
    assert doc["scaleSets"][0]["wave"] is None
    lines = printed_definition(doc)
    assert "REGIONS" in lines and "  eastus2: 1.0.1 released" in lines
    assert any(line.startswith("releasing  no release waves") for line in lines)


def forbidden(message: str) -> CliError:
    try:
        raise ApiError(status=Status(code=403, message=message))
    except ApiError as cause:
        error = CliError(f"not allowed: {message}")
        error.__cause__ = cause
        return error


class DefinitionCluster:
    """A cluster with an ImageDefinition and ScaleSets, no write method, whose LIST
    across namespaces may be forbidden."""

    namespace = NS

    def __init__(self, refuse: CliError | None = None) -> None:
        self.refuse = refuse
        self.calls: list[tuple[str, str, bool]] = []

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        self.calls.append(("get", kind.label, False))
        assert kind.label == "imagedefinition" and name == "os"
        return copy.deepcopy(IN_WAVES)

    def list(self, kind: Kind, all_namespaces: bool = False, **_: Any) -> list[dict[str, Any]]:
        self.calls.append(("list", kind.label, all_namespaces))
        assert kind.label == "scaleset"
        other = follower(NS, "other", "eastus2")
        other["spec"]["imageReference"]["imageDefinitionName"] = "another"
        if all_namespaces:
            if self.refuse is not None:
                raise self.refuse
            return [*FOLLOWERS, other]
        return [s for s in [*FOLLOWERS, other] if s["metadata"]["namespace"] == NS]


def run_definition_plan(
    monkeypatch: pytest.MonkeyPatch, cluster: DefinitionCluster, *arguments: str
) -> Any:
    monkeypatch.setattr(plan_module, "Cluster", lambda *_: cluster)
    monkeypatch.setattr(plan_module.clock, "now", lambda: NOW)
    return CliRunner().invoke(cli.app, ["plan", *arguments], env={"COLUMNS": "160"})


def test_the_definition_command_only_reads_across_namespaces(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = DefinitionCluster()
    result = run_definition_plan(monkeypatch, cluster, "imagedefinition", "os", "-o", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert found == definition_document(DefinitionInputs(IN_WAVES, FOLLOWERS), NOW)
    assert cluster.calls == [("get", "imagedefinition", False), ("list", "scaleset", True)]
    as_yaml = run_definition_plan(monkeypatch, DefinitionCluster(), "imgdef", "os", "-o", "yaml")
    assert as_yaml.exit_code == 0, as_yaml.output
    assert yaml.safe_load(as_yaml.stdout) == found
    text = run_definition_plan(monkeypatch, DefinitionCluster(), "idef", "os")
    assert text.exit_code == 0, text.output
    assert "wave 1 (canary): westus — Baking" in text.stdout


def test_a_forbidden_list_across_namespaces_falls_back_to_the_definitions_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    refused = forbidden("scalesets.galleon.dev is forbidden: cannot list at the cluster scope")
    cluster = DefinitionCluster(refused)
    result = run_definition_plan(monkeypatch, cluster, "imagedefinition", "os", "-o", "json")
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [s["name"] for s in found["scaleSets"]] == ["web", "db"]
    assert found["scaleSetsListed"] == {
        "allNamespaces": False,
        "namespace": NS,
        "message": f"not allowed: {refused.__cause__.status.message}",  # type: ignore[union-attr]
    }
    text = run_definition_plan(monkeypatch, DefinitionCluster(refused), "imagedefinition", "os")
    assert "scalesets  2 following it in namespace platform only" in text.stdout
    assert "listing across namespaces: not allowed: scalesets.galleon.dev is forbidden" in (
        text.stdout
    )


def test_another_failure_of_the_list_is_an_error_not_a_fallback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = DefinitionCluster(CliError("cannot reach the API server"))
    result = run_definition_plan(monkeypatch, cluster, "imagedefinition", "os")
    assert result.exit_code == 1
    assert "cannot reach the API server" in result.output
    assert ("list", "scaleset", False) not in cluster.calls


def test_the_worked_examples_of_the_plan_module_hold() -> None:
    failures, tried = doctest.testmod(plan_module, optionflags=doctest.ELLIPSIS)
    assert tried > 0 and failures == 0
