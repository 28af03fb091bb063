"""The image builder's API (ImageTemplate, ImageBuild): the models and their CRDs.

The good and bad examples are tests/data/builder_api.yaml, shared with
tests/integration/test_builder_admission.py, which sends them to a real API server:
every good object is admitted and every bad one refused, by the model here with the
words the API server says there. The CRDs are `render_all()`'s, as crds/ holds them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ValidationError

from galleon.api.crd import KINDS, Kind, kind_named, render_all
from galleon.api.customize import STEP_MEMBERS, CustomizeStep, TemplateImageSource
from galleon.api.imagebuild import ImageBuildSpec, ImageBuildStatus
from galleon.api.imagetemplate import ImageTemplateSpec, ImageTemplateStatus, LastBuild, check_name
from galleon.api.imageversion import ImageSource
from galleon.controllers.registries import source_access

REPO = Path(__file__).resolve().parents[2]
BUILDER_KINDS = (kind_named("ImageTemplate"), kind_named("ImageBuild"))
DATA = yaml.safe_load((REPO / "tests" / "data" / "builder_api.yaml").read_text())
SPECS: dict[str, type[BaseModel]] = {
    "ImageTemplate": ImageTemplateSpec,
    "ImageBuild": ImageBuildSpec,
}
GENERATED = {
    # Values too big to write in the YAML, named there by these strings.
    "many-steps": lambda: [{"name": f"s{i}", "type": "User", "user": "nobody"} for i in range(65)],
    "long-path": lambda: "/" + "a" * 4096,
    "big-inline": lambda: "x" * (256 * 1024 + 1),
    "long-label-key": lambda: {"k" * 257: "v"},
}


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


def good_params() -> list[Any]:
    return [pytest.param(d, id=f"{d['kind']}/{d['metadata']['name']}") for d in DATA["good"]]


def bad_params() -> list[Any]:
    return [pytest.param(case, id=case["id"]) for case in DATA["bad"]]


def model_refusal(document: dict[str, Any], case: dict[str, Any] | None = None) -> str | None:
    """What the model says about `document` (check_name for a metadata rule), None if
    it admits it."""
    try:
        if case and case.get("metadata"):
            check_name(document["metadata"]["name"])
        else:
            SPECS[document["kind"]].model_validate(document["spec"])
    except (ValidationError, ValueError) as error:
        return str(error)
    return None


def model_locations(document: dict[str, Any]) -> list[tuple[str | int, ...]]:
    """Where in the spec the model locates each of its refusals (wire names)."""
    try:
        SPECS[document["kind"]].model_validate(document["spec"])
    except ValidationError as error:
        return [tuple(e["loc"]) for e in error.errors()]
    return []


def crd_schema(kind: Kind) -> dict[str, Any]:
    crd = render_all()[f"galleon.dev_{kind.plural}.yaml"]
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def walk(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for key, value in (node.get("properties") or {}).items():
        yield from walk(value, f"{path}.{key}")
    if "items" in node:
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def messages_of(node: dict[str, Any]) -> set[str]:
    return {
        rule["message"]
        for _, child in walk(node)
        for rule in child.get("x-kubernetes-validations") or []
    }


# -- the examples ------------------------------------------------------------------


@pytest.mark.parametrize("document", good_params())
def test_good_examples_are_valid(document: dict[str, Any]) -> None:
    assert model_refusal(document) is None
    if document["kind"] == "ImageTemplate":
        check_name(document["metadata"]["name"])


@pytest.mark.parametrize("case", bad_params())
def test_bad_examples_are_refused_with_their_message(case: dict[str, Any]) -> None:
    refusal = model_refusal(changed(case), case)
    assert refusal is not None, "the model admitted it"
    words = case.get("model") or case["words"]
    assert words.strip() in refusal, refusal
    if not case.get("metadata"):
        # The model refuses at the field, or at a model holding it (a cross-field rule).
        field = tuple(steps(case["field"])[1:])
        locations = model_locations(changed(case))
        assert any(field[: len(loc)] == loc for loc in locations), (field, locations)


def test_every_cel_rule_has_a_bad_example() -> None:
    """Each rule's message appears in some bad example's words: no rule is untested."""
    said = {" ".join(case.get("words", "").split()) for case in DATA["bad"]}
    untested = []
    for kind in BUILDER_KINDS:
        for message in messages_of(crd_schema(kind)):
            if kind.kind == "ImageBuild" and message.startswith("spec is immutable"):
                continue  # a transition rule: tested by the integration test's update
            if not any(words and words in message for words in said):
                untested.append(f"{kind.kind}: {message}")
    assert not untested, "\n".join(untested)


def test_defaults_are_filled_in() -> None:
    spec = ImageTemplateSpec.model_validate(DATA["good"][1]["spec"])
    file = spec.customize[0].file
    assert file is not None
    assert (file.mode, file.owner.uid, file.owner.gid) == (0o644, 0, 0)
    assert spec.build_timeout == "PT4H" and spec.history_limit == 10
    assert spec.distribute.versioning.scheme == "Latest"
    assert spec.distribute.versioning.major is None
    assert spec.source.image_version is not None
    assert spec.source.image_version.version == "latest"
    assert spec.source.image_version.namespace is None
    build = ImageBuildSpec.model_validate(DATA["good"][4]["spec"])
    assert build.reason == "Manual" and build.template_generation is None


def test_schema_defaults_are_the_models() -> None:
    """The API server fills in the same defaults the model assumes."""
    spec = crd_schema(BUILDER_KINDS[0])["properties"]["spec"]["properties"]
    file = spec["customize"]["items"]["properties"]["file"]["properties"]
    assert file["mode"]["default"] == 420
    assert file["owner"]["default"] == {"uid": 0, "gid": 0}
    assert spec["buildTimeout"]["default"] == "PT4H"
    assert spec["historyLimit"]["default"] == 10
    assert spec["distribute"]["properties"]["versioning"]["default"] == {"scheme": "Latest"}
    build = crd_schema(BUILDER_KINDS[1])["properties"]["spec"]["properties"]
    assert build["reason"]["default"] == "Manual"


@pytest.mark.parametrize(
    ("step_type", "member", "value"),
    [
        pytest.param("Entrypoint", "entrypoint", [], id="entrypoint-empty-clears-it"),
        pytest.param("Cmd", "cmd", [], id="cmd-empty-clears-it"),
        pytest.param("WorkingDir", "workingDir", "/", id="working-dir-root"),
        pytest.param("User", "user", "nobody:nogroup", id="user-names"),
        pytest.param("User", "user", "65534", id="user-uid-only"),
        pytest.param("Labels", "labels", {"a": ""}, id="label-value-empty"),
    ],
)
def test_edge_values_a_step_may_take(step_type: str, member: str, value: Any) -> None:
    step = CustomizeStep.model_validate({"name": "s", "type": step_type, member: value})
    assert step.type == step_type


def test_every_step_type_names_one_member() -> None:
    fields = {info.alias or name for name, info in CustomizeStep.model_fields.items()}
    assert set(STEP_MEMBERS.values()) == fields - {"name", "type"}
    types = CustomizeStep.model_fields["type"].annotation
    assert set(STEP_MEMBERS) == set(types.__args__)  # type: ignore[union-attr]


def test_a_template_name_is_a_dns_label() -> None:
    assert check_name("a" * 63)
    for name in ("a" * 64, "ubuntu.hardened", "-x", "Upper"):
        with pytest.raises(ValueError, match="must be a DNS label of at most 63"):
            check_name(name)


def test_build_timeout_of_exactly_a_day_is_allowed() -> None:
    spec = copy.deepcopy(DATA["good"][1]["spec"])
    for value in ("P1D", "PT86400S", "PT24H", "PT1M30.5S"):
        spec["buildTimeout"] = value
        assert ImageTemplateSpec.model_validate(spec).build_timeout == value
    spec["buildTimeout"] = "PT86401S"
    with pytest.raises(ValidationError, match="at most P1D"):
        ImageTemplateSpec.model_validate(spec)


# -- Secret references -------------------------------------------------------------


def test_a_template_image_is_an_image_source_read_from_the_templates_namespace() -> None:
    """The operator's `source_access` reads a template's image the way it reads an
    ImageVersion's source: every Secret from the object's own namespace."""
    layer = DATA["good"][0]["spec"]["customize"][7]["layer"]["image"]
    image = TemplateImageSource.model_validate(layer)
    assert isinstance(image, ImageSource)
    access = source_access(image, "team-a")
    assert str(access.credentials) == "team-a/agents-pull"
    assert str(access.ca) == "team-a/registry-ca"


def test_every_secret_reference_refuses_a_namespace() -> None:
    """Every `*SecretRef`/`secretKeyRef` node of the builder's CRDs carries the rule."""
    found = []
    for kind in BUILDER_KINDS:
        for path, node in walk(crd_schema(kind)["properties"]["spec"], "spec"):
            if re.search(r"(SecretRef|secretKeyRef)$", path):
                rules = [r["rule"] for r in node.get("x-kubernetes-validations") or []]
                assert "!has(self.namespace)" in rules, path
                found.append(path)
    assert len(found) == 6, found


