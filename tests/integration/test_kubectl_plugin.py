"""`kubectl galleon` against the real control plane.

Most tests write the objects and their status directly with the admin client (no
operator), to put a ScaleSet, an ImageVersion or an ImageBuild in exactly the state a
command must react to: Faulted, Ready, stale, missing, Building, Failed. For the image
builder's commands a thread writes the build's status while the plugin follows it
(what the builder controller would write). The last tests run the real operator and
wait for a real fleet with `status scaleset`.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.types import PatchType
from typer.testing import CliRunner, Result

from galleon import GROUP, VERSION
from galleon.api import crd
from galleon.cli import main as cli
from galleon.cli.cluster import Cluster, Kind, NotFound
from galleon.cli.polling import WATCH_SECONDS
from galleon.core import times
from galleon.kube.resources import ImageDefinition, ImageVersion, ScaleSet
from galleon.oci import RegistryClient
from galleon_testkit.images import build_image, push_image
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
RFC3339_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class Plugin:
    """Runs `kubectl galleon ...` in-process against the session's control plane."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig, self.namespace = kubeconfig, namespace
        self.runner = CliRunner()

    def __call__(self, *args: str, kubeconfig: Path | None = None, **env: str | None) -> Result:
        arguments = [*args, "--kubeconfig", str(kubeconfig or self.kubeconfig)]
        # A wide terminal, and no KUBECONFIG from the environment running the tests.
        environment = {"COLUMNS": "160", "KUBECONFIG": None, **env}
        return self.runner.invoke(cli.app, arguments, env=environment)

    def ns(self, *args: str, **env: str | None) -> Result:
        """The same, in the test's namespace."""
        return self(*args, "-n", self.namespace, **env)


@pytest.fixture
def plugin(control_plane: Any, namespace: str) -> Plugin:
    return Plugin(control_plane.kubeconfig, namespace)


def flat(result: Result) -> str:
    """Everything printed (stdout and stderr), whitespace runs as one space."""
    return " ".join(result.output.split())


def condition(type_: str, status: str, reason: str, message: str = "", gen: int = 1) -> dict:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": gen,
        "lastTransitionTime": "2026-11-23T13:45:00Z",
    }


def scaleset_document(
    name: str, namespace: str, region: str = "eastus2", capacity: int = 5
) -> dict[str, Any]:
    """A complete, valid ScaleSet (the CRD schema checks every field)."""
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "region": region,
            "capacity": capacity,
            "imageReference": {"imageDefinitionName": "os", "version": "latest"},
            "osContainerName": "os",
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "os",
                            "image": "set-by-galleon",
                            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}},
                        }
                    ]
                },
            },
            "dataDisks": [{"name": "data", "lun": 0, "diskSizeGB": 1}],
            "upgradePolicy": {
                "mode": "Rolling",
                "automaticOSUpgradePolicy": {"enableAutomaticOSUpgrade": True},
                "rollingUpgradePolicy": {"maxBatchInstancePercent": 20},
            },
        },
    }


def create_scaleset(kube: Client, namespace: str, name: str = "web", **kw: Any) -> Any:
    return kube.create(codecs.from_dict(scaleset_document(name, namespace, **kw)))


