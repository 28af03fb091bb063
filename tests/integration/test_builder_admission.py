"""The image builder's CRDs (ImageTemplate, ImageBuild) on a real kube-apiserver.

Installed from crds/ with the others by the session's control plane, they must:

- be accepted: structural, every CEL rule compiled and within the cost budget;
- admit every good example and refuse every bad one of tests/data/builder_api.yaml
  (shared with tests/unit/test_builder_api.py) naming the field, with the words the
  model says too: a server-side dry run of each;
- evaluate every CEL rule on partial objects (each rule-bearing node written with its
  required fields only, each optional field alone, whole and left out), judging each
  as the model does and never failing to evaluate;
- keep an ImageBuild's spec as created, and bound what status may hold.

Nothing runs here but the API server: no operator, no registry.
"""

from __future__ import annotations

import copy
import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.types import PatchType
from pydantic import BaseModel, ValidationError

from galleon import GROUP, VERSION
from galleon.api.crd import file_name, kind_named
from galleon.api.imagebuild import SPEC_IMMUTABLE_MESSAGE, ImageBuildSpec
from galleon.api.imagetemplate import ImageTemplateSpec, check_name
from galleon_testkit.binaries import REPO_ROOT
from galleon_testkit.controlplane import ControlPlane

pytestmark = pytest.mark.integration

ImageTemplate = create_namespaced_resource(GROUP, VERSION, "ImageTemplate", "imagetemplates")
ImageBuild = create_namespaced_resource(GROUP, VERSION, "ImageBuild", "imagebuilds")
RESOURCES = {"ImageTemplate": ImageTemplate, "ImageBuild": ImageBuild}
SPECS: dict[str, type[BaseModel]] = {
    "ImageTemplate": ImageTemplateSpec,
    "ImageBuild": ImageBuildSpec,
}
DATA = yaml.safe_load((REPO_ROOT / "tests" / "data" / "builder_api.yaml").read_text())
GENERATED = {
    # Values too big to write in the YAML, named there by these strings.
    "many-steps": lambda: [{"name": f"s{i}", "type": "User", "user": "nobody"} for i in range(65)],
    "long-path": lambda: "/" + "a" * 4096,
    "big-inline": lambda: "x" * (256 * 1024 + 1),
    "long-label-key": lambda: {"k" * 257: "v"},
}
VALIDATIONS = "x-kubernetes-validations"
ITEMS = "[]"
EVALUATION_FAILURES = ("evaluating rule", "no such key", "compilation", "cost budget")
DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def builder_crds(control_plane: ControlPlane) -> dict[str, dict[str, Any]]:
    """Kind → the builder's CRD as crds/ holds it (the session's plane installed it)."""
    return {
        kind: yaml.safe_load((REPO_ROOT / "crds" / file_name(kind_named(kind))).read_text())
        for kind in RESOURCES
    }


# -- the examples ------------------------------------------------------------------


def steps(dotted: str) -> list[str | int]:
    """`spec.customize[2].file` → ["spec", "customize", 2, "file"]."""
    keys: list[str | int] = []
    for part in dotted.split("."):
        name, *indexes = re.split(r"\[(\d+)\]", part)
        keys.append(name)
        keys += [int(index) for index in indexes if index]
    return keys


def changed(case: dict[str, Any]) -> dict[str, Any]:
    """The case's base object with its `set` and `remove` applied."""
    document = copy.deepcopy(DATA["good"][case["base"]])
    for dotted, value in (case.get("set") or {}).items():
        *parents, last = steps(dotted)
        node: Any = document
        for key in parents:
            node = node[key]
        node[last] = GENERATED[value]() if isinstance(value, str) and value in GENERATED else value
    for dotted in case.get("remove") or []:
        *parents, last = steps(dotted)
        node = document
        for key in parents:
            node = node[key]
        del node[last]
    return document


def placed(document: dict[str, Any], namespace: str, name: str | None = None) -> dict[str, Any]:
    result = copy.deepcopy(document)
    result["metadata"] = {**result["metadata"], "namespace": namespace}
    if name is not None:
        result["metadata"]["name"] = name
    return result


