# mypy: disable-error-code="union-attr,index"
# (test probes read typed lightkube objects whose fields are all Optional)
"""GitOps with Flux end to end: galleon manifests in a Git repository (served over
Git's smart HTTP protocol by `git http-backend`), Flux's real source-controller and
kustomize-controller (built by hack/flux.sh) applying them to the real control plane,
the real operator replicating into real registries and rolling kwok fleets.

Every test commits a Gallery, an ImageDefinition, ImageVersions and a ScaleSet to its
own repository and has one Kustomization with `wait: true` and the health check
expressions of docs/gitops.md (or kstatus alone) apply them into its namespace. A
poller records, side by side, what Flux says about the Kustomization and what
galleon's objects are, so the tests can check that Flux never called a revision
Ready before replication and the rollout were done.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Pod

from galleon.kube.resources import ImageVersion, ScaleSet
from galleon_testkit.binaries import MissingBinaries
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.fleets import ready as pod_ready
from galleon_testkit.flux import FluxControllers, GitRepository, GitServer
from galleon_testkit.processes import log_tail
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration

FluxGitRepository = create_namespaced_resource(
    "source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories"
)
Kustomization = create_namespaced_resource(
    "kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"
)
DEFINITION = "gitops-os"
SCALESET_LABEL = "galleon.dev/scaleset"
#: The Kustomization's health checks (docs/gitops.md, "Flux"): Ready decides, Stalled fails.
HEALTH_CHECK_EXPRS = [
    {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": kind,
        "failed": "status.conditions.exists(c, c.type == 'Stalled' && c.status == 'True')",
        "current": "status.conditions.exists(c, c.type == 'Ready' && c.status == 'True')",
    }
    for kind in ("ImageVersion", "ScaleSet")
]
FLUX_TIMEOUT = 240.0


@pytest.fixture(scope="module")
def flux(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FluxControllers]:
    controllers = FluxControllers(tmp_path_factory.mktemp("flux"), control_plane)
    try:
        controllers.start()
    except MissingBinaries as error:
        unavailable(str(error))
    yield controllers
    controllers.stop()


@dataclass
class Sample:
    """One look at the Kustomization, then (after it) at galleon's objects."""

    ready: str
    reason: str
    revision: str
    versions: dict[str, str]  # ImageVersion name -> aggregatedState
    fleet: dict[str, int]  # galleon.dev/version -> Ready instances


