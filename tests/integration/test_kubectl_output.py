"""`kubectl galleon get ... -o json|yaml|wide`, `versions -o yaml`, `version` and shell
completion against the real control plane and the real kubectl.

The objects are created with the admin client (no operator runs): the tests judge what
the plugin prints of them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.types import PatchType
from typer.testing import CliRunner, Result

from galleon.cli import main as cli
from galleon.kube.resources import ScaleSet
from galleon_testkit import binaries
from galleon_testkit.cluster_fixtures import unavailable

pytestmark = pytest.mark.integration


def run(kubeconfig: Path, *args: str) -> Result:
    return CliRunner().invoke(
        cli.app,
        [*args, "--kubeconfig", str(kubeconfig)],
        env={"COLUMNS": "250", "KUBECONFIG": None},
    )


def scaleset(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "region": "eastus2",
            "capacity": 4,
            "imageReference": {"imageDefinitionName": "ubuntu", "version": "1.0.2"},
            "template": {"spec": {"containers": [{"name": "os", "image": "set-by-galleon"}]}},
            "upgradePolicy": {"mode": "Rolling"},
        },
    }


def image_version(name: str, namespace: str, version: str) -> dict[str, Any]:
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ImageVersion",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "imageDefinitionName": "ubuntu",
            "version": version,
            "source": {"image": "registry.example.com/ubuntu:22.04"},
            "publishingProfile": {
                "replicaCount": 2,
                "targetRegions": [
                    {"name": "westus"},
                    {"name": "eastus2", "regionalReplicaCount": 1},
                ],
            },
        },
    }


def create(kube: Client, document: dict[str, Any]) -> None:
    kube.create(codecs.from_dict(document))


def test_get_prints_objects_as_json_yaml_and_wide_rows(
    control_plane: Any, kube: Client, namespace: str
) -> None:
    create(kube, scaleset("web", namespace))
    create(kube, scaleset("api", namespace))
    config = control_plane.kubeconfig

    one = run(config, "get", "scaleset", "web", "-n", namespace, "-o", "json")
    assert one.exit_code == 0, one.output
    obj = json.loads(one.output)
    assert (obj["kind"], obj["metadata"]["name"], obj["spec"]["capacity"]) == ("ScaleSet", "web", 4)
    assert "managedFields" not in obj["metadata"]

    listed = run(config, "get", "ss", "-n", namespace, "-o", "yaml")
    assert listed.exit_code == 0, listed.output
    document = yaml.safe_load(listed.output)
    assert (document["apiVersion"], document["kind"]) == ("v1", "List")
    assert [item["metadata"]["name"] for item in document["items"]] == ["api", "web"]

    wide = run(config, "get", "scalesets", "-n", namespace, "-o", "wide")
    assert wide.exit_code == 0, wide.output
    header, *rows = wide.output.splitlines()
    assert header.split()[:9] == [
        "NAME",
        "REGION",
        "READY",
        "CURRENT",
        "TARGET",
        "UPGRADE",
        "IMAGE",
        "CAPACITY",
        "MODE",
    ]
    assert [row.split()[0] for row in rows] == ["api", "web"]
    assert "ubuntu:1.0.2" in rows[1].split() and "Rolling" in rows[1].split()
    narrow = run(config, "get", "scalesets", "-n", namespace)
    assert "IMAGE" not in narrow.output.splitlines()[0]

    one_row = run(config, "get", "scaleset", "web", "-n", namespace, "-o", "wide")
    assert [line.split()[0] for line in one_row.output.splitlines()] == ["NAME", "web"]

    refused = run(config, "get", "ss", "-n", namespace, "-o", "json", "--watch")
    assert refused.exit_code == 1
    assert "--watch shows the live view: use it without -o json" in refused.output


def test_imageversions_wide_and_versions_as_a_list(
    control_plane: Any, kube: Client, namespace: str
) -> None:
    create(kube, image_version("ubuntu-1.0.0", namespace, "1.0.0"))
    create(kube, image_version("ubuntu-1.0.10", namespace, "1.0.10"))
    config = control_plane.kubeconfig

    wide = run(config, "get", "iv", "-n", namespace, "-o", "wide")
    assert wide.exit_code == 0, wide.output
    assert "TARGETS" in wide.output.splitlines()[0]
    assert "westus=2,eastus2=1" in wide.output

    versions = run(config, "versions", "ubuntu", "-n", namespace, "-o", "yaml")
    assert versions.exit_code == 0, versions.output
    items = yaml.safe_load(versions.output)["items"]
    assert [item["spec"]["version"] for item in items] == ["1.0.10", "1.0.0"]  # newest first


def test_history_prints_the_recorded_upgrades_as_a_document(
    control_plane: Any, kube: Client, namespace: str
) -> None:
    create(kube, scaleset("web", namespace))
    entry = {
        "fromVersion": "1.0.0",
        "toVersion": "1.0.2",
        "startedBy": "User",
        "startTime": "2026-11-23T13:40:00Z",
        "endTime": "2026-11-23T13:52:30Z",
        "result": "Cancelled",
        "progress": {"successfulInstanceCount": 2, "failedInstanceCount": 0},
    }
    kube.patch(
        ScaleSet.Status,
        "web",
        {"status": {"upgradeHistory": [entry]}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    shown = run(control_plane.kubeconfig, "history", "web", "-n", namespace, "-o", "json")
    assert shown.exit_code == 0, shown.output
    (stored,) = json.loads(shown.output)["upgradeHistory"]
    assert {key: stored[key] for key in entry if key != "progress"} == {
        key: value for key, value in entry.items() if key != "progress"
    }
    assert stored["progress"]["successfulInstanceCount"] == 2  # the schema filled the rest


def operator_deployment(namespace: str, version: str) -> dict[str, Any]:
    """The chart's operator Deployment as far as `version` reads it (no replicas)."""
    labels = {"app.kubernetes.io/name": "galleon", "app.kubernetes.io/instance": "galleon"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "galleon",
            "namespace": namespace,
            "labels": {
                **labels,
                "app.kubernetes.io/component": "operator",
                "app.kubernetes.io/version": version,
            },
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "operator", "image": f"galleon:{version}"}]},
            },
        },
    }