def api_refusal(kube: Client, document: dict[str, Any]) -> str | None:
    """The API server's refusal of a dry-run create of `document`, None if admitted."""
    try:
        kube.create(codecs.from_dict(document), dry_run=True)
    except ApiError as error:
        assert error.status.code == 422, error.status.message
        return error.status.message or ""
    return None


def model_refusal(document: dict[str, Any]) -> str | None:
    try:
        SPECS[document["kind"]].model_validate(document["spec"])
    except ValidationError as error:
        return str(error)
    return None


def test_the_crds_are_accepted_within_the_cel_cost_budget(
    kube: Client, builder_crds: dict[str, dict[str, Any]]
) -> None:
    for kind, rendered in builder_crds.items():
        served = kube.get(CustomResourceDefinition, rendered["metadata"]["name"])
        assert served.status is not None
        conditions = {c.type: c.status for c in served.status.conditions or []}
        assert conditions.get("Established") == "True", conditions
        assert conditions.get("NonStructuralSchema") != "True", conditions
        schema = served.spec.versions[0].schema.openAPIV3Schema.to_dict()
        count = len(re.findall(VALIDATIONS, yaml.safe_dump(schema)))
        wanted = len(re.findall(VALIDATIONS, yaml.safe_dump(rendered)))
        assert count == wanted, f"{kind}: {count} rule lists served, {wanted} rendered"


@pytest.mark.parametrize(
    "document",
    [pytest.param(d, id=f"{d['kind']}/{d['metadata']['name']}") for d in DATA["good"]],
)
def test_good_examples_are_admitted(
    kube: Client, namespace: str, builder_crds: Any, document: dict[str, Any]
) -> None:
    assert api_refusal(kube, placed(document, namespace)) is None
    assert model_refusal(document) is None


def test_the_api_server_fills_in_the_models_defaults(
    kube: Client, namespace: str, builder_crds: Any
) -> None:
    created = kube.create(codecs.from_dict(placed(DATA["good"][1], namespace)), dry_run=True)
    spec = created.to_dict()["spec"]
    model = ImageTemplateSpec.model_validate(DATA["good"][1]["spec"])
    assert spec == model.model_dump(by_alias=True, mode="json", exclude_none=True)
    assert spec["customize"][0]["file"]["mode"] == 420
    assert spec["customize"][0]["file"]["owner"] == {"uid": 0, "gid": 0}
    assert spec["source"]["imageVersion"]["version"] == "latest"
    assert (spec["buildTimeout"], spec["historyLimit"]) == ("PT4H", 10)
    assert spec["distribute"]["versioning"] == {"scheme": "Latest"}
    build = kube.create(codecs.from_dict(placed(DATA["good"][4], namespace)), dry_run=True)
    assert build.to_dict()["spec"] == {"templateName": "hardened-ubuntu", "reason": "Manual"}


@pytest.mark.parametrize("case", [pytest.param(c, id=c["id"]) for c in DATA["bad"]])
def test_bad_examples_are_refused_alike(
    kube: Client, namespace: str, builder_crds: Any, case: dict[str, Any]
) -> None:
    document = changed(case)
    refused = api_refusal(kube, placed(document, namespace))
    assert refused is not None, "the API server admitted it"
    words = " ".join((case.get("api") or case["words"]).split())
    assert words in refused, refused
    if case.get("metadata"):
        with pytest.raises(ValueError, match=re.escape(case["words"].strip())):
            check_name(document["metadata"]["name"])
        return
    assert case["field"] in refused, refused
    expected = model_refusal(document)
    assert expected is not None, f"the model admitted it; the API server said: {refused}"
    assert " ".join((case.get("model") or case["words"]).split()) in expected, expected


# -- partial objects ---------------------------------------------------------------


def rule_nodes(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[Any]:
    """(path, schema node, parent schema) of every node with CEL rules; `[]` marks items."""
    yield from _walk(node, path, None)


def _walk(node: dict[str, Any], path: tuple[str, ...], parent: Any) -> Iterator[Any]:
    if node.get(VALIDATIONS):
        yield path, node, parent
    for key, child in (node.get("properties") or {}).items():
        yield from _walk(child, (*path, key), node)
    if "items" in node:
        yield from _walk(node["items"], (*path, ITEMS), node)
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], (*path, "{}"), node)