class GitOps:
    """One test's repository, GitRepository and Kustomization, and its fleet harness."""

    def __init__(self, fleet: FleetHarness, repo: GitRepository, flux: FluxControllers) -> None:
        self.fleet, self.repo, self.flux = fleet, repo, flux
        self.kube: Any = fleet.kube
        self.namespace = fleet.namespace
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    # -- what is in Git ---------------------------------------------------------------

    def manifests(
        self, versions: list[str], scaleset: str, pinned: str, annotations: dict[str, str]
    ) -> dict[str, str]:
        """The files of one commit: parents, one ImageVersion per version, a ScaleSet."""
        source = self.fleet.world.source
        parents = [
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "Gallery",
                "metadata": {"name": "gitops"},
                "spec": {"location": self.fleet.west},
            },
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageDefinition",
                "metadata": {"name": DEFINITION},
                "spec": {
                    "galleryName": "gitops",
                    "identifier": {"publisher": "galleon", "offer": "gitops", "sku": "os"},
                    "osType": "Linux",
                },
            },
        ]
        files = {"platform/images/parents.yaml": yaml.safe_dump_all(parents)}
        for version in versions:
            files[f"platform/images/{version_name(version)}.yaml"] = yaml.safe_dump(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageVersion",
                    "metadata": {"name": version_name(version)},
                    "spec": {
                        "imageDefinitionName": DEFINITION,
                        "version": version,
                        "source": {
                            "image": f"{source.host}/sources/os:{version}",
                            "plainHTTP": True,
                        },
                        "publishingProfile": {
                            "targetRegions": [
                                {"name": self.fleet.east, "regionalReplicaCount": 2},
                                {"name": self.fleet.west, "regionalReplicaCount": 1},
                            ]
                        },
                    },
                }
            )
        files[f"platform/fleets/{scaleset}.yaml"] = yaml.safe_dump(
            scaleset_manifest(scaleset, self.fleet.east, pinned, annotations)
        )
        return files

    def commit(self, message: str, *args: Any) -> str:
        return self.repo.commit(self.manifests(*args), message)

    # -- what is in the cluster -------------------------------------------------------

    def apply_flux_objects(self, *, exprs: bool = True) -> None:
        """The GitRepository (polled every 2s) and the Kustomization applying ./platform,
        judging galleon's objects by `HEALTH_CHECK_EXPRS` or (`exprs=False`) by kstatus."""
        for document in (
            {
                "apiVersion": "source.toolkit.fluxcd.io/v1",
                "kind": "GitRepository",
                "metadata": {"name": "platform", "namespace": self.namespace},
                "spec": {"interval": "2s", "url": self.repo.url, "ref": {"branch": "main"}},
            },
            {
                "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
                "kind": "Kustomization",
                "metadata": {"name": "platform", "namespace": self.namespace},
                "spec": {
                    "interval": "10m",
                    "retryInterval": "5s",
                    "path": "./platform",
                    "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "platform"},
                    "targetNamespace": self.namespace,
                    "wait": True,
                    "timeout": "3m",
                    **({"healthCheckExprs": HEALTH_CHECK_EXPRS} if exprs else {}),
                },
            },
        ):
            self.kube.apply(codecs.from_dict(document), force=True)

    def kustomization(self) -> dict[str, Any]:
        return dict(self.kube.get(Kustomization, "platform", namespace=self.namespace))

    def wait_ready(self, revision: str, timeout: float = FLUX_TIMEOUT) -> dict[str, Any]:
        """Until Flux says Ready True with `revision` applied; the Kustomization's status."""

        def applied() -> dict[str, Any]:
            status = self.kustomization().get("status") or {}
            ready = ready_condition(status)
            done = ready.get("status") == "True" and revision in status.get(
                "lastAppliedRevision", ""
            )
            return status if done else {}

        return self.wait(applied, timeout, f"Flux to apply {revision[:8]} and report it Ready")

    def wait_sampled_ready(self, revision: str) -> None:
        """Until the poller, too, has seen Flux call `revision` Ready."""
        self.wait(
            lambda: any(s.ready == "True" and revision in s.revision for s in self.samples),
            30,
            f"the poller to see {revision[:8]} Ready",
        )

    def wait(self, probe: Callable[[], Any], timeout: float, description: str) -> Any:
        try:
            return wait_for(probe, timeout=timeout, description=description)
        except TimeoutError as error:
            raise AssertionError(f"{error}\n{self.diagnostics()}") from error

    def diagnostics(self) -> str:
        parts = [f"Kustomization: {self.kustomization().get('status')}"]
        with_status = dict(self.kube.get(FluxGitRepository, "platform", namespace=self.namespace))
        parts.append(f"GitRepository: {with_status.get('status')}")
        for name, path in self.flux.logs.items():
            parts.append(f"--- {name}\n{log_tail(path, 30)}")
        return "\n".join(parts)

    # -- the poller -------------------------------------------------------------------

    def __enter__(self) -> GitOps:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _poll(self) -> None:
        client = self.fleet.new_client()
        while not self._stop.is_set():
            with contextlib.suppress(ApiError):  # not created yet
                self.samples.append(self._sample(client))
            time.sleep(0.2)

    def _sample(self, client: Client) -> Sample:
        # The Kustomization first: whatever galleon shows after it is at least as far.
        status = (
            dict(client.get(Kustomization, "platform", namespace=self.namespace)).get("status")
            or {}
        )
        ready = ready_condition(status)
        versions = {
            v.metadata.name: ((v.get("status") or {}).get("replicationStatus") or {}).get(
                "aggregatedState", ""
            )
            for v in client.list(ImageVersion, namespace=self.namespace)
            if v.spec["imageDefinitionName"] == DEFINITION
        }
        fleet: dict[str, int] = {}
        for pod in client.list(Pod, namespace=self.namespace, labels={SCALESET_LABEL: None}):
            if pod_ready(pod):
                version = pod.metadata.labels["galleon.dev/version"]
                fleet[version] = fleet.get(version, 0) + 1
        return Sample(
            ready.get("status", ""),
            ready.get("reason", ""),
            status.get("lastAppliedRevision", ""),
            versions,
            fleet,
        )