def set_status(kube: Client, resource: Any, namespace: str, name: str, status: dict) -> None:
    kube.patch(
        resource.Status,
        name,
        {"status": status},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


def get(kube: Client, resource: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(kube.get(resource, name, namespace=namespace))


def upgrade_status(code: str, **extra: Any) -> dict[str, Any]:
    """status.rollingUpgrade as the operator writes it, 1.0.0 → 1.0.2 on 5 instances."""
    return {
        "fromVersion": "1.0.0",
        "toVersion": "1.0.2",
        "startedBy": "Platform",
        "runningStatus": {
            "code": code,
            "startTime": "2026-11-23T13:40:00Z",
            "lastAction": "Start",
            "lastActionTime": "2026-11-23T13:40:00Z",
        },
        "progress": {
            "successfulInstanceCount": 2,
            "failedInstanceCount": 0,
            "inProgressInstanceCount": 1,
            "pendingInstanceCount": 2,
        },
        "currentBatch": 3,
        "totalBatches": 5,
        "phase": "Waiting",
        "batchInstances": [2],
        "upgradedInstances": [0, 1],
        **extra,
    }


def rolling_forward() -> dict[str, Any]:
    return {
        "observedGeneration": 1,
        "replicas": 5,
        "readyReplicas": 4,
        "currentVersion": "1.0.0",
        "targetVersion": "1.0.2",
        "instancesByVersion": [
            {"version": "1.0.0", "instances": 3, "healthy": 3},
            {"version": "1.0.2", "instances": 2, "healthy": 1},
        ],
        "rollingUpgrade": upgrade_status("RollingForward"),
        "conditions": [
            condition("Ready", "False", "Upgrading", "upgrading 1.0.0 to 1.0.2: batch 3"),
            condition("Upgrading", "True", "RollingForward", "upgrading 1.0.0 to 1.0.2"),
        ],
    }


def faulted() -> dict[str, Any]:
    status = rolling_forward()
    status["rollingUpgrade"] = upgrade_status(
        "Faulted",
        phase="Done",
        error={
            "code": "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade",
            "message": "1 of 3 upgraded instances unhealthy (33% > 20%)",
        },
        rollbackInfo={"successfullyRolledbackInstanceCount": 1, "failedRolledbackInstanceCount": 0},
    )
    status["conditions"] = [
        condition("Ready", "False", "UpgradeFaulted", "the upgrade to 1.0.2 faulted"),
        condition("Stalled", "True", "UpgradeFaulted", "the upgrade to 1.0.2 faulted"),
    ]
    return status


def ready() -> dict[str, Any]:
    status = rolling_forward()
    status.update(
        currentVersion="1.0.2",
        readyReplicas=5,
        instancesByVersion=[{"version": "1.0.2", "instances": 5, "healthy": 5}],
        rollingUpgrade=upgrade_status(
            "Completed",
            phase="Done",
            progress={
                "successfulInstanceCount": 5,
                "failedInstanceCount": 0,
                "inProgressInstanceCount": 0,
                "pendingInstanceCount": 0,
            },
        ),
        conditions=[condition("Ready", "True", "InstancesHealthy", "5 of 5 instances healthy")],
    )
    return status


def imageversion_document(name: str, namespace: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ImageVersion",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "imageDefinitionName": "os",
            "version": version,
            "source": {"image": f"registry.example.com/os:{version}"},
            "publishingProfile": {
                "targetRegions": [
                    {"name": "westcentralus"},
                    {"name": "eastus2", "regionalReplicaCount": 2},
                ]
            },
        },
    }


def region_line(region: str, state: str, progress: int, **extra: Any) -> dict[str, Any]:
    desired = 2 if region == "eastus2" else 1
    return {
        "region": region,
        "state": state,
        "progress": progress,
        "details": "",
        "desiredReplicas": desired,
        "completedReplicas": desired if state == "Completed" else 0,
        "bytesCopied": 0,
        "bytesTotal": 0,
        **extra,
    }


def replication(state: str, ratio: str, *lines: dict[str, Any]) -> dict[str, Any]:
    return {
        "observedGeneration": 1,
        "sourceDigest": "sha256:" + "cd" * 32,
        "sizeBytes": 2097152,
        "replicationStatus": {
            "aggregatedState": state,
            "completedRegions": ratio,
            "summary": list(lines),
        },
    }


# -- reading ------------------------------------------------------------------------------


def test_get_scaleset_shows_the_upgrade_and_lists_scalesets(
    plugin: Plugin, kube: Client, namespace: str
) -> None:
    create_scaleset(kube, namespace)
    set_status(kube, ScaleSet, namespace, "web", rolling_forward())
    result = plugin.ns("get", "scaleset", "web")
    assert result.exit_code == 0, result.output
    out = flat(result)
    assert f"ScaleSet web in {namespace}" in out
    assert "current version 1.0.0 target version 1.0.2" in out
    assert "VERSION INSTANCES HEALTHY NOT HEALTHY 1.0.0 3 3 0 1.0.2 2 1 1" in out
    assert "ROLLING UPGRADE RollingForward 1.0.0 → 1.0.2" in out
    assert "batch 3/5, phase Waiting, instances 2" in out
    assert "2/5 successful (40%)" in out
    assert "successful 2 · failed 0 · in progress 1 · pending 2" in out
    assert "Upgrading True RollingForward" in out

    create_scaleset(kube, namespace, "api", capacity=2)
    listing = plugin.ns("get", "scalesets")
    assert listing.exit_code == 0, listing.output
    rows = [line.split() for line in listing.output.splitlines()]
    assert rows[0] == ["NAME", "REGION", "READY", "CURRENT", "TARGET", "UPGRADE", "AGE"]
    assert [row[0] for row in rows[1:]] == ["api", "web"]
    assert rows[2][:6] == ["web", "eastus2", "4/5", "1.0.0", "1.0.2", "RollingForward"]
    everywhere = plugin("get", "ss", "-A")
    assert everywhere.exit_code == 0, everywhere.output
    assert [namespace, "web"] in [line.split()[:2] for line in everywhere.output.splitlines()]
    both = plugin.ns("get", "scaleset", "web", "-A")
    assert both.exit_code == 1 and "across all namespaces" in both.output


def test_history_lists_the_last_upgrades(plugin: Plugin, kube: Client, namespace: str) -> None:
    create_scaleset(kube, namespace)
    entry = {
        "fromVersion": "1.0.0",
        "toVersion": "1.0.2",
        "startedBy": "User",
        "startTime": "2026-11-23T13:40:00Z",
        "endTime": "2026-11-23T13:52:30Z",
        "result": "Cancelled",
        "progress": {"successfulInstanceCount": 2, "failedInstanceCount": 0},
    }
    status = ready()
    status["upgradeHistory"] = [entry]
    set_status(kube, ScaleSet, namespace, "web", status)
    result = plugin.ns("history", "web")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert ["1.0.0", "1.0.2", "User", "2026-11-23T13:40:00Z", "13:52:30Z", "Cancelled"] in [
        row[:6] for row in rows
    ]
    create_scaleset(kube, namespace, "new")
    assert "no upgrade recorded yet" in plugin.ns("history", "new").output


def test_versions_and_replication(plugin: Plugin, kube: Client, namespace: str) -> None:
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageDefinition",
                "metadata": {"name": "os", "namespace": namespace},
                "spec": {
                    "galleryName": "gallery",
                    "identifier": {"publisher": "galleon", "offer": "test", "sku": "os"},
                },
            }
        )
    )
    set_status(
        kube,
        ImageDefinition,
        namespace,
        "os",
        {
            "observedGeneration": 1,
            "latestVersion": "1.0.2",
            "latestVersionByRegion": [
                {"region": "eastus2", "version": "1.0.0"},
                {"region": "westcentralus", "version": "1.0.2"},
            ],
            "versionCount": 2,
        },
    )
    for name, version in (("os-1-0-0", "1.0.0"), ("os-1-0-2", "1.0.2")):
        kube.create(codecs.from_dict(imageversion_document(name, namespace, version)))
    set_status(
        kube,
        ImageVersion,
        namespace,
        "os-1-0-0",
        replication(
            "Completed",
            "2/2",
            region_line("eastus2", "Completed", 100),
            region_line("westcentralus", "Completed", 100),
        ),
    )
    set_status(
        kube,
        ImageVersion,
        namespace,
        "os-1-0-2",
        replication(
            "InProgress",
            "1/2",
            region_line(
                "eastus2",
                "Replicating",
                50,
                bytesCopied=2097152,
                bytesTotal=4194304,
                details="copying to r0, r1",
            ),
            region_line("westcentralus", "Completed", 100),
        ),
    )
    result = plugin.ns("versions", "os")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.output.splitlines()]
    assert rows[0][:6] == ["VERSION", "NAME", "STATE", "REGIONS", "eastus2", "westcentralus"]
    assert rows[1][:8] == [
        "1.0.2", "os-1-0-2", "InProgress", "1/2", "Replicating", "50%", "Completed", "no",
    ]  # fmt: skip
    assert rows[2][:3] == ["1.0.0", "os-1-0-0", "Completed"]
    assert "LATEST 1.0.2 overall 2 version(s)" in flat(result)
    assert ["eastus2", "1.0.0"] in rows and ["westcentralus", "1.0.2"] in rows

    view = plugin.ns("replication", "os-1-0-2")
    assert view.exit_code == 0, view.output
    east = next(line for line in view.output.splitlines() if line.startswith("eastus2"))
    assert "█" * 8 + "░" * 8 + "  50%" in east
    assert "0/2" in east and "2.0 MiB / 4.0 MiB" in east and "copying to r0, r1" in east
    listing = plugin.ns("get", "imageversions")
    assert [line.split()[:5] for line in listing.output.splitlines() if "1.0.0" in line] == [
        ["os-1-0-0", "os", "1.0.0", "Completed", "2/2"]
    ]
    missing = plugin.ns("versions", "nothing")
    assert missing.exit_code == 1
    assert f"imagedefinition nothing not found in namespace {namespace}" in flat(missing)


