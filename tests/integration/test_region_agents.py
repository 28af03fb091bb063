"""Region agents (`replication.copiedBy: RegionAgent`): the copies into a region made by
an agent that runs in the region, so the image crosses the region's WAN link once
however many replicas the region has; the operator hands out the work as
ReplicationTasks and reads progress and outcome back into the ImageVersion's status.

The WAN is the test kit's (`galleon_testkit.wan`): the source registry sits on the
hub with the operator, each region's registries in the region's network namespace
behind a shaped link, and the agent in that namespace too
(`galleon_testkit.region_agents`). What crosses a region's link is read from the
kernel's counters of the hub's end of that link.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError

from galleon.kube.resources import ImageVersion, ReplicationTask
from galleon.oci import RegistryClient
from galleon_testkit.chart import NAMESPACE as CHART_NAMESPACE
from galleon_testkit.chart import render
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.controlplane import ControlPlane
from galleon_testkit.images import TestImage, build_image, push_image
from galleon_testkit.region_agents import RegionAgentProcess
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.wan import Wan, WanRegion, WanUnavailable
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
MBIT = 100.0
SIZE = 16 << 20
LAYERS = 4


@pytest.fixture
def wan(tmp_path: Path) -> Iterator[Wan]:
    made = Wan(tmp_path / "wan")
    try:
        made.start()
    except WanUnavailable as error:
        unavailable(str(error))
    yield made
    made.stop()
    assert made.leftovers() == []


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Any]]:
    """What a test started in the WAN (registries, agents): stopped at teardown."""
    things: list[Any] = []
    yield things
    for thing in reversed(things):
        thing.close() if isinstance(thing, RegionAgentProcess) else thing.stop()


def region_registries(wan_region: WanRegion, tmp_path: Path, started: list[Any]) -> list[Registry]:
    made = [
        Registry(tmp_path / f"{wan_region.name}-{i}", address=a, netns=wan_region.netns)
        for i, a in enumerate(wan_region.addresses)
    ]
    for registry in made:
        registry.start()
        started.append(registry)
    return made


def downloaded(wan: Wan, wan_region: WanRegion) -> int:
    """Bytes sent into the region over its link so far (the hub's end, egress)."""
    link = f"r{list(wan.regions).index(wan_region.name) + 1}"
    shown = subprocess.run(
        ["tc", "-s", "-n", wan.hub, "qdisc", "show", "dev", link],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout  # fmt: skip
    found = re.search(r"Sent (\d+) bytes", shown)
    assert found, shown
    return int(found.group(1))


def push_source(source: Registry, tmp_path: Path, seed: int = 7, layers: int = LAYERS) -> TestImage:
    image = build_image(tmp_path / "image", size=SIZE, layers=layers, seed=seed)

    async def push() -> None:
        async with RegistryClient(source.url) as client:
            await push_image(client, "sources/os", image, ["1.0.0"])

    asyncio.run(push())
    return image


def has_manifest(registry: Registry, repository: str, digest: str) -> bool:
    async def check() -> bool:
        async with RegistryClient(registry.url) as client:
            return await client.has_manifest(repository, digest)

    return asyncio.run(check())


def has_blobs(registry: Registry, repository: str, image: TestImage) -> bool:
    """Some of the image's layers, not all, are in the registry."""

    async def check() -> bool:
        async with RegistryClient(registry.url) as client:
            found = [await client.has_blob(repository, b.digest) for b in image.layers]
            return any(found) and not all(found)

    return asyncio.run(check())


def tasks(kube: Client, namespace: str, region: str | None = None) -> list[Any]:
    labels = {"galleon.dev/region": region} if region else None
    return list(kube.list(ReplicationTask, namespace=namespace, labels=labels))


@pytest.fixture(scope="module")
def agent_identity(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A kubeconfig acting as the chart's region-agent ServiceAccount, with exactly
    the chart's rights (its ClusterRole, and its Role in the chart's namespace)."""
    admin = control_plane.client()
    documents = render(
        [
            "--set", "crds.enabled=false",
            "--set", "regionAgents[0].region=any",
            "--set", "regionAgents[0].nodeSelector.region=any",
        ]
    )  # fmt: skip
    admin.apply(
        codecs.from_dict(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": CHART_NAMESPACE}}
        ),
        force=True,
    )
    agent = [
        d
        for d in documents
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "region-agent"
        and d["kind"] != "Deployment"
    ]
    assert {d["kind"] for d in agent} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"
    }  # fmt: skip
    for document in agent:
        admin.apply(codecs.from_dict(document), force=True)
    account = next(d for d in agent if d["kind"] == "ServiceAccount")["metadata"]["name"]
    return control_plane.kubeconfig_for_service_account(
        CHART_NAMESPACE, account, tmp_path_factory.mktemp("agent") / "agent.kubeconfig"
    )


@pytest.fixture
def agent_factory(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, started: list[Any]
) -> Callable[..., RegionAgentProcess]:
    api = ("127.0.0.1", int(control_plane.server.rsplit(":", 1)[1]))

    def make(
        wan_region: WanRegion, region: str, kubeconfig: Path | None = None, in_namespace: str = ""
    ) -> RegionAgentProcess:
        agent = RegionAgentProcess(
            kubeconfig or control_plane.kubeconfig,
            api,
            wan_region,
            region,
            tmp_path / f"agent-{wan_region.name}.log",
            namespace=in_namespace or namespace,
        )
        started.append(agent)
        return agent

    return make


def test_an_agent_region_receives_the_image_once_an_operator_region_once_per_replica(
    kube: Client,
    namespace: str,
    operator_factory: Any,
    agent_factory: Callable[..., RegionAgentProcess],
    agent_identity: Path,
    wan: Wan,
    tmp_path: Path,
    started: list[Any],
) -> None:
    by_agent = wan.region("agent", mbit=MBIT, addresses=2)
    by_operator = wan.region("operator", mbit=MBIT, addresses=2)
    source = Registry(tmp_path / "source", address=wan.hub_address, netns=wan.hub).start()
    started.append(source)
    image = push_source(source, tmp_path)
    world = World(kube, namespace, [source])
    agent_registries = region_registries(by_agent, tmp_path, started)
    operator_registries = region_registries(by_operator, tmp_path, started)
    east = world.region("east", agent_registries, replication={"copiedBy": "RegionAgent"})
    west = world.region("west", operator_registries)
    try:
        world.parents(east)
        # The agent acts as the chart's agent ServiceAccount, in the chart's namespace.
        agent_factory(by_agent, east, agent_identity, CHART_NAMESPACE).start()
        operator_factory(namespaces=[namespace], extra=[f"--operator-namespace={CHART_NAMESPACE}"])
        before = {r.name: downloaded(wan, r) for r in (by_agent, by_operator)}
        world.version(
            "os-1-0-0",
            "1.0.0",
            [{"name": east, "regionalReplicaCount": 2}, {"name": west, "regionalReplicaCount": 2}],
        )
        status = world.wait_state("os-1-0-0", "Completed", timeout=180)
        into_agent = downloaded(wan, by_agent) - before["agent"]
        into_operator = downloaded(wan, by_operator) - before["operator"]
        # The agent pulled once and wrote both replicas inside the region; the
        # operator wrote each replica over the link.
        assert image.size <= into_agent < 1.3 * image.size, (into_agent, image.size)
        assert into_operator >= 1.9 * image.size, (into_operator, image.size)
        east_line = world.region_line("os-1-0-0", east)
        assert east_line["completedReplicas"] == 2, east_line
        assert east_line["bytesCopied"] >= 2 * image.size - 4096, east_line
        digest = status["sourceDigest"]
        assert digest == image.manifest.digest
        for replica in east_line["replicas"]:
            assert replica["state"] == "Completed" and replica["digest"] == digest, replica
        for registry in agent_registries + operator_registries:
            assert has_manifest(registry, status["repository"], digest), registry.url
        # The task is gone once the operator took its outcome.
        wait_for(
            lambda: not tasks(kube, CHART_NAMESPACE, east), timeout=30, description="tasks deleted"
        )
    finally:
        world.cleanup()


def test_a_region_without_its_agent_retries_and_completes_once_the_agent_runs(
    kube: Client,
    namespace: str,
    operator_factory: Any,
    agent_factory: Callable[..., RegionAgentProcess],
    wan: Wan,
    tmp_path: Path,
    started: list[Any],
) -> None:
    wan_region = wan.region("late", mbit=MBIT)
    source = Registry(tmp_path / "source", address=wan.hub_address, netns=wan.hub).start()
    started.append(source)
    image = push_source(source, tmp_path, seed=11)
    world = World(kube, namespace, [source])
    registries = region_registries(wan_region, tmp_path, started)
    east = world.region("east", registries, replication={"copiedBy": "RegionAgent"})
    try:
        world.parents(east)
        operator_factory(
            namespaces=[namespace],
            extra=[f"--operator-namespace={namespace}", "--agent-timeout=3"],
        )
        world.version("os-1-0-0", "1.0.0", [{"name": east}])

        def waiting_on_agent() -> dict[str, Any]:
            line = world.region_line("os-1-0-0", east)
            messages = " ".join(r.get("message", "") for r in line.get("replicas") or [])
            return line if "AgentUnavailable" in messages else {}

        line = wait_for(waiting_on_agent, timeout=90, description="the copy retried")
        assert line["state"] != "Completed", line
        assert "no replication agent" in line["replicas"][0]["message"], line
        assert tasks(kube, namespace), "the task stays for the agent to take"
        agent_factory(wan_region, east).start()
        status = world.wait_state("os-1-0-0", "Completed", timeout=180)
        assert has_manifest(registries[0], status["repository"], image.manifest.digest)
        wait_for(lambda: not tasks(kube, namespace), timeout=30, description="tasks deleted")
    finally:
        world.cleanup()


def test_an_agent_killed_mid_copy_resumes_where_it_stopped(
    kube: Client,
    namespace: str,
    operator_factory: Any,
    agent_factory: Callable[..., RegionAgentProcess],
    wan: Wan,
    tmp_path: Path,
    started: list[Any],
) -> None:
    wan_region = wan.region("crash", mbit=MBIT / 2, addresses=2)
    source = Registry(tmp_path / "source", address=wan.hub_address, netns=wan.hub).start()
    started.append(source)
    # More layers than the copier moves at once (4), so some arrive before the rest.
    image = push_source(source, tmp_path, seed=13, layers=12)
    world = World(kube, namespace, [source])
    registries = region_registries(wan_region, tmp_path, started)
    east = world.region("east", registries, replication={"copiedBy": "RegionAgent"})
    try:
        world.parents(east)
        agent = agent_factory(wan_region, east).start()
        operator_factory(namespaces=[namespace], extra=[f"--operator-namespace={namespace}"])
        before = downloaded(wan, wan_region)
        world.version("os-1-0-0", "1.0.0", [{"name": east, "regionalReplicaCount": 2}])

        def partly_copied() -> bool:
            repository = world.status("os-1-0-0").get("repository")
            return bool(repository) and all(has_blobs(r, repository, image) for r in registries)

        wait_for(partly_copied, timeout=120, interval=0.1, description="layers arrived")
        agent.kill()
        assert world.region_line("os-1-0-0", east).get("state") != "Completed"
        agent.start()
        status = world.wait_state("os-1-0-0", "Completed", timeout=180)
        # The restarted agent took its task over and skipped what had arrived.
        line = world.region_line("os-1-0-0", east)
        assert line["bytesSkipped"] > 0, line
        into = downloaded(wan, wan_region) - before
        assert into < 2 * image.size, (into, image.size)
        for registry in registries:
            assert has_manifest(registry, status["repository"], image.manifest.digest)
        wait_for(lambda: not tasks(kube, namespace), timeout=30, description="tasks deleted")
    finally:
        world.cleanup()


def test_a_version_deleted_mid_copy_goes_once_its_agent_has_stopped_copying(
    kube: Client,
    namespace: str,
    operator_factory: Any,
    agent_factory: Callable[..., RegionAgentProcess],
    wan: Wan,
    tmp_path: Path,
    started: list[Any],
) -> None:
    wan_region = wan.region("gone", mbit=MBIT / 4)
    source = Registry(tmp_path / "source", address=wan.hub_address, netns=wan.hub).start()
    started.append(source)
    image = push_source(source, tmp_path, seed=17, layers=12)
    world = World(kube, namespace, [source])
    registries = region_registries(wan_region, tmp_path, started)
    east = world.region("east", registries, replication={"copiedBy": "RegionAgent"})
    try:
        world.parents(east)
        agent = agent_factory(wan_region, east).start()
        operator_factory(namespaces=[namespace], extra=[f"--operator-namespace={namespace}"])
        world.version("os-1-0-0", "1.0.0", [{"name": east}])
        repository = wait_for(
            lambda: world.status("os-1-0-0").get("repository"),
            timeout=60,
            description="the version's repository",
        )
        wait_for(
            lambda: has_blobs(registries[0], repository, image),
            timeout=120,
            interval=0.1,
            description="layers arrived",
        )
        kube.delete(ImageVersion, "os-1-0-0", namespace=namespace)

        def gone() -> bool:
            try:
                kube.get(ImageVersion, "os-1-0-0", namespace=namespace)
            except ApiError as error:
                return error.status.code == 404
            return False

        wait_for(gone, timeout=120, description="the version deleted")
        # The agent stopped its copy and let the task go before the copies went.
        assert "withdrawn" in agent.log_text()
        assert not tasks(kube, namespace)
        assert not has_manifest(registries[0], repository, image.manifest.digest)
    finally:
        world.cleanup()