def ready_condition(status: dict[str, Any]) -> dict[str, Any]:
    """The Ready condition of a Kustomization's status ({} when there is none yet)."""
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def version_name(version: str) -> str:
    return f"{DEFINITION}-{version.replace('.', '-')}"


def scaleset_manifest(
    name: str, region: str, version: str, annotations: dict[str, str]
) -> dict[str, Any]:
    """A 5-instance ScaleSet on a pinned version, upgraded in batches of 1; on a breach
    the failed instances go back to the old version."""
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {"name": name},
        "spec": {
            "region": region,
            "capacity": 5,
            "imageReference": {"imageDefinitionName": DEFINITION, "version": version},
            "osContainerName": "os",
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {"galleon.test/ready-delay": "1s", **annotations},
                },
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
            "upgradePolicy": {
                "mode": "Rolling",
                "rollingUpgradePolicy": {
                    "maxBatchInstancePercent": 20,
                    "maxUnhealthyInstancePercent": 20,
                    "maxUnhealthyUpgradedInstancePercent": 20,
                    "upgradedInstanceHealthTimeout": "PT8S",
                    "rollbackFailedInstancesOnPolicyBreach": True,
                },
            },
        },
    }


@pytest.fixture
def gitops(
    control_plane: Any,
    kube: Client,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    flux: FluxControllers,
    tmp_path: Path,
) -> Iterator[GitOps]:
    world = World(kube, namespace, registry_factory(4))
    fleet = FleetHarness.with_versions(world, tmp_path / "images", control_plane.client)
    server = GitServer(tmp_path / "git").start()
    made = GitOps(fleet, server.repository("platform", tmp_path / "work"), flux)
    try:
        yield made
    finally:
        # Deleting the Kustomization prunes what it applied (while Flux still runs).
        with_kustomization = True
        try:
            kube.delete(Kustomization, "platform", namespace=namespace)
        except ApiError:
            with_kustomization = False
        if with_kustomization:
            wait_for(
                lambda: _gone(kube, Kustomization, "platform", namespace),
                timeout=60,
                description="the Kustomization pruned and gone",
            )
        for s in list(kube.list(ScaleSet, namespace=namespace)):
            with contextlib.suppress(ApiError):
                kube.delete(ScaleSet, s.metadata.name, namespace=namespace)
        server.stop()
        world.cleanup()


def _gone(kube: Any, kind: Any, name: str, namespace: str) -> bool:
    try:
        kube.get(kind, name, namespace=namespace)
    except ApiError as error:
        return error.status.code == 404
    return False