# -- status: exit codes ---------------------------------------------------------------------


def test_status_scaleset_exit_codes(plugin: Plugin, kube: Client, namespace: str) -> None:
    create_scaleset(kube, namespace)
    began = time.monotonic()
    nothing = plugin.ns("status", "scaleset", "web", "--timeout", "2s")
    took = time.monotonic() - began
    assert nothing.exit_code == 2, nothing.output
    assert 2 <= took < 20, took
    assert "timed out after 2s waiting for scaleset web" in flat(nothing)
    assert "waiting for the operator to report a status" in flat(nothing)

    set_status(kube, ScaleSet, namespace, "web", faulted())
    failed = plugin.ns("status", "scaleset", "web", "--timeout", "10s")
    assert failed.exit_code == 1, failed.output
    assert (
        "scaleset web failed: the upgrade 1.0.0 → 1.0.2 faulted "
        "(MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade): "
        "1 of 3 upgraded instances unhealthy (33% > 20%)"
    ) in flat(failed)
    assert "Traceback" not in failed.output

    set_status(kube, ScaleSet, namespace, "web", rolling_forward())
    rolling = plugin.ns("status", "scaleset", "web", "--timeout", "1s")
    assert rolling.exit_code == 2
    assert "upgrading 1.0.0 → 1.0.2: batch 3/5, 2 of 5 upgraded" in flat(rolling)

    set_status(kube, ScaleSet, namespace, "web", ready())
    done = plugin.ns("status", "scaleset", "web")
    assert done.exit_code == 0, done.output
    assert "scaleset web is ready: 5 of 5 instances ready on 1.0.2" in flat(done)

    # A new spec the operator has not seen yet is not done, even though Ready says True.
    kube.patch(
        ScaleSet,
        "web",
        {"spec": {"capacity": 6}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    stale = plugin.ns("status", "scaleset", "web", "--timeout", "1s")
    assert stale.exit_code == 2
    assert "waiting for the operator to observe generation 2 (observed 1)" in flat(stale)

    bad = plugin.ns("status", "scaleset", "web", "--timeout", "soon")
    assert bad.exit_code == 2 and "invalid duration" in flat(bad)


def test_status_imageversion_exit_codes(plugin: Plugin, kube: Client, namespace: str) -> None:
    kube.create(codecs.from_dict(imageversion_document("os-1-0-0", namespace, "1.0.0")))
    set_status(
        kube,
        ImageVersion,
        namespace,
        "os-1-0-0",
        replication(
            "InProgress",
            "1/2",
            region_line("eastus2", "Replicating", 30),
            region_line("westcentralus", "Completed", 100),
        ),
    )
    waiting = plugin.ns("status", "imageversion", "os-1-0-0", "--timeout", "1s")
    assert waiting.exit_code == 2, waiting.output
    assert "InProgress: 1/2 regions replicated (eastus2 Replicating 30%" in flat(waiting)

    set_status(
        kube,
        ImageVersion,
        namespace,
        "os-1-0-0",
        replication(
            "Failed",
            "1/2",
            region_line("eastus2", "Failed", 30, details="registry r1: 401 Unauthorized"),
            region_line("westcentralus", "Completed", 100),
        ),
    )
    failed = plugin.ns("status", "iv", "os-1-0-0", "--timeout", "10s")
    assert failed.exit_code == 1, failed.output
    assert (
        "imageversion os-1-0-0 failed: replication failed: eastus2: registry r1: 401 Unauthorized"
        in flat(failed)
    )

    set_status(
        kube,
        ImageVersion,
        namespace,
        "os-1-0-0",
        replication(
            "Completed",
            "2/2",
            region_line("eastus2", "Completed", 100),
            region_line("westcentralus", "Completed", 100),
        ),
    )
    done = plugin.ns("status", "imageversion", "os-1-0-0", "--timeout", "10s")
    assert done.exit_code == 0, done.output
    assert "imageversion os-1-0-0 is ready: replicated to 2/2 regions" in flat(done)


def test_status_fails_at_once_on_a_stalled_object(
    plugin: Plugin, kube: Client, namespace: str
) -> None:
    """Stalled=True for the current generation fails any kind at the first poll
    (kstatus reads it so), with its reason and message, long before the timeout."""
    create_scaleset(kube, namespace)
    kube.create(codecs.from_dict(imageversion_document("os-1-0-0", namespace, "1.0.0")))
    message = "version 1.0.0 of os is already published by ImageVersion os-first"
    stalled_version = replication("InProgress", "0/2")
    stalled_version["conditions"] = [
        condition("Ready", "False", "VersionConflict", message),
        condition("Stalled", "True", "VersionConflict", message),
    ]
    set_status(kube, ImageVersion, namespace, "os-1-0-0", stalled_version)
    set_status(
        kube,
        ScaleSet,
        namespace,
        "web",
        {
            "observedGeneration": 1,
            "conditions": [
                condition("Ready", "False", "RegionNotFound", "Region nowhere does not exist"),
                condition("Stalled", "True", "RegionNotFound", "Region nowhere does not exist"),
            ],
        },
    )
    for args, printed in (
        (
            ("scaleset", "web"),
            "scaleset web failed: stalled (RegionNotFound): Region nowhere does not exist",
        ),
        (
            ("imageversion", "os-1-0-0"),
            f"imageversion os-1-0-0 failed: stalled (VersionConflict): {message}",
        ),
    ):
        began = time.monotonic()
        result = plugin.ns("status", *args, "--timeout", "5m")
        took = time.monotonic() - began
        assert result.exit_code == 1, result.output
        assert took < 20, took  # at once, not after the 5 minutes
        assert printed in flat(result)
        assert "Traceback" not in result.output

    # Stalled for an older spec says nothing about the new one: keep waiting.
    kube.patch(
        ScaleSet, "web", {"spec": {"capacity": 6}}, namespace=namespace, patch_type=PatchType.MERGE
    )
    set_status(kube, ScaleSet, namespace, "web", {"observedGeneration": 2})
    waiting = plugin.ns("status", "scaleset", "web", "--timeout", "1s")
    assert waiting.exit_code == 2, waiting.output
    assert "stalled" not in flat(waiting)


# -- controls ---------------------------------------------------------------------------------


def test_pause_resume_cancel_and_upgrade_patch_the_scaleset(
    plugin: Plugin, kube: Client, namespace: str
) -> None:
    create_scaleset(kube, namespace)
    set_status(kube, ScaleSet, namespace, "web", rolling_forward())

    paused = plugin.ns("pause", "web")
    assert paused.exit_code == 0, paused.output
    assert get(kube, ScaleSet, namespace, "web")["spec"]["paused"] is True
    assert f"paused scaleset web in namespace {namespace} (spec.paused=true)" in flat(paused)
    assert "the upgrade 1.0.0 → 1.0.2 stops after batch 3" in flat(paused)
    again = plugin.ns("pause", "web")
    assert again.exit_code == 0 and "was already paused" in flat(again)

    resumed = plugin.ns("resume", "web")
    assert resumed.exit_code == 0, resumed.output
    assert get(kube, ScaleSet, namespace, "web")["spec"]["paused"] is False
    assert "resumed scaleset web" in flat(resumed)

    before = datetime.now(UTC).replace(microsecond=0)
    cancelled = plugin.ns("cancel", "web")
    assert cancelled.exit_code == 0, cancelled.output
    annotations = get(kube, ScaleSet, namespace, "web")["metadata"]["annotations"]
    stamp = annotations["galleon.dev/cancel-upgrade"]
    assert RFC3339_SECONDS.match(stamp), stamp
    moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 0 <= (moment - before).total_seconds() <= 10
    assert f"galleon.dev/cancel-upgrade={stamp}" in flat(cancelled)
    assert "stops after batch 3" in flat(cancelled)

    set_status(kube, ScaleSet, namespace, "web", faulted())
    started = plugin.ns("upgrade", "web")
    assert started.exit_code == 0, started.output
    annotations = get(kube, ScaleSet, namespace, "web")["metadata"]["annotations"]
    assert RFC3339_SECONDS.match(annotations["galleon.dev/start-upgrade"])
    assert annotations["galleon.dev/cancel-upgrade"] == stamp  # the other one is untouched
    assert "the operator upgrades the instances to 1.0.2 (now on 1.0.0)" in flat(started)
    # The spec kept everything else (a merge patch, not a replace).
    spec = get(kube, ScaleSet, namespace, "web")["spec"]
    assert spec["capacity"] == 5 and spec["dataDisks"][0]["name"] == "data"


def test_a_missing_object_is_one_clear_line(
    plugin: Plugin, namespace: str, builder_crds: None
) -> None:
    for args, kind in (
        (("get", "scaleset", "web"), "scaleset web"),
        (("status", "scaleset", "web", "--timeout", "5s"), "scaleset web"),
        (("pause", "web"), "scaleset web"),
        (("cancel", "web"), "scaleset web"),
        (("history", "web"), "scaleset web"),
        (("replication", "os-1-0-0"), "imageversion os-1-0-0"),
        (("status", "imageversion", "os-1-0-0"), "imageversion os-1-0-0"),
        (("get", "imagebuild", "web-1"), "imagebuild web-1"),
        (("get", "imagebuild", "web-1", "--watch"), "imagebuild web-1"),
        (("status", "imagebuild", "web-1", "--timeout", "5s"), "imagebuild web-1"),
        (("build", "web"), "imagetemplate web"),
        (("build", "web", "--wait"), "imagetemplate web"),
        (("builds", "web"), "imagetemplate web"),
    ):
        result = plugin.ns(*args)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.strip() == f"error: {kind} not found in namespace {namespace}", args
        assert result.stdout == ""  # the error goes to stderr
        assert isinstance(result.exception, SystemExit)


# -- namespace, context, kubeconfig ------------------------------------------------------------


@pytest.fixture
def two_contexts(control_plane: Any, namespace: str, tmp_path: Path) -> Path:
    """The admin kubeconfig with a second context `team` whose namespace is the test's."""
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    base = config["contexts"][0]["context"]
    config["contexts"].append({"name": "team", "context": {**base, "namespace": namespace}})
    path = tmp_path / "two-contexts.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


def test_namespace_and_context_are_honoured(
    plugin: Plugin, kube: Client, namespace: str, two_contexts: Path
) -> None:
    create_scaleset(kube, namespace)
    set_status(kube, ScaleSet, namespace, "web", ready())
    # The current context has no namespace: "default".
    default = plugin("get", "scaleset", "web", kubeconfig=two_contexts)
    assert default.exit_code == 1
    assert "scaleset web not found in namespace default" in flat(default)
    # The context's namespace.
    team = plugin("get", "scaleset", "web", "--context", "team", kubeconfig=two_contexts)
    assert team.exit_code == 0, team.output
    assert f"ScaleSet web in {namespace}" in flat(team)
    # -n wins over the context's namespace.
    other = plugin(
        "pause", "web", "--context", "team", "-n", "kube-system", kubeconfig=two_contexts
    )
    assert other.exit_code == 1
    assert "scaleset web not found in namespace kube-system" in flat(other)
    # KUBECONFIG is read when --kubeconfig is not given.
    by_env = CliRunner().invoke(
        cli.app,
        ["status", "scaleset", "web", "--context", "team", "--timeout", "5s"],
        env={"KUBECONFIG": str(two_contexts), "COLUMNS": "160"},
    )
    assert by_env.exit_code == 0, by_env.output
    # A context that does not exist says so, and which exist.
    wrong = plugin("get", "scaleset", "web", "--context", "prod", kubeconfig=two_contexts)
    assert wrong.exit_code == 1
    assert flat(wrong) == (
        f'error: context "prod" not found in kubeconfig {two_contexts} '
        "(contexts: galleon-test, team)"
    )
    assert "Traceback" not in wrong.output


def test_an_unreachable_api_server_is_one_clear_line(
    plugin: Plugin, control_plane: Any, tmp_path: Path
) -> None:
    config = yaml.safe_load(Path(control_plane.kubeconfig).read_text())
    config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:9"
    path = tmp_path / "nowhere.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    result = plugin("get", "scaleset", "web", kubeconfig=path)
    assert result.exit_code == 1
    assert flat(result).startswith("error: cannot reach the API server https://127.0.0.1:9")


def test_a_kind_the_server_does_not_know_is_one_clear_line(control_plane: Any) -> None:
    unknown = Kind(create_namespaced_resource("nothing.example", "v1", "Thing", "things"), "thing")
    cluster = Cluster(Path(control_plane.kubeconfig), None, "default")
    for call in (lambda: cluster.get(unknown, "x"), lambda: cluster.list(unknown)):
        with pytest.raises(
            NotFound,
            match=r"does not know things\.nothing\.example: are the galleon CRDs installed\?",
        ):
            call()


# -- watch ---------------------------------------------------------------------------------------


def test_watch_prints_each_change_until_interrupted(
    plugin: Plugin, kube: Client, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    create_scaleset(kube, namespace)
    set_status(kube, ScaleSet, namespace, "web", rolling_forward())
    steps: list[Callable[[], None]] = [
        lambda: None,  # nothing changed: not printed again
        lambda: set_status(kube, ScaleSet, namespace, "web", ready()),
    ]

    def sleep(_: float) -> None:
        if not steps:
            raise KeyboardInterrupt
        steps.pop(0)()

    monkeypatch.setattr(cli, "_sleep", sleep)
    result = plugin.ns("get", "scaleset", "web", "--watch")
    assert result.exit_code == 0, result.output
    assert result.output.count("ScaleSet web in") == 2
    first, second = result.output.split("\n--- ")
    assert "RollingForward" in first and "2/5 successful (40%)" in first
    assert "Completed" in second and "5/5 successful (100%)" in second


# -- image builds ------------------------------------------------------------------------------

ImageTemplate = create_namespaced_resource(GROUP, VERSION, "ImageTemplate", "imagetemplates")
ImageBuild = create_namespaced_resource(GROUP, VERSION, "ImageBuild", "imagebuilds")
TEMPLATE_LABEL = "galleon.dev/template"
SOURCE = "registry.example.com/base/ubuntu:22.04"


def digest(hex_digit: str) -> str:
    return "sha256:" + hex_digit * 64


def builder_crd_documents() -> dict[str, dict[str, Any]]:
    """ImageTemplate's and ImageBuild's CRDs as the models render them: from
    `render_builder_crds()` while they are not in crds/, from `render_all()` once they are."""
    render_builder = getattr(crd, "render_builder_crds", None)
    rendered = render_builder() if render_builder is not None else crd.render_all()
    return {
        file: document
        for file, document in rendered.items()
        if document["spec"]["names"]["kind"] in ("ImageTemplate", "ImageBuild")
    }


def crd_state(client: Client, name: str) -> str:
    """Whether the CRD is served, terminating (being deleted, e.g. by another module's
    teardown) or absent."""
    try:
        found = client.get(CustomResourceDefinition, name)
    except ApiError as error:
        if error.status.code == 404:
            return "absent"
        raise
    return "terminating" if found.metadata and found.metadata.deletionTimestamp else "served"


@pytest.fixture(scope="module")
def builder_crds(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The builder's CRDs served for this module: those the session did not install from
    crds/ are installed here (as tests/integration/test_builder_admission.py does) and
    deleted at the end; those it did are left alone."""
    client = control_plane.client()
    documents = builder_crd_documents()
    folder: Path = tmp_path_factory.mktemp("plugin-builder-crds")
    for file, document in documents.items():
        name = document["metadata"]["name"]
        wait_for(
            lambda name=name: crd_state(client, name) != "terminating",
            timeout=120,
            description=f"CRD {name} to be deleted",
        )
        if crd_state(client, name) == "absent":
            (folder / file).write_text(yaml.safe_dump(document, sort_keys=False))
    installed = control_plane.apply_crds(folder)
    yield
    for name in installed:
        with contextlib.suppress(ApiError):
            client.delete(CustomResourceDefinition, name)


def template_document(name: str, namespace: str) -> dict[str, Any]:
    """A valid ImageTemplate of two steps (the CRD schema and its CEL rules check it)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ImageTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": {"image": {"image": SOURCE}},
            "customize": [
                {
                    "name": "motd",
                    "type": "File",
                    "file": {"destination": "/etc/motd", "content": {"inline": "hello\n"}},
                },
                {"name": "user", "type": "User", "user": "nobody"},
            ],
            "distribute": {
                "imageDefinitionName": "os",
                "publishingProfile": {"targetRegions": [{"name": "eastus2"}]},
            },
        },
    }


def create_template(kube: Client, namespace: str, name: str = "web") -> None:
    kube.create(codecs.from_dict(template_document(name, namespace)))


def create_build(kube: Client, namespace: str, name: str, template: str = "web") -> None:
    """An ImageBuild as `build` makes it, with a name of the test's choosing."""
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "ImageBuild",
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": {TEMPLATE_LABEL: template},
                },
                "spec": {"templateName": template, "reason": "Manual"},
            }
        )
    )


