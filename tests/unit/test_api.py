"""The API models and the CRDs generated from them.

Bad input is checked twice: by the pydantic models (what the operator and CLI
parse) and by the generated OpenAPI schemas (what the API server enforces, minus
CEL, which tests/integration/test_admission.py checks on a real API server).
Every refusal must name the offending field.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from pydantic import BaseModel, ValidationError

from galleon.api.crd import KINDS, Kind, kind_named, render_all

REPO = Path(__file__).resolve().parents[2]


def examples() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((REPO / "examples").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [d for d in documents if d["apiVersion"].startswith("galleon.dev/")]


def example(kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(d for d in examples() if d["kind"] == kind))


def strict_json_schema(node: Any) -> Any:
    """The CRD's OpenAPI schema as JSON Schema, refusing unknown fields the way
    `kubectl apply --validate=strict` (the default) does."""
    if isinstance(node, list):
        return [strict_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: strict_json_schema(v) for k, v in node.items()}
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    return node


def schema_errors(kind: Kind, document: dict[str, Any]) -> list[str]:
    schema = render(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft7Validator(strict_json_schema(schema))
    return [
        ".".join(str(p) for p in error.absolute_path) + ": " + error.message
        for error in validator.iter_errors(document)
    ]


def render(kind: Kind) -> dict[str, Any]:
    return render_all()[f"galleon.dev_{kind.plural}.yaml"]


# The generated CRDs ------------------------------------------------------------------


def test_crds_match_the_models() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen_crds.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.get("properties", {}).items():
            yield from walk(value, f"{path}.{key}")
        if "items" in node:
            yield from walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_schemas_are_structural_and_documented(kind: Kind) -> None:
    schema = render(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "title:"):
        assert forbidden not in text
    for section in ("spec", "status"):
        for path, node in walk(schema["properties"][section], section):
            is_field = path.count(".") >= 1 and not path.endswith(("[]", "{}"))
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
            if is_field:
                assert node.get("description"), f"{kind.kind} {path} has no description"
            if node.get("type") == "string" and "enum" not in node and "format" not in node:
                assert "maxLength" in node, f"{kind.kind} {path} string without maxLength"
            if node.get("type") == "array":
                assert "maxItems" in node, f"{kind.kind} {path} list without maxItems"


def test_crds_present_themselves_for_kubectl() -> None:
    for kind in KINDS:
        crd = render(kind)
        names = crd["spec"]["names"]
        assert names["categories"] == ["galleon"]
        assert names["shortNames"]
        version = crd["spec"]["versions"][0]
        assert "status" in version["subresources"]
        assert version["additionalPrinterColumns"][-1]["name"] == "Age"
    scale = render(kind_named("ScaleSet"))["spec"]["versions"][0]["subresources"]["scale"]
    assert scale["specReplicasPath"] == ".spec.capacity"
    short_names = [n for k in KINDS for n in k.short_names]
    assert len(short_names) == len(set(short_names))


# The examples ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "document", examples(), ids=lambda d: f"{d['kind']}/{d['metadata']['name']}"
)
def test_examples_are_valid(document: dict[str, Any]) -> None:
    kind = kind_named(document["kind"])
    kind.spec.model_validate(document["spec"])
    assert schema_errors(kind, document) == []


# Bad input: (kind, change to the example, field the error must name, words it must say)

BAD_INPUT = [
    pytest.param(
        "ImageVersion",
        ("spec", "version"),
        "1.0",
        "version",
        "MAJOR.MINOR.PATCH",
        id="version-two-parts",
    ),
    pytest.param(
        "ImageVersion",
        ("spec", "version"),
        "1.0.0-rc1",
        "version",
        "MAJOR.MINOR.PATCH",
        id="version-prerelease",
    ),
    pytest.param(
        "ImageVersion",
        ("spec", "publishingProfile", "targetRegions"),
        [{"name": "eastus2"}, {"name": "eastus2"}],
        "targetRegions",
        "must not name a region twice",
        id="duplicate-target-region",
    ),
    pytest.param(
        "ImageVersion",
        ("spec", "publishingProfile", "targetRegions"),
        [{"name": "eastus2", "regionalReplicaCount": 0}],
        "regionalReplicaCount",
        "greater than or equal to 1",
        id="zero-replicas",
    ),
    pytest.param(
        "ImageVersion",
        ("spec", "publishingProfile", "targetRegions"),
        [],
        "targetRegions",
        "",
        id="no-target-region",
    ),
    pytest.param(
        "ImageVersion",
        ("spec", "publishingProfile", "replicaCount"),
        101,
        "replicaCount",
        "100",
        id="too-many-replicas",
    ),
    pytest.param("ImageVersion", ("spec", "mystery"), 1, "mystery", "", id="unknown-field"),
    pytest.param(
        "ScaleSet",
        ("spec", "upgradePolicy", "rollingUpgradePolicy", "maxBatchInstancePercent"),
        150,
        "maxBatchInstancePercent",
        "100",
        id="batch-percent-over-100",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "upgradePolicy", "rollingUpgradePolicy", "maxUnhealthyInstancePercent"),
        2,
        "maxUnhealthyInstancePercent",
        "5",
        id="unhealthy-percent-under-5",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "upgradePolicy", "rollingUpgradePolicy", "pauseTimeBetweenBatches"),
        "30s",
        "pauseTimeBetweenBatches",
        "ISO 8601",
        id="pause-not-iso8601",
    ),
    pytest.param(
        "ScaleSet", ("spec", "upgradePolicy", "mode"), "Sometimes", "mode", "", id="unknown-mode"
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "imageReference", "version"),
        "newest",
        "version",
        "latest",
        id="image-version-not-latest-nor-semantic",
    ),
    pytest.param("ScaleSet", ("spec", "capacity"), -1, "capacity", "", id="negative-capacity"),
    pytest.param(
        "ScaleSet",
        ("spec", "dataDisks"),
        [{"name": "a", "lun": 0, "diskSizeGB": 1}, {"name": "b", "lun": 0, "diskSizeGB": 1}],
        "dataDisks",
        "lun",
        id="duplicate-lun",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "upgradePolicy", "rollingUpgradePolicy", "maxSurge"),
        "yes",
        "maxSurge",
        "",
        id="surge-not-boolean",
    ),
    pytest.param(
        "Region",
        ("spec", "registries"),
        [{"name": "A_B", "url": "http://x"}],
        "name",
        "",
        id="registry-name-not-dns-label",
    ),
    pytest.param(
        "Gallery",
        ("spec", "repositoryPrefix"),
        "Upper/Case",
        "repositoryPrefix",
        "",
        id="repository-prefix-invalid",
    ),
]

# Bounds from issue 11: what the API accepted and the operator could not handle.
BAD_INPUT += [
    pytest.param(
        "ImageVersion",
        ("spec", "version"),
        "1.0." + "9" * 49,
        "version",
        "52",
        id="version-longer-than-a-revision-label-allows",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "dataDisks"),
        [{"name": "d" * 59, "lun": 0, "diskSizeGB": 1}],
        "name",
        "58",
        id="disk-name-longer-than-its-volume-name-allows",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "upgradePolicy", "rollingUpgradePolicy", "pauseTimeBetweenBatches"),
        "P9999999999D",
        "pauseTimeBetweenBatches",
        "at most 2147483647 seconds",
        id="pause-longer-than-int32-seconds",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "upgradePolicy", "rollingUpgradePolicy", "upgradedInstanceHealthTimeout"),
        "P99999999999D",
        "upgradedInstanceHealthTimeout",
        "ISO 8601",
        id="health-timeout-part-over-ten-digits",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "template", "metadata", "labels"),
        {"bad key": "x"},
        "labels",
        "qualified names",
        id="label-key-not-qualified",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "template", "metadata", "labels"),
        {"app": "bad value"},
        "labels",
        "",
        id="label-value-invalid",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "template", "metadata", "annotations"),
        {f"k{i}": "x" * 8000 for i in range(40)},
        "annotations",
        "262144 bytes",
        id="annotations-over-256-kib",
    ),
    pytest.param(
        "ScaleSet",
        ("spec", "osContainerName"),
        "OS",
        "osContainerName",
        "",
        id="os-container-not-dns-label",
    ),
    pytest.param(
        "Region",
        ("spec", "nodeSelector"),
        {"a/b/c": "x"},
        "nodeSelector",
        "qualified names",
        id="node-selector-key-not-qualified",
    ),
    pytest.param(
        "Region",
        ("spec", "registries"),
        [{"name": "a", "url": "http://[::1"}],
        "url",
        "must be a URL",
        id="registry-url-not-a-url",
    ),
    pytest.param(
        "Region",
        ("spec", "registries"),
        [{"name": "a", "url": "https://" + "a." * 127 + "io"}],
        "url",
        "at most 253",
        id="registry-host-over-253",
    ),
    pytest.param(
        "ImageVersion",
        ("spec", "source", "credentialsSecretRef"),
        {"name": "a/b"},
        "name",
        "",
        id="secret-name-not-dns-subdomain",
    ),
    pytest.param(
        "Gallery",
        ("spec", "sharingProfile"),
        {
            "permissions": "Namespaces",
            "namespaceSelector": {"matchExpressions": [{"key": "t", "operator": "In"}]},
        },
        "values",
        "non-empty for In",
        id="selector-in-without-values",
    ),
]

# Rules only CEL (not the OpenAPI schema) can say; the models still refuse them.
CEL_ONLY = {
    "version-two-parts",
    "version-prerelease",
    "duplicate-target-region",
    "pause-not-iso8601",
    "image-version-not-latest-nor-semantic",
    "duplicate-lun",
    "pause-longer-than-int32-seconds",
    "health-timeout-part-over-ten-digits",
    "label-key-not-qualified",
    "annotations-over-256-kib",
    "node-selector-key-not-qualified",
    "registry-url-not-a-url",
    "registry-host-over-253",
    "selector-in-without-values",
}


def changed(kind: str, path: tuple[str, ...], value: Any) -> dict[str, Any]:
    document = example(kind)
    node = document
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value
    return document


@pytest.mark.parametrize(("kind", "path", "value", "field", "words"), BAD_INPUT)
def test_models_refuse_bad_input(
    kind: str, path: tuple[str, ...], value: Any, field: str, words: str
) -> None:
    model: type[BaseModel] = kind_named(kind).spec
    with pytest.raises(ValidationError) as caught:
        model.model_validate(changed(kind, path, value)["spec"])
    text = str(caught.value)
    assert field in text
    assert words in text


@pytest.mark.parametrize(("kind", "path", "value", "field", "words"), BAD_INPUT)
def test_schemas_refuse_bad_input(
    request: pytest.FixtureRequest,
    kind: str,
    path: tuple[str, ...],
    value: Any,
    field: str,
    words: str,
) -> None:
    errors = schema_errors(kind_named(kind), changed(kind, path, value))
    if request.node.callspec.id in CEL_ONLY:
        assert errors == [], "a CEL-only rule is also in the schema: drop it from CEL_ONLY"
        return
    assert errors, "the schema accepted bad input"
    assert any(field in error for error in errors), errors


def test_batch_percent_may_not_exceed_unhealthy_percent() -> None:
    spec = example("ScaleSet")["spec"]
    spec["upgradePolicy"]["rollingUpgradePolicy"].update(
        maxBatchInstancePercent=50, maxUnhealthyInstancePercent=20
    )
    with pytest.raises(ValidationError, match="maxBatchInstancePercent must not exceed"):
        kind_named("ScaleSet").spec.model_validate(spec)


def test_defaults_mirror_the_cloud() -> None:
    spec = example("ScaleSet")["spec"]
    del spec["upgradePolicy"]
    parsed = kind_named("ScaleSet").spec.model_validate(spec)
    policy = parsed.upgrade_policy.rolling_upgrade_policy
    assert (
        policy.max_batch_instance_percent,
        policy.max_unhealthy_instance_percent,
        policy.max_unhealthy_upgraded_instance_percent,
    ) == (20, 20, 20)
    assert policy.pause_time_between_batches == "PT0S"
    assert parsed.upgrade_policy.mode == "Manual"
    auto = parsed.upgrade_policy.automatic_os_upgrade_policy
    assert not auto.enable_automatic_os_upgrade and not auto.disable_automatic_rollback
    wire = parsed.model_dump(by_alias=True)
    assert "enableAutomaticOSUpgrade" in wire["upgradePolicy"]["automaticOSUpgradePolicy"]


def test_a_scaleset_name_leaves_room_for_its_largest_instance_index() -> None:
    from galleon.api.common import LABEL_NAME_MAX, VERSION_MAX
    from galleon.api.scaleset import MAX_CAPACITY, SCALESET_NAME_MAX, check_name
    from galleon.core import instances

    # Instance names are pod hostnames and label values: at most a 63-character label.
    largest = instances.pod_name("w" * SCALESET_NAME_MAX, 2 * MAX_CAPACITY - 1)
    assert len(largest) <= LABEL_NAME_MAX
    assert check_name("w" * SCALESET_NAME_MAX)
    with pytest.raises(ValueError, match="at most 57"):
        check_name("w" * (SCALESET_NAME_MAX + 1))
    # The revision label `<version>-<hash>` of the longest version fits a label value.
    assert len(instances.revision("9" * VERSION_MAX, "f" * instances.HASH_LENGTH)) <= 63


@pytest.mark.parametrize(
    "kind", ["ImageVersion", "ImageDefinition"], ids=lambda kind: f"{kind}-endOfLifeDate"
)
def test_an_end_of_life_date_needs_a_zone(kind: str) -> None:
    document = example(kind)
    spec = document["spec"]
    holder = spec["publishingProfile"] if kind == "ImageVersion" else spec
    holder["endOfLifeDate"] = "2027-01-01T00:00:00Z"
    kind_named(kind).spec.model_validate(spec)
    holder["endOfLifeDate"] = "2027-01-01T00:00:00"
    with pytest.raises(ValidationError, match="with a zone"):
        kind_named(kind).spec.model_validate(spec)
