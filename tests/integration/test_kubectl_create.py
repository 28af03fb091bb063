"""`kubectl galleon create ...` against the real control plane: each kind created
through the plugin and read back; the `--dry-run=client -o yaml` document applied with
the real kubectl is the same object; bad input creates nothing; `--dry-run=server`
stores nothing. No operator runs: these tests judge the objects, not their status.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client
from lightkube.core.exceptions import ApiError
from typer.testing import CliRunner, Result

from galleon.cli import main as cli
from galleon.kube.resources import Gallery, ImageDefinition, ImageVersion, ScaleSet
from galleon_testkit import binaries
from galleon_testkit.cluster_fixtures import unavailable

pytestmark = pytest.mark.integration
SOURCE = "registry.example.com/base/ubuntu:22.04"

KINDS: dict[str, Any] = {
    "gallery": Gallery,
    "image-definition": ImageDefinition,
    "image-version": ImageVersion,
    "scaleset": ScaleSet,
}


def arguments(kind: str, name: str) -> list[str]:
    """`create KIND ...` with every flag its shape takes, for the object `name`."""
    return {
        "gallery": [
            "gallery",
            name,
            "--location",
            "eastus2",
            "--description",
            "base images",
            "--permissions",
            "Namespaces",
            "--share-with",
            "team-a",
            "team-b",
        ],
        "image-definition": [
            "image-definition",
            name,
            "--gallery",
            "images",
            "--publisher",
            "Contoso",
            "--offer",
            "UbuntuServer",
            "--sku",
            "22_04-lts",
            "--os-type",
            "Linux",
            "--os-state",
            "Generalized",
            "--end-of-life-date",
            "2030-01-01T00:00:00Z",
        ],
        "image-version": [
            "image-version",
            "ubuntu-server",
            "1.0.2",
            "--name",
            name,
            "--source",
            SOURCE,
            "--target-regions",
            "westcentralus",
            "southcentralus=1",
            "eastus2=2",
            "--replica-count",
            "5",
        ],
        "scaleset": [
            "scaleset",
            name,
            "--image-definition",
            "ubuntu-server",
            "--region",
            "eastus2",
            "--instances",
            "3",
            "--upgrade-policy-mode",
            "Rolling",
            "--max-batch-instance-percent",
            "20",
            "--enable-auto-os-upgrade",
            "--data-disk-sizes-gb",
            "10",
            "20",
        ],
    }[kind]


class Plugin:
    """`kubectl galleon ...` in-process against the session's control plane."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        self.kubeconfig, self.namespace = kubeconfig, namespace

    def __call__(self, *args: str) -> Result:
        return CliRunner().invoke(
            cli.app,
            [*args, "-n", self.namespace, "--kubeconfig", str(self.kubeconfig)],
            env={"COLUMNS": "160", "KUBECONFIG": None},
        )


@pytest.fixture
def plugin(control_plane: Any, namespace: str) -> Plugin:
    return Plugin(control_plane.kubeconfig, namespace)