def stamp(moment: datetime) -> str:
    return times.format(moment)


def steps(*phases: str, **last: Any) -> list[dict[str, Any]]:
    """status.steps of the template's two steps (motd, user): the first in `phases`, the
    rest Pending; `last` is added to the last of `phases`."""
    written: list[dict[str, Any]] = []
    padded = [*phases, "Pending", "Pending"][:2]
    for (name, type_), phase in zip((("motd", "File"), ("user", "User")), padded, strict=True):
        step: dict[str, Any] = {"name": name, "type": type_, "phase": phase}
        if phase == "Succeeded" and name == "motd":
            step.update(
                durationSeconds=0.4, layerDigest=digest("c"), sizeBytes=312, message="1 file"
            )
        if phase == "Succeeded" and name == "user":
            step.update(durationSeconds=2, message="user nobody")
        written.append(step)
    written[len(phases) - 1].update(last)
    return written


def succeeded(began: datetime) -> dict[str, Any]:
    """The status the builder writes for a build that took 2m10s and published os 1.0.0."""
    return {
        "phase": "Succeeded",
        "startTime": stamp(began),
        "completionTime": stamp(began + timedelta(seconds=130)),
        "sourceDigest": digest("a"),
        "outputDigest": digest("b"),
        "stagingImage": "registry.example.com/galleon/os__staging:web-1",
        "imageVersion": {"name": "os-1-0-0", "version": "1.0.0"},
        "steps": steps("Succeeded", "Succeeded"),
        "inputs": [{"name": "source", "digest": digest("a")}],
        "message": "published os 1.0.0",
    }


