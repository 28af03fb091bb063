"""Argo CD's verdict on live galleon objects: while the real operator rolls a ScaleSet
out (and faults a rollout), the objects are read as docs/gitops.md says ("Check a
script against a live object": `kubectl get ... -o yaml`, with the real kubectl) and
judged by the real `argocd admin settings resource-overrides health`, with argocd-cm
made as the docs install the scripts. Each verdict must be what the docs' table says
for the status it was given.

`argocd` comes from hack/argocd.sh; without it (or jq, or the control plane) these
tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from galleon_testkit.argocd import Health, health, write_argocd_cm
from galleon_testkit.binaries import MissingBinaries, kubectl
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.waiting import wait_for

pytestmark = pytest.mark.integration


class ArgoCD:
    """Reads live objects with kubectl and has Argo CD judge them; keeps every sample."""

    def __init__(self, fleet: FleetHarness, kubeconfig: Path, folder: Path) -> None:
        self.fleet, self.kubeconfig, self.folder = fleet, kubeconfig, folder
        try:
            self.cm = write_argocd_cm(folder / "argocd-cm.yaml")
            self.kubectl = kubectl()
        except MissingBinaries as error:
            unavailable(str(error))
        self.samples: list[tuple[dict[str, Any], Health]] = []

    def judge(self, kind: str, name: str) -> tuple[dict[str, Any], Health]:
        """`kubectl -n NS get KIND NAME -o yaml > NAME.yaml`, then Argo CD's health of it."""
        path = self.folder / f"{kind}-{name}.yaml"
        with path.open("w") as out:
            subprocess.run(
                [str(self.kubectl), "--kubeconfig", str(self.kubeconfig), "-n",
                 self.fleet.namespace, "get", kind, name, "-o", "yaml"],
                stdout=out, check=True, timeout=30,
            )  # fmt: skip
        obj = yaml.safe_load(path.read_text())
        try:
            verdict = health(path, self.cm)
        except MissingBinaries as error:
            unavailable(str(error))
            raise
        self.samples.append((obj, verdict))
        return obj, verdict


@pytest.fixture
def argocd(fleet: FleetHarness, control_plane: Any, tmp_path: Path) -> ArgoCD:
    folder = tmp_path / "argocd"
    folder.mkdir()
    return ArgoCD(fleet, control_plane.kubeconfig, folder)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), {})


def explain(c: dict[str, Any], fallback: str) -> str:
    """A condition's message, else its reason, else `fallback` (as the scripts say it)."""
    return str(c.get("message") or c.get("reason") or fallback)


def batches(upgrade: dict[str, Any]) -> str:
    progress = upgrade.get("progress") or {}
    line = (
        f"batch {upgrade.get('currentBatch', 0)} of {upgrade.get('totalBatches', 0)}, "
        f"{progress.get('successfulInstanceCount', 0)} upgraded"
    )
    if progress.get("failedInstanceCount"):
        line += f", {progress['failedInstanceCount']} failed"
    return line


def scaleset_expectation(obj: dict[str, Any]) -> Health | None:
    """The docs' table for a ScaleSet whose operator has observed its generation; None
    for the states these tests do not drive (paused, held, stalled without a fault)."""
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < obj["metadata"]["generation"]:
        return Health(
            "Progressing",
            f"waiting for the operator to observe generation {obj['metadata']['generation']}",
        )
    upgrade = status.get("rollingUpgrade") or {}
    code = (upgrade.get("runningStatus") or {}).get("code")
    versions = f"{upgrade.get('fromVersion')} to {upgrade.get('toVersion')}"
    if code == "Faulted" and status.get("targetVersion") in (None, upgrade.get("toVersion")):
        error = upgrade["error"]
        message = f"upgrade {versions} faulted: {error['code']}: {error['message']}"
        if upgrade.get("phase") == "RollingBack":
            instances = ", ".join(str(i) for i in upgrade.get("batchInstances") or [])
            message += f"; rolling instances {instances} back to {upgrade['fromVersion']}"
        return Health("Degraded", message)
    if condition(obj, "Stalled").get("status") == "True":
        return None
    if code == "RollingForward":
        return Health("Progressing", f"upgrading {versions}: {batches(upgrade)}")
    ready = condition(obj, "Ready")
    if ready.get("status") == "True":
        return Health("Healthy", explain(ready, "Ready"))
    return Health("Progressing", explain(ready, "waiting for the operator's Ready condition"))


def imageversion_expectation(obj: dict[str, Any]) -> Health | None:
    """The docs' table for an ImageVersion; None for Failed and Stalled (not driven here)."""
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < obj["metadata"]["generation"]:
        return Health(
            "Progressing",
            f"waiting for the operator to observe generation {obj['metadata']['generation']}",
        )
    replication = status.get("replicationStatus") or {}
    summary = replication.get("summary") or []
    state = replication.get("aggregatedState")
    if state == "Failed" or condition(obj, "Stalled").get("status") == "True":
        return None
    if state == "Completed":
        return Health("Healthy", f"replicated to {replication['completedRegions']} regions")
    if summary:
        lines = []
        for r in summary:
            line = (
                f"{r.get('region') or '?'}: {r.get('state') or 'Unknown'} {r.get('progress', 0)}% "
                f"({r.get('completedReplicas', 0)}/{r.get('desiredReplicas', 0)} replicas)"
            )
            if r.get("state") == "Failed" and r.get("details"):
                line += f": {r['details']}"
            lines.append(line)
        return Health(
            "Progressing",
            f"{replication['completedRegions']} regions replicated; " + "; ".join(lines),
        )
    return Health(
        "Progressing", condition(obj, "Ready").get("message") or "waiting for replication to start"
    )