def test_version_shows_the_client_and_each_operator_deployment(
    control_plane: Any, kube: Client, namespace: str, tmp_path: Path
) -> None:
    create(kube, operator_deployment(namespace, "9.9.9"))
    config = control_plane.kubeconfig

    shown = run(config, "version")
    assert shown.exit_code == 0, shown.output
    assert "Client Version: 0.1.0" in shown.output
    assert (
        f"Operator Version: 9.9.9 (deployment {namespace}/galleon, image galleon:9.9.9)"
        in shown.output
    )
    document = json.loads(run(config, "version", "-o", "json").output)
    mine = [o for o in document["operators"] if o["namespace"] == namespace]
    assert mine == [
        {"namespace": namespace, "name": "galleon", "version": "9.9.9", "image": "galleon:9.9.9"}
    ]

    # A user who may not list Deployments still learns the client's version, and why not
    # the operator's.
    stranger = control_plane.kubeconfig_for_user("stranger", tmp_path / "stranger.kubeconfig")
    limited = run(stranger, "version")
    assert limited.exit_code == 0, limited.output
    assert "Client Version: 0.1.0" in limited.output
    assert "Operator Version: unknown (not allowed:" in limited.output

    # --client never reads the kubeconfig; without one, the client's line, then the error.
    alone = run(tmp_path / "missing.kubeconfig", "version", "--client")
    assert (alone.exit_code, alone.output.strip()) == (0, "Client Version: 0.1.0")
    lost = run(tmp_path / "missing.kubeconfig", "version")
    assert lost.exit_code == 1
    assert lost.output.startswith("Client Version: 0.1.0\nerror: cannot read kubeconfig")


@pytest.fixture
def plugin_path(tmp_path: Path) -> str:
    """PATH with `kubectl-galleon` and `kubectl_complete-galleon` (as pip installs them,
    running this interpreter) before the real kubectl."""
    try:
        real = binaries.kubectl()
    except binaries.MissingBinaries as error:
        unavailable(str(error))
    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "kubectl").symlink_to(real)
    for name, function in (("kubectl-galleon", "main"), ("kubectl_complete-galleon", "complete")):
        script = folder / name
        script.write_text(
            f"#!{sys.executable}\nfrom galleon.cli.main import {function}\n{function}()\n"
        )
        script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def kubectl(path: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["kubectl", *args],
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("words", "expected", "directive"),
    [
        pytest.param(["cr"], ["create"], ":4", id="command"),
        pytest.param(
            ["create", ""],
            ["gallery", "image-definition", "image-version", "scaleset"],
            ":4",
            id="create-kinds",
        ),
        pytest.param(
            ["create", "image-version", "ubuntu", "1.0.2", "--dry-run", ""],
            ["none", "client", "server"],
            ":4",
            id="option-choices",
        ),
        pytest.param(["get", "scaleset", "-o", ""], ["json", "yaml", "wide"], ":4", id="output"),
        pytest.param(["get", "ss", "--kubeconfig", ""], [], ":0", id="path-completes-files"),
    ],
)
def test_kubectl_completes_the_plugin(
    plugin_path: str, words: list[str], expected: list[str], directive: str
) -> None:
    """The real kubectl's `__complete` (what its shell completion calls) asks the
    plugin's `kubectl_complete-galleon`."""
    answer = kubectl(plugin_path, "__complete", "galleon", *words)
    assert answer.returncode == 0, answer.stderr
    *lines, last = answer.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == expected
    assert last == directive


def test_the_completion_script_calls_the_plugin_back(plugin_path: str) -> None:
    """`completion bash` is a script for bash; sourced, it completes `kubectl-galleon`."""
    bash = shutil.which("bash")
    assert bash is not None
    script = kubectl(plugin_path, "galleon", "completion", "bash")
    assert script.returncode == 0, script.stderr
    probe = (
        f"{script.stdout}\n"
        "COMP_WORDS=(kubectl-galleon cre); COMP_CWORD=1\n"
        "_kubectl_galleon_completion kubectl-galleon\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    answer = subprocess.run(
        [bash, "-c", probe],
        env={**os.environ, "PATH": plugin_path},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout.split() == ["create"]
