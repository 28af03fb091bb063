"""Turn a pydantic model's JSON schema into a structural OpenAPI v3 schema for a CRD.

Rules of this module (the API server's rules for structural schemas):
- no `$ref`: every reference is inlined, its description overridden by the field's;
- no `anyOf` with `null`: an optional field becomes its type with `nullable: true`;
- no `title`, no `additionalProperties: false` (unknown fields are pruned, or refused
  by `kubectl --validate=strict`), no `additionalProperties: true` (use
  `x-kubernetes-preserve-unknown-fields` instead), no `default: null`;
- `x-kubernetes-validations` found on both a field and the model it references are
  concatenated, so a field-level rule never hides the model's own rules.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

VALIDATIONS = "x-kubernetes-validations"
DROPPED_KEYS = frozenset({"title"})


def structural_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The structural schema of `model`, with every reference inlined.

    >>> from galleon.api.common import SecretReference
    >>> structural_schema(SecretReference)["properties"]["namespace"]["nullable"]
    True
    """
    raw = model.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    return _clean(raw, definitions)


def _clean(node: Any, definitions: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_clean(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if "$ref" in node:
        target = definitions[node.pop("$ref").rsplit("/", 1)[-1]]
        node = _merge(_clean(target, definitions), node)
    if "allOf" in node and len(node["allOf"]) == 1:
        node = _merge(_clean(node.pop("allOf")[0], definitions), node)
    if "anyOf" in node:
        variants = [v for v in node.pop("anyOf") if v.get("type") != "null"]
        if len(variants) != 1:
            raise ValueError(f"cannot express a union of {len(variants)} types structurally")
        node = _merge(_clean(variants[0], definitions), node)
        node["nullable"] = True
    for key in DROPPED_KEYS & node.keys():
        del node[key]
    if node.get("additionalProperties") in (False, True):
        del node["additionalProperties"]
    if "default" in node and node["default"] is None:
        del node["default"]
    for key in ("properties",):
        if key in node:
            node[key] = {name: _clean(value, definitions) for name, value in node[key].items()}
    for key in ("items", "additionalProperties"):
        if key in node:
            node[key] = _clean(node[key], definitions)
    return node


def _merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """`base` with `overlay`'s keys on top; CEL rules of both are kept."""
    merged = {**base, **overlay}
    rules = [*base.get(VALIDATIONS, []), *overlay.get(VALIDATIONS, [])]
    if rules:
        merged[VALIDATIONS] = rules
    return merged