def locate(document: Any, path: tuple[str, ...]) -> list[int] | None:
    """For each `[]` of `path`, the index of the first item holding the rest of the
    path (customize's items are of different types); None when nothing holds it."""
    if not path:
        return []
    key, rest = path[0], path[1:]
    if key == ITEMS:
        for index, item in enumerate(document if isinstance(document, list) else []):
            found = locate(item, rest)
            if found is not None:
                return [index, *found]
        return None
    if not isinstance(document, dict) or key not in document:
        return None
    return locate(document[key], rest)


def value_at(document: Any, path: tuple[str, ...], indexes: list[int]) -> Any:
    chosen = iter(indexes)
    node = document
    for key in path:
        node = node[next(chosen)] if key == ITEMS else node[key]
    return node


def with_value(
    document: dict[str, Any], path: tuple[str, ...], indexes: list[int], value: Any
) -> dict[str, Any]:
    """A copy of `document` with `value` at `path` (a list on the way keeps only the
    chosen item); `value` ... (Ellipsis) removes the field instead."""
    result = copy.deepcopy(document)
    chosen = iter(indexes)
    node: Any = result
    for key in path[:-1]:
        if key == ITEMS:
            node[:] = [node[next(chosen)]]
            node = node[0]
        else:
            node = node[key]
    last = path[-1]
    if last == ITEMS:
        node[:] = [value]
    elif value is ...:
        node.pop(last, None)
    else:
        node[last] = value
    return result


def minimal(value: Any, schema: dict[str, Any]) -> Any:
    """`value` with every optional property left out, all the way down."""
    if isinstance(value, dict) and "properties" in schema:
        required = set(schema.get("required") or [])
        return {
            key: minimal(item, schema["properties"][key])
            for key, item in value.items()
            if key in required
        }
    if isinstance(value, list) and "items" in schema:
        return [minimal(item, schema["items"]) for item in value]
    return value