@dataclass
class Watches:
    """The watch requests the plugin made (`Cluster.watch`, wrapped): each request's
    object, resourceVersion and seconds, and an event set at the first."""

    calls: list[tuple[str, str, int]] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def watches(monkeypatch: pytest.MonkeyPatch) -> Watches:
    seen = Watches()
    real = Cluster.watch

    def watch(self: Cluster, kind: Kind, name: str, version: str, seconds: int) -> Any:
        seen.calls.append((name, version, seconds))
        seen.started.set()
        yield from real(self, kind, name, version, seconds)

    monkeypatch.setattr(Cluster, "watch", watch)
    return seen


class Background:
    """`work` in a thread (the builder's part); `join` re-raises what it raised."""

    def __init__(self, work: Callable[[], None]) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(work,), daemon=True)
        self.thread.start()

    def _run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as error:  # re-raised in the test's thread by join
            self.error = error

    def join(self) -> None:
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "the background writer did not finish"
        if self.error is not None:
            raise self.error


def writes_once_watched(
    kube: Client,
    namespace: str,
    watches: Watches,
    statuses: list[dict[str, Any] | None],
    name: str | None = None,
    template: str = "web",
) -> Background:
    """Once the plugin watches, write each of `statuses` (None: delete the build) to
    build `name` (None: the template's only build, as `build` named it), 50 ms apart:
    faster than any poll could see them, so seeing each proves a watch."""

    def work() -> None:
        assert watches.started.wait(30), "the plugin never watched"
        target = name or only_build(kube, namespace, template)
        for status in statuses:
            time.sleep(0.05)
            if status is None:
                kube.delete(ImageBuild, target, namespace=namespace)
            else:
                set_status(kube, ImageBuild, namespace, target, status)

    return Background(work)