def test_flux_is_ready_once_replicated_and_rolled_out_and_a_commit_rolls_the_fleet(
    gitops: GitOps,
) -> None:
    fleet = gitops.fleet
    first = gitops.commit("platform: os 1.0.0 on web", ["1.0.0"], "web", "1.0.0", {})
    with gitops:
        gitops.apply_flux_objects()
        gitops.wait_ready(first)
        gitops.wait_sampled_ready(first)
        # Ready means done: the version replicated everywhere, every instance Ready on it.
        assert (
            gitops.fleet.world.status(version_name("1.0.0"))["replicationStatus"]["aggregatedState"]
            == "Completed"
        )
        fleet.wait_fleet("web", "1.0.0", 5, timeout=1)
        # A version bump committed to Git: a new ImageVersion and the ScaleSet pinned to it.
        second = gitops.commit("platform: web on os 1.0.2", ["1.0.0", "1.0.2"], "web", "1.0.2", {})
        gitops.wait_ready(second)
        gitops.wait_sampled_ready(second)
        status = fleet.status("web")
        assert status["currentVersion"] == "1.0.2"
        fleet.wait_fleet("web", "1.0.2", 5, timeout=1)
    upgrade = status["rollingUpgrade"]
    assert upgrade["runningStatus"]["code"] == "Completed" and upgrade["startedBy"] == "User"
    assert upgrade["fromVersion"] == "1.0.0" and upgrade["toVersion"] == "1.0.2"
    assert upgrade["totalBatches"] == 5
    assert (
        gitops.fleet.world.status(version_name("1.0.2"))["replicationStatus"]["aggregatedState"]
        == "Completed"
    )
    # Flux never called a revision Ready before galleon was done with it...
    for sample in gitops.samples:
        if sample.ready == "True" and first in sample.revision:
            assert sample.versions.get(version_name("1.0.0")) == "Completed", sample
            assert sample.fleet.get("1.0.0") == 5, sample
        if sample.ready == "True" and second in sample.revision:
            assert sample.versions.get(version_name("1.0.2")) == "Completed", sample
            assert sample.fleet == {"1.0.2": 5}, sample
    # ...and it was seen waiting while the rollout of 1.0.2 ran.
    assert any(
        s.ready == "Unknown" and s.reason == "Progressing" and 0 < s.fleet.get("1.0.2", 0) < 5
        for s in gitops.samples
    ), gitops.samples[-20:]


@pytest.mark.parametrize("exprs", [True, False], ids=["health-check-exprs", "kstatus"])
def test_flux_reports_a_rollout_that_faults(gitops: GitOps, exprs: bool) -> None:
    fleet = gitops.fleet
    never_ready = {"galleon.test/never-ready-images": fleet.digest("1.0.3")}
    first = gitops.commit("platform: os 1.0.0 on db", ["1.0.0"], "db", "1.0.0", never_ready)
    with gitops:
        gitops.apply_flux_objects(exprs=exprs)
        gitops.wait_ready(first)
        fleet.wait_fleet("db", "1.0.0", 5, timeout=60)  # kstatus alone may not wait for it
        # 1.0.3's instances never get Ready: galleon faults the rollout and rolls back.
        second = gitops.commit(
            "platform: db on os 1.0.3", ["1.0.0", "1.0.3"], "db", "1.0.3", never_ready
        )

        def failed() -> dict[str, Any]:
            status = gitops.kustomization().get("status") or {}
            ready = ready_condition(status)
            attempted = second in status.get("lastAttemptedRevision", "")
            return ready if attempted and ready.get("status") == "False" else {}

        ready = gitops.wait(failed, FLUX_TIMEOUT, "Flux to report the faulted rollout")
    assert ready["reason"] == "HealthCheckFailed", ready
    assert f"ScaleSet/{gitops.namespace}/db status: 'Failed'" in ready["message"], ready
    assert "failed early due to stalled resources" in ready["message"], ready  # no timeout
    # Flux names the object; galleon's own words are on it, in the condition Flux failed on.
    conditions = {c["type"]: c for c in fleet.status("db")["conditions"]}
    assert conditions["Stalled"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "UpgradeFaulted"
    assert "the upgrade to 1.0.3 faulted" in conditions["Stalled"]["message"], conditions
    upgrade = fleet.status("db")["rollingUpgrade"]
    assert upgrade["error"]["code"] == "MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade"
    fleet.wait_fleet("db", "1.0.0", 5, timeout=1)  # rolled back, still on 1.0.0
    # The previous revision stays the last one applied successfully.
    assert first in gitops.kustomization()["status"]["lastAppliedRevision"]