def partial_values(value: Any, schema: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(label, value) of each way the node is written partially."""
    if isinstance(value, dict) and "properties" in schema:
        base = minimal(value, schema)
        yield "required-only", base
        for key in sorted(set(value) - set(base)):
            yield f"only-{key}", {**base, key: value[key]}
    yield "whole", value


def variants(documents: list[dict[str, Any]], schema: dict[str, Any]) -> Iterator[Any]:
    """(shown path, label, document) for every rule node of `schema`, written into the
    first of `documents` that holds it."""
    for path, node, parent in rule_nodes(schema):
        shown = ".".join(path).replace(".[]", "[]") or "(object)"
        if not path:
            yield shown, "whole", documents[0]
            continue
        if path[-1] == "{}":
            continue  # a map's values: written whole with the map
        holding = [(d, locate(d, path)) for d in documents]
        document, indexes = next(((d, i) for d, i in holding if i is not None), (None, None))
        assert document is not None and indexes is not None, (
            f"{shown} carries CEL rules but no good example holds it"
        )
        value = value_at(document, path, indexes)
        for label, partial in partial_values(value, node):
            yield shown, label, with_value(document, path, indexes, partial)
        if path[-1] != ITEMS and path[-1] not in (parent.get("required") or []):
            yield shown, "left-out", with_value(document, path, indexes, ...)


def test_every_cel_rule_holds_on_partial_objects(
    kube: Client, namespace: str, builder_crds: dict[str, dict[str, Any]]
) -> None:
    examples = {kind: [d for d in DATA["good"] if d["kind"] == kind] for kind in builder_crds}
    for documents in examples.values():
        documents.sort(key=lambda d: -len(yaml.safe_dump(d)))  # the richest first
    counter = itertools.count()
    checked: list[str] = []
    disagreements: list[str] = []
    for kind, crd in builder_crds.items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        for shown, label, document in variants(examples[kind], schema):
            where = f"{kind} {shown} {label}"
            candidate = placed(document, namespace, f"p{next(counter)}")
            refused = api_refusal(kube, candidate)
            expected = model_refusal(candidate)
            checked.append(where)
            if refused and any(word in refused for word in EVALUATION_FAILURES):
                disagreements.append(f"{where}: a rule could not be evaluated: {refused}")
            elif (refused is None) != (expected is None):
                disagreements.append(
                    f"{where}: the API server {'refused' if refused else 'admitted'} it "
                    f"({refused}), the model {'refused' if expected else 'admitted'} it "
                    f"({expected})"
                )
    assert not disagreements, "\n".join(disagreements)
    assert len(checked) > 60, checked


# -- updates and status ------------------------------------------------------------


def test_an_image_builds_spec_never_changes(
    kube: Client, namespace: str, builder_crds: Any
) -> None:
    stored = kube.create(codecs.from_dict(placed(DATA["good"][4], namespace)))
    name = stored.metadata.name
    try:
        for change in (
            {"reason": "SourceImageUpdate"},
            {"templateGeneration": 2},
            {"templateName": "another-template"},
        ):
            with pytest.raises(ApiError) as caught:
                kube.patch(
                    ImageBuild,
                    name,
                    {"spec": change},
                    namespace=namespace,
                    patch_type=PatchType.MERGE,
                    dry_run=True,
                )
            assert SPEC_IMMUTABLE_MESSAGE in (caught.value.status.message or ""), change
        # Writing the same spec again is no change; metadata may change.
        kube.patch(
            ImageBuild,
            name,
            {"spec": {"reason": "Manual"}, "metadata": {"labels": {"galleon.dev/template": "x"}}},
            namespace=namespace,
            patch_type=PatchType.MERGE,
            dry_run=True,
        )
    finally:
        kube.delete(ImageBuild, name, namespace=namespace)


STATUS_CASES = [
    pytest.param("ImageBuild", {"phase": "Done"}, "Unsupported value", id="build-phase"),
    pytest.param("ImageBuild", {"outputDigest": "sha256:abc"}, "should match", id="digest"),
    pytest.param(
        "ImageBuild",
        {"steps": [{"name": "s", "type": "File", "durationSeconds": -1}]},
        "should be greater than or equal to 0",
        id="negative-duration",
    ),
    pytest.param(
        "ImageBuild",
        {"inputs": [{"name": f"i{i}", "digest": DIGEST} for i in range(66)]},
        "must have at most 65 items",
        id="too-many-inputs",
    ),
    pytest.param(
        "ImageBuild",
        {"inputs": [{"name": "a", "digest": DIGEST}, {"name": "a", "digest": DIGEST}]},
        "Duplicate value",
        id="input-twice",
    ),
    pytest.param("ImageTemplate", {"builds": -1}, "greater than or equal to 0", id="builds"),
    pytest.param(
        "ImageTemplate",
        {"lastBuild": {"name": "b", "outputDigest": "sha512:" + "0" * 64}},
        "should match",
        id="last-build-digest",
    ),
]


@pytest.mark.parametrize(("kind", "status", "words"), STATUS_CASES)
def test_status_holds_only_what_it_may(
    kube: Client,
    namespace: str,
    builder_crds: Any,
    kind: str,
    status: dict[str, Any],
    words: str,
) -> None:
    document = DATA["good"][1 if kind == "ImageTemplate" else 5]
    resource = RESOURCES[kind]
    stored = kube.create(codecs.from_dict(placed(document, namespace)))
    name = stored.metadata.name
    try:
        good = (
            {"builds": 1, "lastBuild": {"name": "b", "phase": "Building"}}
            if kind == "ImageTemplate"
            else {
                "phase": "Succeeded",
                "outputDigest": DIGEST,
                "steps": [{"name": "env", "type": "Environment", "durationSeconds": 0.5}],
                "inputs": [{"name": "source", "digest": DIGEST}],
                "imageVersion": {"name": "v", "version": "1.0.0"},
            }
        )
        kube.patch(
            resource.Status,
            name,
            {"status": good},
            namespace=namespace,
            patch_type=PatchType.MERGE,
            dry_run=True,
        )
        with pytest.raises(ApiError) as caught:
            kube.patch(
                resource.Status,
                name,
                {"status": status},
                namespace=namespace,
                patch_type=PatchType.MERGE,
                dry_run=True,
            )
        assert words in (caught.value.status.message or ""), caught.value.status.message
    finally:
        kube.delete(resource, name, namespace=namespace)
