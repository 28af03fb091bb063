"""The plugin's packaging and its pure pieces: the krew manifest (plugins/galleon.yaml)
follows krew's schema and names this version; `create`'s words become the spec's
fields; shell completion answers from the commands themselves.

tests/integration/test_kubectl_create.py, test_kubectl_output.py and test_krew.py run
the same commands against the real control plane, the real kubectl and the real krew.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import jsonschema
import pytest
import yaml

from galleon.cli import create
from galleon.cli import main as cli
from galleon.cli.cluster import CliError
from galleon.cli.completion import complete_cobra

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "plugins" / "galleon.yaml"
SEMVER = (
    r"^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
)

KREW_PLUGIN_SCHEMA = {
    # krew's index.Plugin (sigs.k8s.io/krew/pkg/index/types.go) and the rules of its
    # pkg/index/validation: a v-prefixed semantic version, a short description, and per
    # platform a label selector, a uri, a lowercase hex sha256, file operations and bin.
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "krew.googlecontainertools.github.com/v1alpha2"},
        "kind": {"const": "Plugin"},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "pattern": r"^[a-z0-9]+(-[a-z0-9]+)*$"}},
        },
        "spec": {
            "type": "object",
            "required": ["version", "shortDescription", "platforms"],
            "additionalProperties": False,
            "properties": {
                "version": {"type": "string", "pattern": SEMVER},
                "homepage": {"type": "string", "pattern": "^https://"},
                "shortDescription": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": {"type": "string"},
                "caveats": {"type": "string"},
                "platforms": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["selector", "uri", "sha256", "files", "bin"],
                        "additionalProperties": False,
                        "properties": {
                            "selector": {
                                "type": "object",
                                "properties": {
                                    "matchLabels": {
                                        "type": "object",
                                        "additionalProperties": {"type": "string"},
                                    },
                                    "matchExpressions": {"type": "array"},
                                },
                                "additionalProperties": False,
                            },
                            "uri": {"type": "string", "pattern": "^https://"},
                            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                            "files": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "required": ["from", "to"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "from": {"type": "string", "minLength": 1},
                                        "to": {"type": "string", "minLength": 1},
                                    },
                                },
                            },
                            "bin": {"type": "string", "minLength": 1},
                        },
                    },
                },
            },
        },
    },
}


def packager() -> ModuleType:
    spec = importlib.util.spec_from_file_location("krew_package", REPO / "hack" / "krew_package.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def project_version() -> str:
    with (REPO / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def test_the_krew_manifest_follows_krews_schema_and_names_this_version() -> None:
    document = yaml.safe_load(MANIFEST.read_text())
    jsonschema.validate(document, KREW_PLUGIN_SCHEMA)
    assert document["metadata"]["name"] == MANIFEST.stem  # krew-index: the file's name
    version = project_version()
    assert document["spec"]["version"] == f"v{version}"
    platforms = document["spec"]["platforms"]
    assert {
        (p["selector"]["matchLabels"]["os"], p["selector"]["matchLabels"]["arch"])
        for p in platforms
    } == {
        ("linux", "amd64"),
        ("linux", "arm64"),
        ("darwin", "amd64"),
        ("darwin", "arm64"),
    }
    for platform in platforms:
        assert platform["uri"].endswith(f"/v{version}/kubectl-galleon-v{version}.tar.gz")
        assert platform["bin"] == "kubectl-galleon"
        assert any(f["from"] == platform["bin"] for f in platform["files"])


def test_the_krew_manifest_is_what_the_packager_writes() -> None:
    """Hand edits drift: the file is `hack/krew_package.py`'s rendering of its own uri
    and sha256 (which only a release's build changes)."""
    module = packager()
    document = yaml.safe_load(MANIFEST.read_text())
    first = document["spec"]["platforms"][0]
    rendered = module.render(module.manifest(project_version(), first["uri"], first["sha256"]))
    assert MANIFEST.read_text() == rendered


@pytest.mark.parametrize(
    ("words", "regions"),
    [
        pytest.param(["westus"], [{"name": "westus"}], id="region-takes-replica-count"),
        pytest.param(
            ["westus", "eastus2=2"],
            [{"name": "westus"}, {"name": "eastus2", "regionalReplicaCount": 2}],
            id="region-with-its-own-count",
        ),
        pytest.param(
            ["eastus2=100"], [{"name": "eastus2", "regionalReplicaCount": 100}], id="largest-count"
        ),
    ],
)
def test_target_regions_become_the_spec_list(words: list[str], regions: list[dict]) -> None:
    assert create.target_regions(words) == regions


@pytest.mark.parametrize(
    "word",
    [
        pytest.param("x=abc", id="not-a-number"),
        pytest.param("x=0", id="zero"),
        pytest.param("x=101", id="above-the-limit"),
        pytest.param("x=-1", id="negative"),
        pytest.param("x=", id="empty"),
    ],
)
def test_a_replica_count_that_is_not_1_to_100_is_refused(word: str) -> None:
    with pytest.raises(CliError, match=re.escape(f'--target-regions "{word}": the replica count')):
        create.target_regions([word])


@pytest.mark.parametrize(
    ("args", "spread"),
    [
        pytest.param(
            ["--target-regions", "a", "b=1", "--replica-count", "5"],
            ["--target-regions", "a", "--target-regions", "b=1", "--replica-count", "5"],
            id="words-until-the-next-option",
        ),
        pytest.param(
            ["--data-disk-sizes-gb", "10", "20"],
            ["--data-disk-sizes-gb", "10", "--data-disk-sizes-gb", "20"],
            id="at-the-end",
        ),
        pytest.param(
            ["--share-with", "a", "--", "b"], ["--share-with", "a", "--", "b"], id="double-dash"
        ),
        pytest.param(["--source", "a", "b"], ["--source", "a", "b"], id="one-value-option"),
    ],
)
def test_list_options_take_every_word_after_them(args: list[str], spread: list[str]) -> None:
    assert create.spread(args) == spread


def test_completion_answers_from_the_commands() -> None:
    """typer's click moved a private helper if this fails (galleon.cli.completion)."""
    *lines, directive = complete_cobra(cli.app, ["create", "image-"]).splitlines()
    assert [line.split("\t")[0] for line in lines] == ["image-definition", "image-version"]
    assert all(line.split("\t")[1].startswith("Create an Image") for line in lines)
    assert directive == ":4"
    assert complete_cobra(cli.app, ["get", "ss", "--kubeconfig", ""]) == ":0"


@pytest.mark.parametrize(
    "module",
    [
        "galleon.cli.create",
        "galleon.cli.completion",
        "galleon.cli.documents",
        "galleon.cli.render.wide",
        "galleon.cli.version",
    ],
)
def test_worked_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0
    assert result.failed == 0
