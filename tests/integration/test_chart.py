"""The Helm chart: lint, values schema, CRDs equal to crds/, and the operator pod
accepted by the real apiserver's PodSecurity admission at the restricted level.

Integration tests: they need the helm binary built by hack/envtest.sh and, for
admission, the session's control plane.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace

from galleon_testkit.binaries import REPO_ROOT, MissingBinaries
from galleon_testkit.chart import CHART, NAMESPACE, helm, of_kind, render
from galleon_testkit.cluster_fixtures import unavailable

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def helm_available() -> None:
    try:
        completed = helm("version", "--short")
    except (MissingBinaries, OSError) as error:
        unavailable(f"helm is not built: {error}")
        return
    if completed.returncode != 0:
        unavailable(f"helm does not run: {completed.stderr}")


def test_the_chart_lints_strictly() -> None:
    completed = helm("lint", "--strict", str(CHART))
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_every_optional_piece_renders() -> None:
    documents = render(
        [
            "--set",
            "serviceMonitor.enabled=true,prometheusRule.enabled=true,grafanaDashboard.enabled=true",
        ]
    )
    kinds = {d["kind"] for d in documents}
    assert {"ServiceMonitor", "PrometheusRule", "ConfigMap", "PodDisruptionBudget"} <= kinds
    dashboard = of_kind(documents, "ConfigMap")[0]["data"]["galleon.json"]
    assert json.loads(dashboard)["title"]
    alerts = [
        rule["alert"]
        for group in of_kind(documents, "PrometheusRule")[0]["spec"]["groups"]
        for rule in group["rules"]
    ]
    assert alerts == [
        "GalleonOperatorDown",
        "GalleonRolloutFaulted",
        "GalleonReplicationFailed",
        "GalleonUnhealthyInstancesAboveLimit",
    ]


@pytest.mark.parametrize(
    "setting", ["nope=1", "image.nope=x", "crds.nope=true", "replicaCount=0", "healthPort=0"]
)
def test_the_values_schema_refuses_unknown_keys_and_bad_values(setting: str) -> None:
    completed = helm("template", "galleon", str(CHART), "--set", setting)
    assert completed.returncode != 0
    assert "values don't meet the specifications of the schema" in completed.stderr


def test_the_chart_crds_are_the_generated_ones() -> None:
    rendered = {
        d["metadata"]["name"]: d
        for d in of_kind(render(), "CustomResourceDefinition")
        if d["spec"]["group"] == "galleon.dev"
    }
    generated = {
        d["metadata"]["name"]: d
        for path in sorted((REPO_ROOT / "crds").glob("*.yaml"))
        for d in yaml.safe_load_all(path.read_text())
        if d
    }
    assert rendered.keys() == generated.keys()
    for name, crd in rendered.items():
        annotations = crd["metadata"].pop("annotations")
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert crd["metadata"].pop("labels")["app.kubernetes.io/name"] == "galleon"
        expected = generated[name]
        expected["metadata"].pop("annotations", None)
        expected["metadata"].pop("labels", None)
        assert crd == expected, name


def test_crds_can_be_left_out_or_not_kept() -> None:
    without = render(["--set", "crds.enabled=false,peering.create=false"])
    assert of_kind(without, "CustomResourceDefinition") == []
    not_kept = of_kind(render(["--set", "crds.keep=false"]), "CustomResourceDefinition")
    assert all(
        "helm.sh/resource-policy" not in (d["metadata"].get("annotations") or {}) for d in not_kept
    )


def test_the_operator_runs_with_distinct_peering_priorities_and_probes() -> None:
    deployment = of_kind(render(), "Deployment")[0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert deployment["spec"]["replicas"] == 2
    assert "--peering=galleon" in container["args"]
    assert "--priority=auto" in container["args"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["port"] == "health"
    scoped = of_kind(render(["--set", "watchNamespaces={a,b}"]), "Deployment")[0]
    args = scoped["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=a" in args and "--namespace=b" in args
    assert "--all-namespaces" not in args


def test_the_namespace_replication_concurrency_is_passed_and_bounded() -> None:
    setting = "replication.concurrency=3,replication.namespaceConcurrency=3"
    deployment = of_kind(render(["--set", setting]), "Deployment")[0]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--replication-concurrency=3" in args
    assert "--namespace-replication-concurrency=3" in args
    completed = helm("template", "galleon", str(CHART), "--set", "replication.concurrency=1")
    assert completed.returncode != 0
    assert (
        "replication.namespaceConcurrency (2) must not be more than replication.concurrency (1)"
        in completed.stderr
    )


@pytest.fixture
def restricted_namespace(kube: Client) -> Iterator[str]:
    name = f"chart-restricted-{uuid.uuid4().hex[:6]}"  # one still terminating is refused
    kube.apply(
        codecs.from_dict(
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {
                    "name": name,
                    "labels": {
                        "pod-security.kubernetes.io/enforce": "restricted",
                        "pod-security.kubernetes.io/enforce-version": "latest",
                    },
                },
            }
        ),
        force=True,
    )
    yield name
    kube.delete(Namespace, name)


def _pod_from(deployment: dict[str, Any], namespace: str) -> dict[str, Any]:
    template = deployment["spec"]["template"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-pod", "namespace": namespace, **template["metadata"]},
        "spec": {**template["spec"], "serviceAccountName": "default"},
    }


def test_the_operator_pod_passes_restricted_pod_security(
    kube: Client, restricted_namespace: str
) -> None:
    deployment = of_kind(render(), "Deployment")[0]
    pod = _pod_from(deployment, restricted_namespace)
    # Server-side dry run: PodSecurity admission enforces "restricted" on it.
    kube.create(codecs.from_dict(pod), dry_run=True)
    # The check is real: the same pod allowed to escalate privileges is refused.
    container = pod["spec"]["containers"][0]
    container["securityContext"]["allowPrivilegeEscalation"] = True
    with pytest.raises(ApiError) as refused:
        kube.create(codecs.from_dict(pod), dry_run=True)
    assert "restricted" in str(refused.value.status.message)


AGENTS = [
    "--set", "regionAgents[0].region=eastus2",
    "--set", "regionAgents[0].nodeSelector.topology\\.kubernetes\\.io/region=eastus2",
    "--set", "regionAgents[1].region=westus",
    "--set", "regionAgents[1].nodeSelector.pool=west",
    "--set", "regionAgents[1].concurrency=4",
]  # fmt: skip


def test_each_region_agent_is_one_recreated_deployment_on_its_region_nodes() -> None:
    agents = [
        d
        for d in of_kind(render(AGENTS), "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "region-agent"
    ]
    assert [a["metadata"]["labels"]["galleon.dev/region"] for a in agents] == [
        "eastus2",
        "westus",
    ]
    for agent, selector, concurrency in zip(
        agents,
        ({"topology.kubernetes.io/region": "eastus2"}, {"pool": "west"}),
        (2, 4),
        strict=True,
    ):
        assert agent["spec"]["replicas"] == 1
        assert agent["spec"]["strategy"] == {"type": "Recreate"}
        pod = agent["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == selector
        container = pod["containers"][0]
        assert container["command"] == ["galleon-region-agent"]
        region = agent["metadata"]["labels"]["galleon.dev/region"]
        assert f"--region={region}" in container["args"]
        assert f"--namespace={NAMESPACE}" in container["args"]
        assert f"--concurrency={concurrency}" in container["args"]
    # Without agents, none of it renders.
    plain = render()
    assert not [
        d
        for d in plain
        if (d["metadata"].get("labels") or {}).get("app.kubernetes.io/component") == "region-agent"
    ]


def test_a_region_agent_without_a_node_selector_is_refused() -> None:
    completed = helm("template", "galleon", str(CHART), "--set", "regionAgents[0].region=east")
    assert completed.returncode != 0
    assert "nodeSelector" in completed.stderr


def test_the_region_agent_pod_passes_restricted_pod_security(
    kube: Client, restricted_namespace: str
) -> None:
    agent = next(
        d
        for d in of_kind(render(AGENTS), "Deployment")
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "region-agent"
    )
    pod = _pod_from(agent, restricted_namespace)
    kube.create(codecs.from_dict(pod), dry_run=True)
