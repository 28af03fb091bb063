"""The Helm chart published to an OCI registry and installed from it, as
docs/install.md#install-from-an-oci-registry tells users to: `helm package`, `helm
push` to a real registry (Debian's docker-registry on 127.0.0.1), `helm show chart`,
`helm pull`, `helm install oci://…` against the session's real control plane, `helm
upgrade` to a newer version pushed beside it, then `helm uninstall`.

The session's control plane already has galleon's CRDs (the test kit applies
`crds/`) and possibly kopf's peering CRDs (`chart_identity`), owned by no release:
Helm refuses to adopt them, and CRDs are shared by every test. So the release is
installed with `crds.enabled=false,peering.create=false`; the CRDs the chart would
install are compared through `helm template` of the pushed chart instead. The
release name is unique (the chart's ClusterRoles, their bindings and the admission
policy are named after it) and lives in the test's own namespace; every object of the
release, cluster-scoped ones included, must be gone after `helm uninstall`.

The Deployment's pods need the operator image, which this machine cannot pull, so
nothing waits for them (`helm install --wait` could not pass): the test checks that
Kubernetes holds every object of the release's manifest.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.core.resource import NamespacedResource

from galleon_testkit.binaries import MissingBinaries
from galleon_testkit.chart import CHART, helm_binary
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for

pytestmark = pytest.mark.integration
#: Values of the test's release: no CRDs (the session's are shared, see the docstring).
SHARED_CRDS_LEFT_OUT = ["--set", "crds.enabled=false,peering.create=false"]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
HELM_CONFIG = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_LAYER = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


class Helm:
    """The helm binary with its cache, config and registry credentials in `home`."""

    def __init__(self, home: Path, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run helm and fail the test on a non-zero exit, showing its output."""
        completed = subprocess.run(
            [str(helm_binary()), *args, "--kubeconfig", str(self.kubeconfig)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=self.env,
        )
        assert completed.returncode == 0, f"helm {' '.join(args)}:\n{completed.stderr}"
        return completed


def digest_in(output: str) -> str:
    """The `Digest: sha256:…` line helm push and helm pull print."""
    found = re.search(r"^Digest: (sha256:[0-9a-f]{64})$", output, re.MULTILINE)
    assert found, output
    return found.group(1)


def registry_manifest(registry: Registry, reference: str) -> tuple[str, dict[str, Any]]:
    """(digest, manifest) of `charts/galleon:reference` as the registry serves it."""
    request = urllib.request.Request(
        f"{registry.url}/v2/charts/galleon/manifests/{reference}",
        headers={"Accept": OCI_MANIFEST},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        body = response.read()
        digest = response.headers["Docker-Content-Digest"]
    assert digest == "sha256:" + hashlib.sha256(body).hexdigest()
    return digest, yaml.safe_load(body)


def documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def identity(document: dict[str, Any]) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


def without_empty(mapping: dict[str, Any]) -> dict[str, Any]:
    """Chart.yaml as helm serialises it: empty lists and strings are left out."""
    return {key: value for key, value in mapping.items() if value not in ([], "", None, {})}


def live(kube: Client, document: dict[str, Any], namespace: str) -> Any | None:
    """The object `document` describes as the API holds it, None when it is absent."""
    resource = type(codecs.from_dict(document))
    scoped = issubclass(resource, NamespacedResource)
    try:
        return kube.get(
            resource, document["metadata"]["name"], namespace=namespace if scoped else None
        )
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


@pytest.fixture
def helm_tool(control_plane: Any, tmp_path: Path) -> Helm:
    try:
        helm_binary().stat()
    except (MissingBinaries, OSError) as error:
        unavailable(f"helm is not built: {error}")
    return Helm(tmp_path / "helm", control_plane.kubeconfig)


def test_the_chart_is_pushed_to_an_oci_registry_installed_from_it_and_uninstalled(
    helm_tool: Helm,
    kube: Client,
    namespace: str,
    registry: Registry,
    tmp_path: Path,
) -> None:
    helm = helm_tool
    chart_yaml = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = chart_yaml["version"]
    repository = f"oci://{registry.host}/charts"
    reference = f"{repository}/galleon"
    release = f"galleon-oci-{uuid.uuid4().hex[:6]}"

    # Publish: package, push; the registry holds a Helm chart artifact under the tag.
    helm("package", str(CHART), "--destination", str(tmp_path / "packaged"))
    package = tmp_path / "packaged" / f"galleon-{version}.tgz"
    pushed = helm("push", str(package), repository, "--plain-http")
    pushed_digest = digest_in(pushed.stdout + pushed.stderr)
    served_digest, manifest = registry_manifest(registry, version)
    assert served_digest == pushed_digest
    assert manifest["config"]["mediaType"] == HELM_CONFIG
    assert [layer["mediaType"] for layer in manifest["layers"]] == [HELM_CHART_LAYER]
    assert manifest["layers"][0]["digest"] == (
        "sha256:" + hashlib.sha256(package.read_bytes()).hexdigest()
    )

    # What users see before installing: the chart's metadata and values, unchanged.
    oci = [reference, "--version", version, "--plain-http"]
    shown = yaml.safe_load(helm("show", "chart", *oci).stdout)
    assert shown == without_empty(chart_yaml)
    # (helm prints a blank line after the file)
    assert helm("show", "values", *oci).stdout == (CHART / "values.yaml").read_text() + "\n"
    (tmp_path / "pulled").mkdir()
    pulled = helm("pull", *oci, "--destination", str(tmp_path / "pulled"))
    assert digest_in(pulled.stdout + pulled.stderr) == pushed_digest
    pulled_package = tmp_path / "pulled" / f"galleon-{version}.tgz"
    assert pulled_package.read_bytes() == package.read_bytes()

    # The pushed chart renders exactly as the chart in the repository, CRDs included.
    def rendered(source: str, *extra: str) -> list[dict[str, Any]]:
        args = ["template", release, source, "--namespace", namespace, *extra]
        return documents(helm(*args).stdout)

    from_registry = rendered(reference, "--version", version, "--plain-http")
    assert from_registry == rendered(str(CHART))
    assert {"CustomResourceDefinition"} <= {d["kind"] for d in from_registry}

    install = ["install", release, reference, "--version", version, "--plain-http"]
    helm(*install, "--namespace", namespace, *SHARED_CRDS_LEFT_OUT)
    manifest_documents: list[dict[str, Any]] = []
    try:
        status = yaml.safe_load(
            helm("status", release, "--namespace", namespace, "-o", "json").stdout
        )
        assert status["info"]["status"] == "deployed"
        assert status["version"] == 1
        (listed,) = yaml.safe_load(helm("list", "--namespace", namespace, "-o", "json").stdout)
        assert (listed["name"], listed["chart"], listed["app_version"]) == (
            release,
            f"galleon-{version}",
            chart_yaml["appVersion"],
        )
        assert "galleon" in status["info"]["notes"]

        manifest_documents = documents(
            helm("get", "manifest", release, "--namespace", namespace).stdout
        )
        assert manifest_documents == rendered(str(CHART), *SHARED_CRDS_LEFT_OUT)
        kinds = {d["kind"] for d in manifest_documents}
        assert {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment"} <= kinds
        assert "CustomResourceDefinition" not in kinds

        missing = [identity(d) for d in manifest_documents if live(kube, d, namespace) is None]
        assert missing == []
        for document in manifest_documents:
            found = live(kube, document, namespace)
            labels = found.metadata.labels or {}
            assert labels.get("app.kubernetes.io/instance") == release, identity(document)
            assert (found.metadata.annotations or {}).get("meta.helm.sh/release-name") == release, (
                identity(document)
            )
        deployment = next(d for d in manifest_documents if d["kind"] == "Deployment")
        image = live(kube, deployment, namespace).spec.template.spec.containers[0].image
        assert image == f"ghcr.io/galleon-dev/galleon-operator:{chart_yaml['appVersion']}"

        # A newer version pushed beside it upgrades the release, keeping its values.
        major, minor, patch = (int(part) for part in version.split("."))
        newer = f"{major}.{minor}.{patch + 1}"
        helm("package", str(CHART), "--version", newer, "--destination", str(tmp_path / "newer"))
        helm("push", str(tmp_path / "newer" / f"galleon-{newer}.tgz"), repository, "--plain-http")
        upgrade = ["upgrade", release, reference, "--version", newer, "--plain-http"]
        helm(*upgrade, "--namespace", namespace, "--reuse-values")
        (listed,) = yaml.safe_load(helm("list", "--namespace", namespace, "-o", "json").stdout)
        assert (listed["chart"], listed["revision"]) == (f"galleon-{newer}", "2")
        upgraded = live(kube, deployment, namespace).metadata.labels["helm.sh/chart"]
        assert upgraded == f"galleon-{newer}"
        assert [
            identity(d)
            for d in documents(helm("get", "manifest", release, "--namespace", namespace).stdout)
        ] == [identity(d) for d in manifest_documents]
    finally:
        helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "2m")

    # Nothing of the release is left, cluster-scoped objects included.
    wait_for(
        lambda: [identity(d) for d in manifest_documents if live(kube, d, namespace)] == [],
        timeout=120,
        description=f"every object of release {release} deleted",
    )
    listed = helm("list", "--namespace", namespace, "--all", "-o", "json")
    assert yaml.safe_load(listed.stdout) == []