def test_argocd_follows_a_rollout(fleet: FleetHarness, argocd: ArgoCD) -> None:
    fleet.scaleset("web", 5)
    fleet.wait_fleet("web", "1.0.0", 5)
    obj, verdict = argocd.judge("scaleset", "web")
    assert verdict == Health("Healthy", explain(condition(obj, "Ready"), "Ready")), verdict
    obj, verdict = argocd.judge("imageversion", "os-1-0-0")
    assert verdict == Health("Healthy", "replicated to 2/2 regions"), verdict
    obj, verdict = argocd.judge("region", fleet.east)
    assert verdict == Health("Healthy", explain(condition(obj, "Ready"), "Ready")), verdict

    fleet.publish("1.0.2", [fleet.east], wait=False)

    def replicated() -> bool:
        obj, verdict = argocd.judge("imageversion", "os-1-0-2")
        assert verdict == imageversion_expectation(obj), obj.get("status")
        return verdict.status == "Healthy"

    wait_for(replicated, timeout=90, description="1.0.2 replicated, as Argo CD sees it")
    assert argocd.samples[-1][1] == Health("Healthy", "replicated to 1/1 regions")

    def upgraded() -> bool:
        obj, verdict = argocd.judge("scaleset", "web")
        assert verdict == scaleset_expectation(obj), obj.get("status")
        rolling = [v for o, v in argocd.samples if o["kind"] == "ScaleSet"]
        return verdict.status == "Healthy" and any(v.status == "Progressing" for v in rolling)

    wait_for(upgraded, timeout=120, description="web upgraded to 1.0.2, as Argo CD sees it")
    obj, verdict = argocd.samples[-1]
    assert obj["status"]["currentVersion"] == "1.0.2", obj["status"]
    upgrading = [
        v for o, v in argocd.samples if o["kind"] == "ScaleSet" and v.status == "Progressing"
    ]
    assert any(v.message.startswith("upgrading 1.0.0 to 1.0.2: batch ") for v in upgrading)


@pytest.mark.parametrize("reference", ["latest", "pinned"])
def test_argocd_reports_a_faulted_rollout_degraded(
    fleet: FleetHarness, argocd: ArgoCD, reference: str
) -> None:
    """A ScaleSet on `latest` is rolled back and targets 1.0.0 again: Degraded by its
    Stalled condition. One pinned to 1.0.3 still targets it: Degraded by the fault."""
    never_ready = {"galleon.test/never-ready-images": fleet.digest("1.0.3")}
    if reference == "latest":
        fleet.scaleset("db", 5, annotations=never_ready)
    else:
        pinned = {"imageDefinitionName": "os", "version": "1.0.0"}
        fleet.scaleset("db", 5, annotations=never_ready, imageReference=pinned)
    fleet.wait_fleet("db", "1.0.0", 5)
    fleet.publish("1.0.3", [fleet.east])
    if reference == "pinned":
        fleet.patch("db", {"spec": {"imageReference": {"version": "1.0.3"}}})

    def faulted() -> bool:
        obj, verdict = argocd.judge("scaleset", "db")
        expected = scaleset_expectation(obj)
        if expected is not None:
            assert verdict == expected, obj.get("status")
        upgrade = obj["status"].get("rollingUpgrade") or {}
        done = upgrade.get("phase") == "Done"
        return done and (upgrade.get("runningStatus") or {}).get("code") == "Faulted"

    wait_for(faulted, timeout=120, description="db's upgrade to 1.0.3 faulted, as Argo CD sees it")
    obj, verdict = argocd.samples[-1]
    error = obj["status"]["rollingUpgrade"]["error"]
    assert error["code"] == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    stalled = condition(obj, "Stalled")
    assert stalled["status"] == "True"
    if reference == "latest":
        # The stalled message names the faulted version and how to retry.
        assert obj["status"]["targetVersion"] == "1.0.0", obj["status"]
        assert verdict == Health("Degraded", stalled["message"])
        assert verdict.message.startswith(f"the upgrade to 1.0.3 faulted: {error['message']}; ")
        assert "galleon.dev/start-upgrade" in verdict.message
    else:
        assert obj["status"]["targetVersion"] == "1.0.3", obj["status"]
        assert verdict == Health(
            "Degraded", f"upgrade 1.0.0 to 1.0.3 faulted: {error['code']}: {error['message']}"
        )
    # Before the fault, the same upgrade was Progressing.
    assert any(v.message.startswith("upgrading 1.0.0 to 1.0.3: batch ") for _, v in argocd.samples)