# -- the CRDs ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", BUILDER_KINDS, ids=lambda k: k.kind)
def test_schemas_are_structural_bounded_and_documented(kind: Kind) -> None:
    schema = crd_schema(kind)
    text = yaml.safe_dump(schema)
    for forbidden in ("$ref", "anyOf", "allOf", "oneOf", "title:", "additionalProperties: false"):
        assert forbidden not in text
    for section in ("spec", "status"):
        for path, node in walk(schema["properties"][section], section):
            is_field = path.count(".") >= 1 and not path.endswith(("[]", "{}"))
            assert "type" in node, path
            if is_field:
                assert node.get("description"), f"{kind.kind} {path} has no description"
            if node.get("type") == "string" and "enum" not in node and "format" not in node:
                assert "maxLength" in node, f"{kind.kind} {path} string without maxLength"
            if node.get("type") == "array":
                assert "maxItems" in node, f"{kind.kind} {path} list without maxItems"
            if node.get("type") == "object" and "additionalProperties" in node:
                assert "maxProperties" in node, f"{kind.kind} {path} map without maxProperties"
            if node.get("type") == "integer" and section == "spec":
                assert ("minimum" in node and "maximum" in node) or "enum" in node, path


def json_path_exists(schema: dict[str, Any], path: str) -> bool:
    node = schema
    path = re.sub(r"\[\?\(.*?\)\]", "[]", path)  # a filter selects items of a list
    for key in path.strip(".").split("."):
        if key == "metadata":
            return True
        node = (node.get("properties") or {}).get(key.split("[")[0]) or {}
        if "[" in key:
            node = node.get("items") or {}
    return bool(node)