def only_build(kube: Client, namespace: str, template: str) -> str:
    found = list(kube.list(ImageBuild, namespace=namespace, labels={TEMPLATE_LABEL: template}))
    assert len(found) == 1, [b.metadata.name for b in found]
    return str(found[0].metadata.name)


def created_name(result: Result, namespace: str) -> str:
    match = re.search(rf"created imagebuild (\S+) in namespace {namespace}: ", result.output)
    assert match, result.output
    return match.group(1)


def test_build_creates_a_manual_imagebuild_and_builds_lists_them_newest_first(
    plugin: Plugin, kube: Client, namespace: str, builder_crds: None
) -> None:
    missing = plugin.ns("build", "web")
    assert missing.exit_code == 1, missing.output
    assert missing.output.strip() == f"error: imagetemplate web not found in namespace {namespace}"
    assert list(kube.list(ImageBuild, namespace=namespace)) == []

    create_template(kube, namespace)
    first = plugin.ns("build", "web")
    assert first.exit_code == 0, first.output
    name = created_name(first, namespace)
    assert flat(first) == (
        f"created imagebuild {name} in namespace {namespace}: a Manual build of imagetemplate web"
    )
    made = get(kube, ImageBuild, namespace, name)
    assert name.startswith("web-") and made["metadata"]["generateName"] == "web-"
    assert made["metadata"]["labels"] == {TEMPLATE_LABEL: "web"}
    assert made["spec"] == {"templateName": "web", "reason": "Manual"}

    second = created_name(plugin.ns("build", "web"), namespace)
    create_template(kube, namespace, "other")
    create_build(kube, namespace, "other-1", template="other")  # not web's
    now = datetime.now(UTC).replace(microsecond=0)
    set_status(kube, ImageBuild, namespace, name, succeeded(now - timedelta(minutes=10)))
    long_message = "building step user: " + "waiting for the registry to answer " * 4
    set_status(
        kube,
        ImageBuild,
        namespace,
        second,
        {
            "phase": "Building",
            "startTime": stamp(now - timedelta(seconds=45)),
            "steps": steps("Succeeded", "Running"),
            "message": long_message,
        },
    )
    listed = plugin.ns("builds", "web")
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.output.splitlines() if line.strip()]
    assert rows[0] == [
        "NAME", "REASON", "PHASE", "VERSION", "DURATION", "DIGEST", "AGE", "MESSAGE",
    ]  # fmt: skip
    assert [row[0] for row in rows[1:]] == [second, name]  # newest first; other-1 is not web's
    running, done = rows[1], rows[2]
    assert running[1:4] == ["Manual", "Building", "-"]
    assert re.fullmatch(r"4[5-9]s|5\ds", running[4]), running  # running for 45s and counting
    assert running[5] == "-"
    line = next(line for line in listed.output.splitlines() if line.startswith(second))
    assert "building step user: waiting for the registry" in line and "…" in line
    assert long_message.strip() not in line  # cut to fit
    assert done[1:6] == ["Manual", "Succeeded", "1.0.0", "2m10s", "sha256:" + "b" * 12]
    assert "published os 1.0.0" in " ".join(done)

    create_template(kube, namespace, "empty")
    none = plugin.ns("builds", "empty")
    assert none.exit_code == 0 and flat(none) == "no builds of empty yet"
    nothing = plugin.ns("builds", "nothing")
    assert nothing.exit_code == 1
    assert flat(nothing) == f"error: imagetemplate nothing not found in namespace {namespace}"


