"""Every CEL rule of every CRD holds on partial objects, as the real API server runs it.

A CEL rule sees the object as written, with only the defaults the schema itself
declares filled in: a field defaulted by the model alone (a list or map with a
`default_factory`) is simply absent, and a rule reading it without `has()` fails to
evaluate ("no such key"), refusing an object the documentation says is fine. That
is how `sharingProfile: {permissions: Private}` came to be refused.

So, for every node of every generated CRD that carries `x-kubernetes-validations`
(found by walking `crds/`, so a new rule cannot be missed), written into the first
example of its kind that holds it (and, in a list, into the first item that does:
an ImageTemplate's steps are of different types), the node is written partially:
with its required fields only, with each optional field alone, whole, and left out
(the API server then writes its declared default). Each such object
must be judged by the API server exactly as by the pydantic model (whose defaults
are the documented ones): admitted by both, or refused by both, and never with a
rule that could not be evaluated. Rules that compare with `oldSelf` are also run on
updates between the whole node and each partial one, both ways.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from pydantic import ValidationError

from galleon.api.crd import kind_named
from galleon_testkit.binaries import REPO_ROOT

pytestmark = pytest.mark.integration

VALIDATIONS = "x-kubernetes-validations"
ITEMS = "[]"
EVALUATION_FAILURES = ("evaluating rule", "no such key", "compilation", "cost budget")

SAMPLES: dict[tuple[str, str], Any] = {
    # Values, as a user would write them, of rule-bearing nodes the examples leave out.
    ("Region", "spec.nodeSelector"): {"pool": "east", "example.com/tier": "gold"},
    ("Gallery", "spec.sharingProfile"): {
        "permissions": "Namespaces",
        "namespaces": ["team-b"],
        "namespaceSelector": {
            "matchLabels": {"tier": "prod"},
            "matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}],
        },
    },
    ("ImageVersion", "spec.source.credentialsSecretRef"): {"name": "source-pull"},
    ("ImageVersion", "spec.source.tls"): {
        "insecureSkipVerify": False,
        "caSecretRef": {"name": "source-ca"},
    },
    ("ScaleSet", "spec.template.metadata.annotations"): {"example.com/owner": "team-a"},
    ("ScaleSet", "spec.upgradePolicy.rollingUpgradePolicy.upgradedInstanceHealthTimeout"): "PT10M",
    ("ImageDefinition", "spec.releasePolicy"): {
        "waves": [
            {
                "name": "canary",
                "regions": ["westcentralus"],
                "bakeTime": "PT1H",
                "minHealthyPercent": 90,
            },
            {"regions": ["southcentralus", "eastus2"]},
        ]
    },
    ("ScaleSet", "spec.upgradePolicy.maintenanceWindows"): [
        {
            "name": "nightly",
            "rrule": "FREQ=DAILY;BYHOUR=2;BYMINUTE=0",
            "duration": "PT4H",
            "timeZone": "Europe/Berlin",
        },
        {"cron": "0 12 * * 5", "duration": "PT2H", "timeZone": "UTC", "deny": True},
    ],
    ("ScaleSet", "spec.upgradePolicy.automaticOSUpgradePolicy.maxOSUpgradeDeferral"): "PT30M",
}


def examples() -> dict[str, list[dict[str, Any]]]:
    """The examples of each galleon kind: the first of examples/, with the SAMPLES
    merged in; then, for the image builder's kinds, the good objects of
    tests/data/builder_api.yaml, the richest first (between them they hold every rule
    node; tests/integration/test_builder_admission.py checks them further); and for
    the kinds only the operator writes, tests/data/operator_kinds.yaml."""
    documents: dict[str, list[dict[str, Any]]] = {}
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document["apiVersion"].startswith("galleon.dev/"):
                documents.setdefault(document["kind"], [document])
    builder = yaml.safe_load((REPO_ROOT / "tests" / "data" / "builder_api.yaml").read_text())
    for document in sorted(builder["good"], key=lambda d: -len(yaml.safe_dump(d))):
        documents.setdefault(document["kind"], []).append(document)
    operator_kinds = REPO_ROOT / "tests" / "data" / "operator_kinds.yaml"
    for document in yaml.safe_load(operator_kinds.read_text()):
        documents.setdefault(document["kind"], []).append(document)
    for (kind, dotted), value in SAMPLES.items():
        node = documents[kind][0]
        *parents, last = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = copy.deepcopy(value)
    return documents


def rule_nodes(schema: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[Any]:
    """(path, schema node, parent schema) of every node with CEL rules; `[]` marks items."""
    yield from _walk(schema, path, None)


def _walk(node: dict[str, Any], path: tuple[str, ...], parent: Any) -> Iterator[Any]:
    if node.get(VALIDATIONS):
        yield path, node, parent
    for key, child in (node.get("properties") or {}).items():
        yield from _walk(child, (*path, key), node)
    if "items" in node:
        yield from _walk(node["items"], (*path, ITEMS), node)


def crds() -> dict[str, dict[str, Any]]:
    """Kind → openAPIV3Schema of the CRDs the session's API server runs."""
    schemas = {}
    for path in sorted(Path(REPO_ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        schemas[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"][
            "openAPIV3Schema"
        ]
    return schemas


def shown(path: tuple[str, ...]) -> str:
    """`spec.registries[]` for a path; `(object)` for the root."""
    return ".".join(path).replace(".[]", "[]") or "(object)"


def locate(document: Any, path: tuple[str, ...]) -> list[int] | None:
    """For each `[]` of `path`, the index of the first item holding the rest of the
    path; None when nothing holds it."""
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
    chosen item, a list at `[]` only `value`); `value` ... (Ellipsis) removes the field
    instead."""
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


def variants(kind: str, documents: list[dict[str, Any]], schema: dict[str, Any]) -> Iterator[Any]:
    """(rule path, label, document, transition, the example it was written into) for
    every rule node of `schema`, written into the first of `documents` holding it."""
    for path, node, parent in rule_nodes(schema):
        if not path:
            # Metadata rules: nothing to leave out.
            yield path, "whole", documents[0], False, documents[0]
            continue
        holding = [(d, locate(d, path)) for d in documents]
        document, indexes = next(((d, i) for d, i in holding if i is not None), (None, None))
        if document is None or indexes is None:
            pytest.fail(
                f"{kind} {shown(path)} carries CEL rules but no example holds it: add a "
                "sample to SAMPLES",
                pytrace=False,
            )
        value = value_at(document, path, indexes)
        transition = any("oldSelf" in rule["rule"] for rule in node[VALIDATIONS])
        for label, partial in partial_values(value, node):
            yield path, label, with_value(document, path, indexes, partial), transition, document
        optional = path[-1] != ITEMS and path[-1] not in (parent.get("required") or [])
        if optional:
            left_out = with_value(document, path, indexes, ...)
            yield path, "left-out", left_out, transition, document


def model_refusal(kind: str, document: dict[str, Any]) -> str | None:
    try:
        kind_named(kind).spec.model_validate(document["spec"])
    except ValidationError as error:
        return str(error)
    return None


def api_refusal(action: Any) -> str | None:
    try:
        action()
    except ApiError as error:
        return error.status.message or f"HTTP {error.status.code} without a message"
    return None


def named(document: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    result = copy.deepcopy(document)
    result["metadata"] = {"name": name}
    if kind_named(document["kind"]).scope == "Namespaced":
        result["metadata"]["namespace"] = namespace
    return result


def test_every_cel_rule_holds_on_partial_objects(kube: Client, namespace: str) -> None:
    documents = examples()
    schemas = crds()
    assert set(schemas) == set(documents), "every kind needs an example"
    counter = itertools.count()
    checked: list[str] = []
    disagreements: list[str] = []
    transitions: list[tuple[str, tuple[str, ...], str, dict[str, Any], dict[str, Any]]] = []
    for kind, schema in schemas.items():
        for path, label, document, transition, example in variants(kind, documents[kind], schema):
            where = f"{kind} {shown(path)} {label}"
            name = f"{namespace}-p{next(counter)}"[:63].rstrip("-")
            candidate = named(document, name, namespace)
            refused = api_refusal(
                lambda c=candidate: kube.create(codecs.from_dict(c), dry_run=True)
            )
            expected = model_refusal(kind, candidate)
            checked.append(where)
            if refused and any(word in refused for word in EVALUATION_FAILURES):
                disagreements.append(f"{where}: a rule could not be evaluated: {refused}")
            elif (refused is None) != (expected is None):
                disagreements.append(
                    f"{where}: the API server {'refused' if refused else 'admitted'} it "
                    f"({refused}), the model {'refused' if expected else 'admitted'} it "
                    f"({expected})"
                )
            if transition and refused is None:
                transitions.append((kind, path, label, candidate, example))
    assert not disagreements, "\n".join(disagreements)
    assert len(checked) > 40, checked
    assert transitions, "no rule compares with oldSelf any more: drop the update half"

    created: list[tuple[str, str]] = []
    try:
        for kind, path, label, partial, example in transitions:
            whole = named(example, f"{namespace}-u{next(counter)}"[:63], namespace)
            partial = named(partial, f"{namespace}-u{next(counter)}"[:63], namespace)
            for old, new in ((whole, partial), (partial, whole)):
                stored = kube.create(codecs.from_dict(old))
                created.append((kind, old["metadata"]["name"]))
                update = copy.deepcopy(new)
                update["metadata"] = {
                    **old["metadata"],
                    "resourceVersion": stored.metadata.resourceVersion,
                }
                refused = api_refusal(
                    lambda u=update: kube.replace(codecs.from_dict(u), dry_run=True)
                )
                if refused and any(word in refused for word in EVALUATION_FAILURES):
                    disagreements.append(
                        f"{kind} {shown(path)} {label}: updating "
                        f"{'whole to partial' if old is whole else 'partial to whole'}: a rule "
                        f"could not be evaluated: {refused}"
                    )
    finally:
        for kind, name in created:
            resource = type(codecs.from_dict({**documents[kind][0], "metadata": {"name": name}}))
            scoped = kind_named(kind).scope == "Namespaced"
            with contextlib.suppress(ApiError):
                kube.delete(resource, name, namespace=namespace if scoped else None)
    assert not disagreements, "\n".join(disagreements)
