"""`kubectl galleon`'s pure parts: what it prints for realistic objects (as the API
returns them, with the status the operator writes), how `status` decides, and
durations."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest
from rich.console import Console, RenderableType

from galleon.cli import render
from galleon.cli.outcome import (
    Outcome,
    format_duration,
    imageversion_outcome,
    parse_duration,
    scaleset_outcome,
)

NOW = datetime(2026, 11, 23, 13, 50, tzinfo=UTC)


def printed(renderable: RenderableType) -> str:
    console = Console(record=True, width=120)
    console.print(renderable)
    return console.export_text()


def flat(renderable: RenderableType) -> str:
    """The printed text with every run of whitespace (and line wraps) as one space."""
    return " ".join(printed(renderable).split())


def lines(renderable: RenderableType) -> list[str]:
    return [line.rstrip() for line in printed(renderable).splitlines()]


def condition(type_: str, status: str, reason: str, message: str = "", gen: int = 3) -> dict:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
        "lastTransitionTime": "2026-11-23T13:45:00Z",
    }


def scaleset(**status: Any) -> dict[str, Any]:
    """A ScaleSet of 10 in eastus2 following latest, mid-upgrade 1.0.0 → 1.0.2 (batch 3/5)."""
    base: dict[str, Any] = {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {
            "name": "web",
            "namespace": "platform",
            "generation": 3,
            "creationTimestamp": "2026-11-23T12:50:00Z",
        },
        "spec": {
            "region": "eastus2",
            "capacity": 10,
            "imageReference": {"imageDefinitionName": "ubuntu-server", "version": "latest"},
            "template": {"spec": {"containers": [{"name": "os", "image": "set-by-galleon"}]}},
            "upgradePolicy": {
                "mode": "Rolling",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                "rollingUpgradePolicy": {"maxBatchInstancePercent": 20},
            },
            "paused": False,
        },
        "status": {
            "observedGeneration": 3,
            "replicas": 10,
            "readyReplicas": 9,
            "selector": "galleon.dev/scaleset=web",
            "currentVersion": "1.0.0",
            "targetVersion": "1.0.2",
            "waitingForReplication": "1.0.3",
            "instancesByVersion": [
                {"version": "1.0.0", "instances": 6, "healthy": 6},
                {"version": "1.0.2", "instances": 4, "healthy": 3},
            ],
            "rollingUpgrade": {
                "fromVersion": "1.0.0",
                "toVersion": "1.0.2",
                "fromRevision": "1.0.0-5d8f7c",
                "toRevision": "1.0.2-5d8f7c",
                "startedBy": "Platform",
                "runningStatus": {
                    "code": "RollingForward",
                    "startTime": "2026-11-23T13:40:00Z",
                    "lastAction": "Start",
                    "lastActionTime": "2026-11-23T13:40:00Z",
                },
                "progress": {
                    "successfulInstanceCount": 4,
                    "failedInstanceCount": 0,
                    "inProgressInstanceCount": 2,
                    "pendingInstanceCount": 4,
                },
                "currentBatch": 3,
                "totalBatches": 5,
                "phase": "Waiting",
                "phaseSince": "2026-11-23T13:44:30Z",
                "batchInstances": [4, 5],
                "upgradedInstances": [0, 1, 2, 3],
                "failedInstances": [],
                "rolledBackInstances": [],
                "cancelRequested": False,
            },
            "upgradeHistory": [],
            "conditions": [
                condition(
                    "Ready", "False", "Upgrading", "upgrading 1.0.0 to 1.0.2: batch 3, 4 of 10"
                ),
                condition("Reconciling", "True", "Upgrading", "upgrading 1.0.0 to 1.0.2"),
                condition("Stalled", "False", "NotStalled"),
                condition("Upgrading", "True", "RollingForward", "upgrading 1.0.0 to 1.0.2"),
                condition("Degraded", "False", "InstancesHealthy"),
            ],
        },
    }
    base["status"].update(status)
    return base


def faulted() -> dict[str, Any]:
    obj = scaleset()
    upgrade = obj["status"]["rollingUpgrade"]
    upgrade["runningStatus"] = {
        "code": "Faulted",
        "startTime": "2026-11-23T13:40:00Z",
        "lastAction": "Start",
        "lastActionTime": "2026-11-23T13:40:00Z",
    }
    upgrade["progress"] = {
        "successfulInstanceCount": 2,
        "failedInstanceCount": 1,
        "inProgressInstanceCount": 0,
        "pendingInstanceCount": 0,
    }
    upgrade["phase"] = "Done"
    upgrade["error"] = {
        "code": "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade",
        "message": "1 of 3 upgraded instances [index 2] unhealthy (33% > 20%)",
    }
    upgrade["rollbackInfo"] = {
        "successfullyRolledbackInstanceCount": 1,
        "failedRolledbackInstanceCount": 0,
    }
    upgrade["failedInstances"] = [2]
    upgrade["rolledBackInstances"] = [2]
    obj["status"]["conditions"][0] = condition(
        "Ready", "False", "UpgradeFaulted", "the upgrade to 1.0.2 faulted"
    )
    return obj


def ready_scaleset() -> dict[str, Any]:
    obj = scaleset(currentVersion="1.0.2", readyReplicas=10)
    obj["status"]["instancesByVersion"] = [{"version": "1.0.2", "instances": 10, "healthy": 10}]
    obj["status"].pop("waitingForReplication")
    upgrade = obj["status"]["rollingUpgrade"]
    upgrade["runningStatus"]["code"] = "Completed"
    upgrade["phase"] = "Done"
    obj["status"]["conditions"] = [
        condition("Ready", "True", "InstancesHealthy", "10 of 10 instances healthy"),
        condition("Upgrading", "False", "UpToDate", "no upgrade running"),
    ]
    return obj


def imageversion(version: str = "1.0.2", **replication: Any) -> dict[str, Any]:
    """ImageVersion replicating to three regions: one done, one copying, one queued."""
    status: dict[str, Any] = {
        "aggregatedState": "InProgress",
        "completedRegions": "1/3",
        "summary": [
            {
                "region": "eastus2",
                "state": "Replicating",
                "progress": 45,
                "details": "copying to registries a, b",
                "desiredReplicas": 2,
                "completedReplicas": 0,
                "bytesCopied": 483183820,
                "bytesSkipped": 0,
                "bytesTotal": 1073741824,
                "replicas": [],
            },
            {
                "region": "southcentralus",
                "state": "Queued",
                "progress": 0,
                "details": "",
                "desiredReplicas": 1,
                "completedReplicas": 0,
                "bytesCopied": 0,
                "bytesTotal": 0,
            },
            {
                "region": "westcentralus",
                "state": "Completed",
                "progress": 100,
                "details": "",
                "desiredReplicas": 1,
                "completedReplicas": 1,
                "bytesCopied": 268435456,
                "bytesSkipped": 268435456,
                "bytesTotal": 536870912,
            },
        ],
    }
    status.update(replication)
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ImageVersion",
        "metadata": {
            "name": "ubuntu-server-" + version.replace(".", "-"),
            "namespace": "platform",
            "generation": 1,
            "creationTimestamp": "2026-11-23T13:00:00Z",
        },
        "spec": {
            "imageDefinitionName": "ubuntu-server",
            "version": version,
            "source": {"image": f"registry.example.com/builds/ubuntu-server:{version}"},
            "publishingProfile": {
                "replicaCount": 1,
                "targetRegions": [
                    {"name": "westcentralus"},
                    {"name": "eastus2", "regionalReplicaCount": 2},
                    {"name": "southcentralus", "excludeFromLatest": True},
                ],
            },
        },
        "status": {
            "observedGeneration": 1,
            "sourceDigest": "sha256:" + "ab" * 32,
            "sizeBytes": 536870912,
            "repository": "galleon/platform/contoso/ubuntu-server",
            "publishedDate": "2026-11-23T13:00:05Z",
            "replicationStatus": status,
            "conditions": [condition("Ready", "False", "Replicating", "1/3 regions replicated", 1)],
        },
    }


# -- durations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("10m", 600),
        ("1h", 3600),
        ("1h30m", 5400),
        ("1m30s", 90),
        ("1.5m", 90),
        ("250ms", 0.25),
        ("2d", 172800),
        ("90", 90),
        (" 10M ", 600),
        ("0s", 0),
    ],
)
def test_durations_parse_like_kubectl_timeouts(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "m", "10", "ten", "10x", "1h 30m", "-5s", "s10", "10m5"])
def test_bad_durations_say_what_is_expected(text: str) -> None:
    if text == "10":
        assert parse_duration(text) == 10  # a bare number is seconds
        return
    with pytest.raises(ValueError, match="use a duration such as 30s, 10m, 1h"):
        parse_duration(text)


def test_durations_print_short() -> None:
    assert [format_duration(s) for s in (0, 2, 90, 600, 3600, 5400, 90061)] == [
        "0s",
        "2s",
        "1m30s",
        "10m",
        "1h",
        "1h30m",
        "1d1h",
    ]


# -- ScaleSet -----------------------------------------------------------------------


def test_a_scaleset_mid_upgrade_shows_versions_instances_progress_and_conditions() -> None:
    out = lines(render.scaleset_view(scaleset()))
    text = "\n".join(out)
    assert out[0] == "ScaleSet web in platform"
    assert "region                   eastus2" in text
    assert "image                    ubuntu-server:latest" in text
    assert "capacity                 10 (9 ready, 10 exist)" in text
    assert "current version          1.0.0" in text
    assert "target version           1.0.2" in text
    assert "waiting for replication  1.0.3 (not yet replicated here)" in text
    assert "upgrade mode             Rolling, automatic OS upgrades on" in text
    # Instances by version and health.
    header = out.index("INSTANCES")
    assert out[header + 1].split() == ["VERSION", "INSTANCES", "HEALTHY", "NOT", "HEALTHY"]
    assert out[header + 2].split() == ["1.0.0", "6", "6", "0"]
    assert out[header + 3].split() == ["1.0.2", "4", "3", "1"]
    # The upgrade: code, versions, batch, a bar of successful/capacity, counters.
    assert "ROLLING UPGRADE  RollingForward  1.0.0 → 1.0.2" in text
    assert "batch      3/5, phase Waiting, instances 4, 5" in text
    assert "started    2026-11-23T13:40:00Z by Platform (last action Start at" in text
    bar_line = next(line for line in out if line.startswith("progress"))
    assert bar_line.endswith("4/10 successful (40%)")
    assert bar_line.count("█") == 9 and bar_line.count("░") == 15  # 40% of 24
    assert "successful 4 · failed 0 · in progress 2 · pending 4" in text
    assert "error" not in text.split("ROLLING UPGRADE")[1].split("CONDITIONS")[0]
    # Conditions in the order written.
    cond = out.index("CONDITIONS")
    assert out[cond + 1].split() == ["TYPE", "STATUS", "REASON", "SINCE", "MESSAGE"]
    assert out[cond + 2].startswith("Ready")
    assert "Upgrading" in out[cond + 2] and "2026-11-23T13:45:00Z" in out[cond + 2]
    assert [line.split()[0] for line in out[cond + 2 : cond + 7]] == [
        "Ready",
        "Reconciling",
        "Stalled",
        "Upgrading",
        "Degraded",
    ]


def test_a_faulted_upgrade_shows_its_error_and_rollback() -> None:
    text = flat(render.scaleset_view(faulted()))
    assert "ROLLING UPGRADE Faulted 1.0.0 → 1.0.2" in text
    assert (
        "error MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade: "
        "1 of 3 upgraded instances [index 2] unhealthy (33% > 20%)"
    ) in text  # brackets printed as is, not taken for markup
    assert "rollback 1 rolled back, 0 failed (instances 2)" in text
    assert "2/10 successful (20%)" in text
    assert "batch 3/5, phase Done progress" in text  # no batch instances once done


def test_a_paused_scaleset_a_cancel_and_a_generation_not_yet_observed_are_visible() -> None:
    obj = scaleset()
    obj["spec"]["paused"] = True
    obj["metadata"]["generation"] = 4
    obj["status"]["rollingUpgrade"]["cancelRequested"] = True
    text = printed(render.scaleset_view(obj))
    assert "paused                   yes: no new batch starts until resumed" in text
    assert "generation               4 (the operator has observed 3)" in text
    assert "cancel     requested: the upgrade stops after this batch" in text


def test_a_new_scaleset_without_status_prints_dashes_not_errors() -> None:
    obj = scaleset()
    obj["status"] = {}
    text = flat(render.scaleset_view(obj))
    assert "current version - target version -" in text
    assert "no instances" in text
    assert "ROLLING UPGRADE none yet" in text
    assert "no conditions reported yet" in text
    assert "generation 3 (the operator has observed none)" in text


def test_scaleset_list_with_and_without_namespaces() -> None:
    other = ready_scaleset()
    other["metadata"].update(name="api", namespace="team-b")
    out = lines(render.scaleset_list([scaleset(), other], NOW))
    assert out[0].split() == ["NAME", "REGION", "READY", "CURRENT", "TARGET", "UPGRADE", "AGE"]
    assert out[1].split() == [
        "web", "eastus2", "9/10", "1.0.0", "1.0.2", "RollingForward", "1.0.0", "→", "1.0.2",
        "batch", "3/5", "1h",
    ]  # fmt: skip
    assert out[2].split() == ["api", "eastus2", "10/10", "1.0.2", "1.0.2", "Completed", "1h"]
    wide = lines(render.scaleset_list([scaleset(), other], NOW, all_namespaces=True))
    assert wide[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert wide[2].split()[:2] == ["team-b", "api"]
    assert printed(render.scaleset_list([], NOW)).strip() == "No scalesets found."


def test_upgrade_history_table() -> None:
    history = [
        {
            "fromVersion": "1.0.0",
            "toVersion": "1.0.3",
            "startedBy": "Platform",
            "startTime": "2026-11-23T14:00:00Z",
            "endTime": "2026-11-23T14:01:40Z",
            "result": "Faulted",
            "progress": {
                "successfulInstanceCount": 0,
                "failedInstanceCount": 1,
                "inProgressInstanceCount": 0,
                "pendingInstanceCount": 0,
            },
            "error": {
                "code": "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade",
                "message": "1 of 1 upgraded instances unhealthy",
            },
            "rollbackInfo": {
                "successfullyRolledbackInstanceCount": 1,
                "failedRolledbackInstanceCount": 0,
            },
        },
        {
            "fromVersion": "1.0.0",
            "toVersion": "1.0.2",
            "startedBy": "User",
            "startTime": "2026-11-23T13:40:00Z",
            "endTime": "2026-11-23T13:52:30Z",
            "result": "Cancelled",
            "progress": {
                "successfulInstanceCount": 4,
                "failedInstanceCount": 0,
                "inProgressInstanceCount": 0,
                "pendingInstanceCount": 0,
            },
        },
    ]
    out = lines(render.history_view(scaleset(upgradeHistory=history)))
    assert out[0].split() == [
        "FROM", "TO", "BY", "START", "END", "RESULT", "OK", "FAILED", "ROLLED", "BACK", "ERROR",
    ]  # fmt: skip
    assert out[1].split()[:9] == [
        "1.0.0", "1.0.3", "Platform", "2026-11-23T14:00:00Z", "14:01:40Z", "Faulted", "0", "1",
        "1",
    ]  # fmt: skip
    assert out[1].split()[-1].startswith("MaxUnhealthyUpgraded")
    assert out[2].split() == [
        "1.0.0", "1.0.2", "User", "2026-11-23T13:40:00Z", "13:52:30Z", "Cancelled", "4", "0",
        "-", "-",
    ]  # fmt: skip
    # Each error in full below the table.
    assert out[4] == "ERRORS"
    assert " ".join(out[5:]) == (
        "1.0.0 → 1.0.3 started 2026-11-23T14:00:00Z: "
        "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade: "
        "1 of 1 upgraded instances unhealthy"
    )
    # The code is cut in the table (never a row in two), whole in a wide terminal.
    assert out[1].endswith("…") and len(out) == 7
    wide = Console(record=True, width=200)
    wide.print(render.history_view(scaleset(upgradeHistory=history)))
    assert wide.export_text().splitlines()[1].split()[-1] == (
        "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    )
    # An upgrade that ends on another day shows the full end time.
    history[1]["endTime"] = "2026-11-24T00:10:00Z"
    assert "2026-11-24T00:10:00Z" in printed(render.history_view(scaleset(upgradeHistory=history)))
    assert printed(render.history_view(scaleset())).strip() == "no upgrade recorded yet"


# -- ImageVersion and ImageDefinition ----------------------------------------------------


def test_replication_shows_a_bar_per_region_with_replicas_bytes_and_details() -> None:
    out = lines(render.replication_view(imageversion()))
    text = "\n".join(out)
    assert out[0] == "ImageVersion ubuntu-server-1-0-2 in platform: ubuntu-server 1.0.2"
    assert "replication  InProgress (1/3 regions)" in text
    assert "size         512.0 MiB" in text
    assert "published    2026-11-23T13:00:05Z" in text
    header = next(i for i, line in enumerate(out) if line.startswith("REGION"))
    assert out[header].split() == [
        "REGION", "STATE", "PROGRESS", "REPLICAS", "COPIED", "/", "TOTAL", "DETAILS",
    ]  # fmt: skip
    east = out[header + 1]
    assert east.split()[:2] == ["eastus2", "Replicating"]
    assert "█" * 7 + "░" * 9 + "  45%" in east  # 45% of 16
    assert "0/2" in east and "460.8 MiB / 1.0 GiB" in east
    assert "copying to registries a, b" in east
    queued = out[header + 2]
    assert queued.split()[:2] == ["southcentralus", "Queued"] and "0%" in queued
    assert queued.split()[-3:] == ["0/1", "-", "-"]  # no bytes known yet, no details
    west = out[header + 3]
    assert "█" * 16 + " 100%" in west and "1/1" in west
    assert "256.0 MiB / 512.0 MiB  256.0 MiB already there" in west
    assert "Ready: Replicating: 1/3 regions replicated" in text


def test_a_failed_replication_shows_the_reason() -> None:
    obj = imageversion(aggregatedState="Failed")
    obj["status"]["replicationStatus"]["summary"][0].update(
        state="Failed", details="registry b: 401 Unauthorized (check credentialsSecretRef)"
    )
    obj["status"]["conditions"] = [
        condition("Ready", "False", "ReplicationFailed", "eastus2: registry b: 401", 1)
    ]
    text = flat(render.replication_view(obj))
    assert "replication Failed (1/3 regions)" in text
    assert "registry b: 401 Unauthorized (check credentialsSecretRef)" in text
    assert "Ready: ReplicationFailed: eastus2: registry b: 401" in text


def test_versions_table_newest_first_with_regions_exclusions_and_latest_per_region() -> None:
    done = imageversion("1.0.0", aggregatedState="Completed", completedRegions="3/3")
    for line in done["status"]["replicationStatus"]["summary"]:
        line.update(state="Completed", progress=100)
    older = imageversion("0.9.12", aggregatedState="Completed", completedRegions="3/3")
    older["spec"]["publishingProfile"]["excludeFromLatest"] = True
    for line in older["status"]["replicationStatus"]["summary"]:
        line.update(state="Completed", progress=100)
    definition = {
        "metadata": {"name": "ubuntu-server", "namespace": "platform"},
        "status": {
            "latestVersion": "1.0.2",
            "latestVersionByRegion": [
                {"region": "eastus2", "version": "1.0.0"},
                {"region": "westcentralus", "version": "1.0.2"},
            ],
            "versionCount": 3,
        },
    }
    out = lines(render.versions_view("ubuntu-server", [older, done, imageversion()], definition))
    assert out[0].split() == [
        "VERSION", "NAME", "STATE", "REGIONS", "eastus2", "southcentralus", "westcentralus",
        "EXCLUDED", "FROM", "LATEST",
    ]  # fmt: skip
    assert out[1].split() == [
        "1.0.2", "ubuntu-server-1-0-2", "InProgress", "1/3", "Replicating", "45%", "Queued",
        "0%", "Completed", "southcentralus",
    ]  # fmt: skip
    assert out[2].split()[:4] == ["1.0.0", "ubuntu-server-1-0-0", "Completed", "3/3"]
    assert out[3].split()[0] == "0.9.12"  # numeric order, not text order
    assert out[3].split()[-3:] == ["yes", "(all", "regions)"]
    text = "\n".join(out)
    assert "LATEST  1.0.2 overall  3 version(s)" in text
    latest = out.index("REGION         LATEST VERSION")
    assert out[latest + 1].split() == ["eastus2", "1.0.0"]
    assert out[latest + 2].split() == ["westcentralus", "1.0.2"]


def test_versions_without_a_definition_or_versions() -> None:
    assert "imagedefinition ubuntu-server not found" in printed(
        render.versions_view("ubuntu-server", [imageversion()], None)
    )
    empty = printed(render.versions_view("ubuntu-server", [], {"status": {}}))
    assert "no versions of ubuntu-server" in empty
    assert "no version has completed replication to any region yet" in empty


def test_imageversion_list() -> None:
    out = lines(render.imageversion_list([imageversion()], NOW, all_namespaces=True))
    assert out[0].split() == [
        "NAMESPACE", "NAME", "DEFINITION", "VERSION", "REPLICATION", "REGIONS", "AGE",
    ]  # fmt: skip
    assert out[1].split() == [
        "platform", "ubuntu-server-1-0-2", "ubuntu-server", "1.0.2", "InProgress", "1/3", "50m",
    ]  # fmt: skip


def test_small_pieces() -> None:
    assert render.bar(0, 0, width=4).plain == "████"  # nothing to do is done
    assert render.bar(15, 10, width=4).plain == "████"  # never more than full
    assert render.progress(0, 10, width=4).plain == "░░░░  0/10 (0%)"
    assert render.age("2026-11-23T13:49:15Z", NOW) == "45s"
    assert render.age(None, NOW) == "-"
    assert render.timestamp("2026-11-23T13:45:00.123+01:00") == "2026-11-23T12:45:00Z"
    assert render.elapsed("2026-11-23T13:40:00Z", None) == "-"
    assert printed(render.text("[bold]not markup[/bold]")).strip() == "[bold]not markup[/bold]"


# -- what `status` decides -------------------------------------------------------------


def test_scaleset_outcomes() -> None:
    assert scaleset_outcome(ready_scaleset()) == Outcome(
        "done", "10 of 10 instances ready on 1.0.2"
    )
    rolling = scaleset_outcome(scaleset())
    assert rolling == Outcome("waiting", "upgrading 1.0.0 → 1.0.2: batch 3/5, 4 of 10 upgraded")
    failed = scaleset_outcome(faulted())
    assert failed.state == "failed" and failed.exit_code == 1
    assert failed.message == (
        "the upgrade 1.0.0 → 1.0.2 faulted "
        "(MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade): "
        "1 of 3 upgraded instances [index 2] unhealthy (33% > 20%)"
    )


def test_a_scaleset_is_not_done_before_the_operator_saw_its_spec() -> None:
    new_spec = ready_scaleset()
    new_spec["metadata"]["generation"] = 4  # e.g. kubectl apply of a new template
    assert scaleset_outcome(new_spec) == Outcome(
        "waiting", "waiting for the operator to observe generation 4 (observed 3)"
    )
    # A stale Faulted upgrade does not fail the new spec either.
    stale_fault = faulted()
    stale_fault["metadata"]["generation"] = 4
    assert scaleset_outcome(stale_fault).state == "waiting"
    # Ready computed for an older generation is not Ready for this one.
    old_ready = ready_scaleset()
    old_ready["status"]["conditions"][0]["observedGeneration"] = 2
    assert scaleset_outcome(old_ready).state == "waiting"
    nothing = scaleset()
    nothing["status"] = {}
    assert scaleset_outcome(nothing) == Outcome(
        "waiting", "waiting for the operator to report a status"
    )


def test_a_scaleset_that_is_not_ready_says_why() -> None:
    obj = ready_scaleset()
    obj["status"]["rollingUpgrade"] = None
    obj["status"]["conditions"] = [
        condition("Ready", "False", "VersionNotReplicated", "1.0.2 is not in eastus2 yet")
    ]
    assert scaleset_outcome(obj) == Outcome(
        "waiting", "not ready (VersionNotReplicated): 1.0.2 is not in eastus2 yet"
    )
    paused = scaleset()
    paused["spec"]["paused"] = True
    assert scaleset_outcome(paused).message.endswith("4 of 10 upgraded, paused")
    cancelled = copy.deepcopy(ready_scaleset())
    cancelled["status"]["rollingUpgrade"]["runningStatus"]["code"] = "Cancelled"
    assert scaleset_outcome(cancelled).state == "done"  # cancelled is not a failure


def test_imageversion_outcomes() -> None:
    assert imageversion_outcome(imageversion()) == Outcome(
        "waiting",
        "InProgress: 1/3 regions replicated (eastus2 Replicating 45%, "
        "southcentralus Queued 0%, westcentralus Completed 100%)",
    )
    assert imageversion_outcome(
        imageversion(aggregatedState="Completed", completedRegions="3/3")
    ) == Outcome("done", "replicated to 3/3 regions")
    failed = imageversion(aggregatedState="Failed")
    failed["status"]["replicationStatus"]["summary"][0].update(
        state="Failed", details="source not found"
    )
    assert imageversion_outcome(failed) == Outcome(
        "failed", "replication failed: eastus2: source not found"
    )
    changed = imageversion(aggregatedState="Completed")
    changed["metadata"]["generation"] = 2  # a region was added
    assert imageversion_outcome(changed).state == "waiting"