def test_get_imagebuild_shows_the_build_its_steps_and_what_it_published(
    plugin: Plugin, kube: Client, namespace: str, builder_crds: None
) -> None:
    create_template(kube, namespace)
    create_build(kube, namespace, "web-1")
    fresh = plugin.ns("get", "imagebuild", "web-1")
    assert fresh.exit_code == 0, fresh.output
    assert "phase Pending" in flat(fresh) and "no steps reported yet" in flat(fresh)

    began = datetime(2026, 11, 23, 13, 40, tzinfo=UTC)
    set_status(kube, ImageBuild, namespace, "web-1", succeeded(began))
    view = plugin.ns("get", "imagebuild", "web-1")
    assert view.exit_code == 0, view.output
    out = flat(view)
    assert f"ImageBuild web-1 in {namespace}" in out
    assert "template web reason Manual phase Succeeded" in out
    assert "started 2026-11-23T13:40:00Z completed 2026-11-23T13:42:10Z (took 2m10s)" in out
    assert f"source digest {digest('a')} output digest {digest('b')}" in out
    assert "published imageversion os-1-0-0 (version 1.0.0)" in out
    assert "STEPS 2 of 2 succeeded" in out
    rows = [line.split() for line in view.output.splitlines()]
    assert ["NAME", "TYPE", "PHASE", "DURATION", "LAYER", "SIZE", "MESSAGE"] in rows
    layer = "sha256:" + "c" * 12
    assert ["motd", "File", "Succeeded", "0.4s", layer, "312", "B", "1", "file"] in rows
    assert ["user", "User", "Succeeded", "2s", "-", "-", "user", "nobody"] in rows
    assert ["source", digest("a")] in rows  # INPUTS

    listing = plugin.ns("get", "imagebuilds")
    assert listing.exit_code == 0, listing.output
    table = [line.split() for line in listing.output.splitlines()]
    assert table[0] == ["NAME", "TEMPLATE", "REASON", "PHASE", "VERSION", "DIGEST", "AGE"]
    assert table[1][:6] == ["web-1", "web", "Manual", "Succeeded", "1.0.0", "sha256:" + "b" * 12]
    # The short name lists the same (AGE aside: a second may pass between the two).
    short = [line.split()[:-1] for line in plugin.ns("get", "imgb").output.splitlines()]
    assert short == [row[:-1] for row in table]

    # A build that ended: --watch shows it once and ends by itself, status at once.
    watched = plugin.ns("get", "imagebuild", "web-1", "--watch")
    assert watched.exit_code == 0, watched.output
    assert watched.output.count("ImageBuild web-1 in") == 1
    done = plugin.ns("status", "imagebuild", "web-1")
    assert done.exit_code == 0, done.output
    assert flat(done) == (
        "imagebuild web-1 is ready: Succeeded in 2m10s: published imageversion os-1-0-0 "
        f"(version 1.0.0), image {digest('b')}"
    )


def test_build_wait_follows_the_build_through_every_phase_until_it_succeeds(
    plugin: Plugin, kube: Client, namespace: str, builder_crds: None, watches: Watches
) -> None:
    create_template(kube, namespace)
    began = datetime.now(UTC).replace(microsecond=0)
    writer = writes_once_watched(
        kube,
        namespace,
        watches,
        [
            {
                "phase": "Resolving",
                "startTime": stamp(began),
                "message": f"resolving {SOURCE}",
            },
            {"phase": "Building", "sourceDigest": digest("a"), "steps": steps("Running")},
            {
                "phase": "Publishing",
                "steps": steps("Succeeded", "Succeeded"),
                "outputDigest": digest("b"),
                "message": "publishing os 1.0.0",
            },
            succeeded(began),
        ],
    )
    result = plugin.ns("build", "web", "--wait", "--timeout", "60s")
    writer.join()
    assert result.exit_code == 0, result.output
    name = created_name(result, namespace)
    said = [line for line in result.output.splitlines() if line.strip()]
    assert said == [
        f"created imagebuild {name} in namespace {namespace}: a Manual build of imagetemplate web",
        f"waiting for imagebuild {name}: Pending: not started by the builder yet",
        f"waiting for imagebuild {name}: Resolving: resolving {SOURCE}",
        f"waiting for imagebuild {name}: Building: step 1 of 2 (motd)",
        f"waiting for imagebuild {name}: Publishing: publishing os 1.0.0",
        f"imagebuild {name} is ready: Succeeded in 2m10s: published imageversion os-1-0-0 "
        f"(version 1.0.0), image {digest('b')}",
    ]
    # One watch request saw it all (each written 50 ms after the other), bounded by the
    # timeout left.
    assert [call[0] for call in watches.calls] == [name]
    assert 0 < watches.calls[0][2] <= 60


def test_build_wait_exits_1_when_the_build_fails_and_2_at_the_timeout(
    plugin: Plugin, kube: Client, namespace: str, builder_crds: None, watches: Watches
) -> None:
    create_template(kube, namespace)
    message = f"step motd: the source {SOURCE}: 401 Unauthorized"
    writer = writes_once_watched(
        kube,
        namespace,
        watches,
        [
            {"phase": "Resolving", "startTime": stamp(datetime.now(UTC))},
            {"phase": "Failed", "completionTime": stamp(datetime.now(UTC)), "message": message},
        ],
    )
    failed = plugin.ns("build", "web", "--wait")
    writer.join()
    assert failed.exit_code == 1, failed.output
    name = created_name(failed, namespace)
    assert f"imagebuild {name} failed: {message}" in flat(failed)
    assert f"imagebuild {name} failed" not in failed.stdout  # on stderr
    assert "Traceback" not in failed.output
    again = plugin.ns("status", "imagebuild", name)
    assert again.exit_code == 1 and f"imagebuild {name} failed: {message}" in flat(again)

    create_template(kube, namespace, "slow")
    began = time.monotonic()
    waited = plugin.ns("build", "slow", "--wait", "--timeout", "2s")
    took = time.monotonic() - began
    assert waited.exit_code == 2, waited.output
    assert 2 <= took < 20, took
    slow = created_name(waited, namespace)
    assert (
        f"timed out after 2s waiting for imagebuild {slow}: Pending: not started by the builder yet"
        in flat(waited)
    )
    assert all(seconds <= 2 for called, _, seconds in watches.calls if called == slow)
    bad = plugin.ns("build", "slow", "--wait", "--timeout", "soon")
    assert bad.exit_code == 2 and "invalid duration" in flat(bad)
    assert only_build(kube, namespace, "slow") == slow  # a bad --timeout creates nothing