@pytest.fixture
def kubectl(control_plane: Any) -> Callable[..., subprocess.CompletedProcess[str]]:
    """The real kubectl, as the session's admin."""
    try:
        path = binaries.kubectl()
    except binaries.MissingBinaries as error:
        unavailable(str(error))

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(path), "--kubeconfig", str(control_plane.kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def stored(kube: Client, kind: str, name: str, namespace: str) -> dict[str, Any]:
    return dict(kube.get(KINDS[kind], name, namespace=namespace))


def labels_and_spec(obj: dict[str, Any]) -> tuple[Any, Any]:
    return (obj["metadata"].get("labels"), obj["spec"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_create_makes_the_object_the_flags_describe(
    kind: str, plugin: Plugin, kube: Client, namespace: str
) -> None:
    result = plugin("create", *arguments(kind, "made"))
    assert result.exit_code == 0, result.output
    label = kind.replace("-", "")
    assert result.output.strip() == f"{label}.galleon.dev/made in namespace {namespace} created"

    obj = stored(kube, kind, "made", namespace)
    spec = obj["spec"]
    if kind == "gallery":
        assert spec["location"] == "eastus2"
        assert spec["sharingProfile"] == {
            "permissions": "Namespaces",
            "namespaces": ["team-a", "team-b"],
        }
        assert spec["repositoryPrefix"] == "galleon"  # the CRD's default
    elif kind == "image-definition":
        assert spec["galleryName"] == "images"
        assert spec["identifier"] == {
            "publisher": "Contoso",
            "offer": "UbuntuServer",
            "sku": "22_04-lts",
        }
        assert (spec["osType"], spec["osState"]) == ("Linux", "Generalized")
        assert spec["endOfLifeDate"] == "2030-01-01T00:00:00Z"
    elif kind == "image-version":
        assert (spec["imageDefinitionName"], spec["version"]) == ("ubuntu-server", "1.0.2")
        assert spec["source"]["image"] == SOURCE
        profile = spec["publishingProfile"]
        assert profile["replicaCount"] == 5
        assert [(r["name"], r.get("regionalReplicaCount")) for r in profile["targetRegions"]] == [
            ("westcentralus", None),
            ("southcentralus", 1),
            ("eastus2", 2),
        ]
    else:
        assert (spec["region"], spec["capacity"]) == ("eastus2", 3)
        assert spec["imageReference"] == {
            "imageDefinitionName": "ubuntu-server",
            "version": "latest",
        }
        assert [(d["name"], d["lun"], d["diskSizeGB"]) for d in spec["dataDisks"]] == [
            ("data0", 0, 10),
            ("data1", 1, 20),
        ]
        policy = spec["upgradePolicy"]
        assert policy["mode"] == "Rolling"
        assert policy["rollingUpgradePolicy"]["maxBatchInstancePercent"] == 20
        assert policy["automaticOSUpgradePolicy"]["enableAutomaticOSUpgrade"] is True
        assert obj["metadata"].get("labels") is None
        assert spec["template"]["metadata"]["labels"] == {"app": "made"}
    assert obj["metadata"]["managedFields"][0]["manager"] == "kubectl-galleon"

    again = plugin("create", *arguments(kind, "made"))
    assert again.exit_code == 1
    assert "already exists" in again.output, again.output


@pytest.mark.parametrize("kind", list(KINDS))
def test_the_dry_run_document_applied_with_kubectl_is_the_same_object(
    kind: str,
    plugin: Plugin,
    kube: Client,
    namespace: str,
    kubectl: Callable[..., subprocess.CompletedProcess[str]],
    tmp_path: Path,
) -> None:
    assert plugin("create", *arguments(kind, "direct")).exit_code == 0

    printed = plugin("create", *arguments(kind, "from-git"), "--dry-run=client", "-o", "yaml")
    assert printed.exit_code == 0, printed.output
    document = yaml.safe_load(printed.output)
    assert document["metadata"] == {"name": "from-git", "namespace": namespace}
    with pytest.raises(ApiError):  # a client dry run sends nothing
        stored(kube, kind, "from-git", namespace)

    manifest = tmp_path / "object.yaml"
    manifest.write_text(printed.output)
    applied = kubectl("apply", "-f", str(manifest))
    assert applied.returncode == 0, applied.stderr
    from_git = stored(kube, kind, "from-git", namespace)
    direct = stored(kube, kind, "direct", namespace)
    if kind == "scaleset":  # the instances' label is the ScaleSet's own name
        direct["spec"]["template"]["metadata"]["labels"]["app"] = "from-git"
    assert labels_and_spec(from_git) == labels_and_spec(direct)

    as_json = plugin("create", *arguments(kind, "from-git"), "--dry-run=client", "-o", "json")
    assert yaml.safe_load(as_json.output) == document


def test_a_bad_replica_count_is_one_clear_line_and_creates_nothing(
    plugin: Plugin, kube: Client, namespace: str
) -> None:
    result = plugin(
        "create",
        "image-version",
        "ubuntu-server",
        "1.0.2",
        "--source",
        SOURCE,
        "--target-regions",
        "eastus2",
        "x=abc",
    )
    assert result.exit_code == 1
    assert result.output.strip() == (
        'error: --target-regions "x=abc": the replica count after "=" must be a whole number '
        "from 1 to 100, e.g. eastus2=2"
    )
    assert list(kube.list(ImageVersion, namespace=namespace)) == []


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(
            ["image-version", "ubuntu", "1.0", "--source", SOURCE, "--target-regions", "eastus2"],
            "VERSION (spec.version): version must be MAJOR.MINOR.PATCH",
            id="version-not-semantic",
        ),
        pytest.param(
            ["image-version", "ubuntu", "1.0.0", "--source", SOURCE, "--target-regions", "East_US"],
            "--target-regions (spec.publishingProfile.targetRegions.0.name): String should "
            "match pattern",
            id="region-not-a-dns-label",
        ),
        pytest.param(
            [
                *("image-definition", "ubuntu", "--gallery", "g", "--publisher", "p"),
                *("--offer", "o", "--sku", "s", "--os-type", "Solaris"),
            ],
            "--os-type (spec.osType): Input should be 'Linux' or 'Windows' (got 'Solaris')",
            id="os-type-unknown",
        ),
        pytest.param(
            [
                *("scaleset", "Web", "--image-definition", "d", "--region", "eastus2"),
                *("--instances", "1"),
            ],
            "NAME 'Web':",
            id="scaleset-name-not-a-dns-label",
        ),
        pytest.param(
            ["gallery", "images", "--location", "eastus2", "--share-with", "team-a"],
            "--permissions (spec.sharingProfile): namespaces and namespaceSelector are only "
            'used with permissions "Namespaces"',
            id="sharing-without-namespaces-permission",
        ),
    ],
)
def test_input_the_model_refuses_creates_nothing(
    args: list[str], says: str, plugin: Plugin, kube: Client, namespace: str
) -> None:
    result = plugin("create", *args)
    assert result.exit_code == 1
    assert result.output.startswith("error: invalid "), result.output
    assert says in " ".join(result.output.split()), result.output
    for resource in KINDS.values():
        assert list(kube.list(resource, namespace=namespace)) == []


def test_a_server_dry_run_is_judged_by_the_api_server_and_stores_nothing(
    plugin: Plugin, kube: Client, namespace: str
) -> None:
    result = plugin(
        "create", *arguments("image-version", "checked"), "--dry-run=server", "-o", "yaml"
    )
    assert result.exit_code == 0, result.output
    answer = yaml.safe_load(result.output)
    # The API server filled in the schema's defaults, and kept no managedFields in view.
    assert answer["spec"]["safetyProfile"]["allowDeletionOfReplicatedLocations"] is True
    assert "managedFields" not in answer["metadata"]
    assert list(kube.list(ImageVersion, namespace=namespace)) == []

    unnamed = [arg for arg in arguments("image-version", "x") if arg not in ("--name", "x")]
    default = plugin("create", *unnamed, "--dry-run=server", "-o", "name")
    assert default.output.strip() == "imageversion.galleon.dev/ubuntu-server-1-0-2"

    name_only = plugin("create", *arguments("gallery", "images"), "--dry-run=server", "-o", "name")
    assert name_only.output.strip() == "gallery.galleon.dev/images"
    assert list(kube.list(Gallery, namespace=namespace)) == []