@pytest.mark.parametrize("kind", BUILDER_KINDS, ids=lambda k: k.kind)
def test_crds_present_themselves_for_kubectl(kind: Kind) -> None:
    crd = render_all()[f"galleon.dev_{kind.plural}.yaml"]
    names = crd["spec"]["names"]
    assert names["categories"] == ["galleon"]
    assert crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert "status" in version["subresources"]
    columns = version["additionalPrinterColumns"]
    assert columns[-1]["name"] == "Age"
    schema = crd_schema(kind)
    for column in columns:
        assert json_path_exists(schema, column["jsonPath"]), column
    others = [k for k in KINDS if k != kind]
    taken = {n for k in others for n in (k.kind, k.plural, k.singular, *k.short_names)}
    assert not taken & {kind.kind, kind.plural, kind.singular, *kind.short_names}


def test_the_builder_kinds_are_registered() -> None:
    """The builder's kinds are among `KINDS`, so in crds/, the chart and the reference."""
    builder = {f"galleon.dev_{kind.plural}.yaml" for kind in BUILDER_KINDS}
    assert builder == {"galleon.dev_imagetemplates.yaml", "galleon.dev_imagebuilds.yaml"}
    assert builder <= set(render_all())
    assert builder <= {p.name for p in (REPO / "crds").glob("*.yaml")}
    assert builder <= {p.name for p in (REPO / "helm" / "galleon" / "files" / "crds").iterdir()}


def test_the_spec_of_a_build_is_immutable() -> None:
    rules = crd_schema(BUILDER_KINDS[1])["properties"]["spec"]["x-kubernetes-validations"]
    assert [r["rule"] for r in rules] == ["self == oldSelf"]


# -- the status --------------------------------------------------------------------


def test_status_models_read_what_the_operator_writes() -> None:
    digest = "sha256:" + "a" * 64
    status = ImageBuildStatus.model_validate(
        {
            "phase": "Succeeded",
            "startTime": "2026-03-01T12:00:00Z",
            "completionTime": "2026-03-01T12:03:00Z",
            "sourceDigest": digest,
            "outputDigest": digest,
            "stagingImage": "registry.example.com/staging/hardened-ubuntu@" + digest,
            "imageVersion": {"name": "hardened-ubuntu-2-0-3", "version": "2.0.3"},
            "steps": [
                {
                    "name": "motd",
                    "type": "File",
                    "phase": "Succeeded",
                    "durationSeconds": 0.25,
                    "layerDigest": digest,
                    "sizeBytes": 120,
                }
            ],
            "inputs": [{"name": "source", "digest": digest}],
            "someFutureField": 1,
        }
    )
    assert status.steps[0].duration_seconds == 0.25
    template = ImageTemplateStatus.model_validate(
        {"lastBuild": {"name": "hardened-ubuntu-7", "phase": "Failed"}, "builds": 3}
    )
    assert template.last_build is not None and template.last_build.phase == "Failed"


@pytest.mark.parametrize(
    "status",
    [
        pytest.param({"outputDigest": "sha512:" + "a" * 128}, id="not-sha256"),
        pytest.param({"sourceDigest": "sha256:" + "A" * 64}, id="upper-case"),
        pytest.param({"inputs": [{"name": "source", "digest": "abc"}]}, id="input-digest"),
        pytest.param({"steps": [{"name": "s", "type": "Run"}]}, id="step-type"),
        pytest.param({"steps": [{"name": "s", "type": "File", "durationSeconds": -1}]}, id="dur"),
        pytest.param({"phase": "Done"}, id="phase"),
    ],
)
def test_status_refuses_what_it_must_not_hold(status: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        ImageBuildStatus.model_validate(status)


def test_a_templates_last_build_phase_is_a_builds_phase() -> None:
    assert (
        LastBuild.model_fields["phase"].annotation
        == ImageBuildStatus.model_fields["phase"].annotation
    )