def test_get_imagebuild_watch_re_renders_each_change_until_the_build_ends(
    plugin: Plugin, kube: Client, namespace: str, builder_crds: None, watches: Watches
) -> None:
    create_template(kube, namespace)
    create_build(kube, namespace, "web-1")
    began = stamp(datetime.now(UTC))
    writer = writes_once_watched(
        kube,
        namespace,
        watches,
        [
            {"phase": "Building", "startTime": began, "steps": steps("Running")},
            {"phase": "Building", "steps": steps("Succeeded", "Running")},
            {
                "phase": "Failed",
                "completionTime": began,
                "steps": steps("Succeeded", "Failed", message="no user nobody in /etc/passwd"),
                "message": "step user: no user nobody in /etc/passwd",
            },
        ],
        name="web-1",
    )
    result = plugin.ns("get", "imagebuild", "web-1", "--watch")
    writer.join()
    assert result.exit_code == 0, result.output  # it ended by itself, no Ctrl-C
    views = result.output.split("\n--- ")
    assert len(views) == 4, result.output
    assert [view.count("ImageBuild web-1 in") for view in views] == [1, 1, 1, 1]
    assert re.search(r"phase\s+Pending", views[0]) and "no steps reported yet" in views[0]
    assert re.search(r"motd\s+File\s+Running", views[1])
    assert "STEPS  1 of 2 succeeded" in views[2] and re.search(r"user\s+User\s+Running", views[2])
    assert re.search(r"phase\s+Failed", views[3])
    assert re.search(r"message\s+step user: no user nobody in /etc/passwd", views[3])
    assert re.search(r"user\s+User\s+Failed\s+-\s+-\s+-\s+no user nobody", views[3])
    assert all(0 < seconds <= WATCH_SECONDS for _, _, seconds in watches.calls)

    # Deleted while followed: one clear line, exit 1.
    create_build(kube, namespace, "web-2")
    watches.started.clear()
    deleter = writes_once_watched(kube, namespace, watches, [None], name="web-2")
    gone = plugin.ns("status", "imagebuild", "web-2", "--timeout", "60s")
    deleter.join()
    assert gone.exit_code == 1, gone.output
    assert f"error: imagebuild web-2 was deleted from namespace {namespace}" in flat(gone)


# -- with the real operator ------------------------------------------------------------------------


@pytest.fixture
def world(
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    tmp_path: Path,
) -> Iterator[World]:
    """A region on the session's eastus2 nodes with one registry, and version 1.0.0
    of image `os` replicated there."""
    made = World(kube, namespace, registry_factory(2))
    east = made.region("east", made.rest, node_region="eastus2")
    made.parents(east)
    image = build_image(tmp_path / "1.0.0", size=1 << 18, layers=1, seed=7)

    async def push() -> None:
        async with RegistryClient(made.source.url) as client:
            await push_image(client, "sources/os", image, ["1.0.0"])

    asyncio.run(push())
    made.version("os-1-0-0", "1.0.0", [{"name": east}])
    yield made
    for s in kube.list(ScaleSet, namespace=namespace):
        with contextlib.suppress(ApiError):
            kube.delete(ScaleSet, s.metadata.name, namespace=namespace)
    made.cleanup()


def test_status_waits_for_a_real_fleet(plugin: Plugin, kube: Client, world: World) -> None:
    namespace = world.namespace
    east = next(iter(world.regions))
    published = plugin.ns("status", "imageversion", "os-1-0-0", "--timeout", "90s")
    assert published.exit_code == 0, published.output
    assert "imageversion os-1-0-0 is ready: replicated to 1/1 regions" in flat(published)

    document = scaleset_document("web", namespace, region=east, capacity=3)
    document["spec"]["template"]["metadata"]["annotations"] = {"galleon.test/ready-delay": "1s"}
    kube.create(codecs.from_dict(document))
    result = plugin.ns("status", "scaleset", "web", "--timeout", "90s")
    assert result.exit_code == 0, result.output
    assert "scaleset web is ready: 3 of 3 instances ready on 1.0.0" in flat(result)

    view = plugin.ns("get", "scaleset", "web")
    assert view.exit_code == 0, view.output
    assert "VERSION INSTANCES HEALTHY NOT HEALTHY 1.0.0 3 3 0" in flat(view)
    assert "Ready True InstancesHealthy" in flat(view)
    versions = plugin.ns("versions", "os")
    assert versions.exit_code == 0, versions.output
    assert [east, "1.0.0"] in [line.split() for line in versions.output.splitlines()]


def test_status_fails_at_once_on_a_scaleset_whose_region_does_not_exist(
    plugin: Plugin, kube: Client, namespace: str, operator: Any
) -> None:
    """The real operator marks the ScaleSet Stalled (RegionNotFound): `status` ends
    with exit 1 as soon as that is written, not at the timeout."""
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageDefinition",
                "metadata": {"name": "os", "namespace": namespace},
                "spec": {
                    "galleryName": "gallery",
                    "identifier": {"publisher": "galleon", "offer": "test", "sku": "os"},
                },
            }
        )
    )
    region = f"{namespace}-nowhere"[:63]
    create_scaleset(kube, namespace, region=region)
    began = time.monotonic()
    result = plugin.ns("status", "scaleset", "web", "--timeout", "5m")
    took = time.monotonic() - began
    assert result.exit_code == 1, result.output
    assert took < 60, took
    assert f"scaleset web failed: stalled (RegionNotFound): Region {region} does not exist" in flat(
        result
    )
    status = get(kube, ScaleSet, namespace, "web")["status"]
    stalled = next(c for c in status["conditions"] if c["type"] == "Stalled")
    assert stalled["status"] == "True" and stalled["observedGeneration"] == 1
