"""Building blocks shared by every galleon resource model.

Rules of this module:
- Python attributes are snake_case; the wire (and CRD) names are camelCase aliases.
- Every field carries a one-line `description`: it becomes the CRD's description,
  which is what `kubectl explain` prints.
- Every string, list and map has a bound (CEL cost estimates need them).
- Rules a schema cannot express are written twice on purpose: as a CEL rule in the
  CRD (`cel(...)`, enforced at admission by the API server) and as a pydantic
  validator (enforced when the operator or CLI parses an object), with the same
  message, so a user sees the same words wherever the input is refused.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Bounds reused across kinds.
NAME_MAX = 253
"""Longest Kubernetes object name (DNS subdomain)."""
LABEL_NAME_MAX = 63
"""Longest DNS label: region names, data disk names, registry replica names."""
MESSAGE_MAX = 32768
"""Longest condition message the Kubernetes condition schema allows."""
REASON_MAX = 1024
IMAGE_REFERENCE_MAX = 1024
VERSION_MAX = 64
MAX_REGIONS = 64
"""Most target regions an image version may name."""
MAX_REPLICAS_PER_REGION = 100
"""The cloud's limit of replicas per version per region."""

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
VERSION_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"
"""MAJOR.MINOR.PATCH, each a non-negative integer without leading zeros (RE2 compatible)."""
ISO8601_DURATION_PATTERN = r"^P([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9]+(\.[0-9]+)?S)?)?$"
"""Days, hours, minutes and seconds of ISO 8601 (RE2 compatible, so CEL can use it)."""

LabelValue = Annotated[str, Field(max_length=LABEL_NAME_MAX)]
"""A label value (or a node selector value)."""
AnnotationValue = Annotated[str, Field(max_length=8192)]
"""An annotation value (bounded for CEL cost estimates)."""


def cel(
    rule: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, str]:
    """One `x-kubernetes-validations` entry.

    >>> cel("self == oldSelf", "version is immutable")
    {'rule': 'self == oldSelf', 'message': 'version is immutable'}
    """
    entry = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    if reason:
        entry["reason"] = reason
    return entry


def validations(*rules: dict[str, str]) -> dict[str, Any]:
    """`json_schema_extra` carrying CEL rules, for a Field or a model_config."""
    return {"x-kubernetes-validations": list(rules)}


def immutable(field: str) -> dict[str, Any]:
    """`json_schema_extra` for a field that may be set once and never changed."""
    return validations(cel("self == oldSelf", f"{field} is immutable: it must not change once set"))


def list_map(*keys: str) -> dict[str, Any]:
    """`json_schema_extra` for a list keyed by `keys` (server-side apply merges by key,
    and the API server refuses two items with the same key)."""
    return {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": list(keys)}


PRESERVE_UNKNOWN: dict[str, Any] = {"x-kubernetes-preserve-unknown-fields": True}


def object_default(model: type[BaseModel]) -> dict[str, Any]:
    """`json_schema_extra` making the API server fill in an omitted object with the
    model's defaults (spelled out: the server does not default inside a default)."""
    return {"default": model().model_dump(by_alias=True, mode="json", exclude_none=True)}


class SpecModel(BaseModel):
    """Base of every spec model: camelCase on the wire, unknown fields refused, no type
    coercion ("yes" is not a boolean, "20" is not an integer), as in the API server."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        strict=True,
    )


class StatusModel(BaseModel):
    """Base of every status model: camelCase on the wire, unknown fields ignored
    (an older operator reading a newer status must not fail)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(StatusModel):
    """One observation of the resource's state, as in the Kubernetes API conventions."""

    type: str = Field(
        max_length=316, description="Kind of condition, e.g. Ready, Reconciling, Stalled."
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )
    last_transition_time: datetime | None = Field(
        default=None, description="When status last changed from one value to another."
    )
    reason: str = Field(
        default="", max_length=REASON_MAX, description="CamelCase reason for the last transition."
    )
    message: str = Field(
        default="", max_length=MESSAGE_MAX, description="Human-readable details, with numbers."
    )


def conditions_field() -> Any:
    """The `conditions` field every status carries, keyed by type."""
    return Field(
        default_factory=list,
        max_length=32,
        description="Current state of the resource; Ready summarises it.",
        json_schema_extra=list_map("type"),
    )


def observed_generation_field() -> Any:
    """The `observedGeneration` field every status carries."""
    return Field(default=None, ge=0, description="metadata.generation the operator last acted on.")


class SecretReference(SpecModel):
    """A Secret of any namespace holding registry credentials (keys `username` and
    `password`, or a `.dockerconfigjson` of type kubernetes.io/dockerconfigjson).

    Only cluster-scoped kinds (a Region's registries) use it: only a cluster
    administrator writes them. Namespaced kinds use `LocalSecretReference`.
    """

    name: str = Field(max_length=NAME_MAX, description="Name of the Secret.")
    namespace: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        description="Namespace of the Secret (default: the operator's namespace).",
    )


def local_secret_message(kind: str, path: str) -> str:
    """The refusal of a Secret reference of a namespaced kind that names a namespace.

    >>> message = local_secret_message("ImageVersion", "source.credentialsSecretRef")
    >>> message.startswith("an ImageVersion may only reference Secrets of its own namespace; ")
    True
    >>> message.endswith("; remove source.credentialsSecretRef.namespace")
    True
    """
    article = "an" if kind[:1].upper() in "AEIOU" else "a"
    return (
        f"{article} {kind} may only reference Secrets of its own namespace; remove {path}.namespace"
    )


class LocalSecretReference(SpecModel):
    """A Secret of the referring object's own namespace.

    `namespace` stays in the schema on purpose: were it dropped, the API server would
    silently prune it from an old manifest and read the Secret of the same name in
    the object's namespace instead. Kept, it is refused at admission (the field's CEL
    rule, `local_secret_field`) and by the model's owner (`refuse_secret_namespace`).
    """

    name: str = Field(max_length=NAME_MAX, description="Name of the Secret.")
    namespace: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        description="Not allowed: the Secret is always read from the object's own namespace "
        "(listed so that a manifest setting it is refused rather than silently pruned).",
    )


def local_secret_field(kind: str, path: str, description: str) -> Any:
    """An optional `LocalSecretReference` field whose CEL rule refuses a namespace.

    The owning model mirrors the rule with `refuse_secret_namespace` in a validator.
    """
    return Field(
        default=None,
        description=description,
        json_schema_extra=validations(
            cel("!has(self.namespace)", local_secret_message(kind, path))
        ),
    )


def refuse_secret_namespace(
    ref: LocalSecretReference | None, kind: str, path: str
) -> LocalSecretReference | None:
    """The pydantic half of `local_secret_field`'s rule: `ref`, unless it names a namespace.

    >>> refuse_secret_namespace(LocalSecretReference(name="creds"), "ImageVersion", "x").name
    'creds'
    >>> refuse_secret_namespace(
    ...     LocalSecretReference(name="creds", namespace="galleon-system"), "ImageVersion", "x"
    ... )
    Traceback (most recent call last):
    ...
    ValueError: an ImageVersion may only reference Secrets of its own namespace; remove x.namespace
    """
    # An empty string is refused too: `has()` is true for it in CEL.
    if ref is not None and ref.namespace is not None:
        raise ValueError(local_secret_message(kind, path))
    return ref
