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

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Bounds reused across kinds. Each is a limit of Kubernetes, of the OCI distribution
# spec or of the cloud galleon mirrors, or follows from one (said where it does).
NAME_MAX = 253
"""Longest Kubernetes object name (DNS subdomain)."""
LABEL_NAME_MAX = 63
"""Longest DNS label and label value: region names, registry replica names, namespaces."""
MESSAGE_MAX = 32768
"""Longest condition message the Kubernetes condition schema allows."""
REASON_MAX = 1024
IMAGE_REFERENCE_MAX = 1024
REVISION_HASH_LENGTH = 10
"""Hex digits of the model hash in an instance revision `<version>-<hash>`
(`galleon.core.instances.HASH_LENGTH`)."""
VERSION_MAX = LABEL_NAME_MAX - 1 - REVISION_HASH_LENGTH
"""Longest version (52): an instance's revision label `<version>-<10 hex>` must fit a
63-character label value (and the version label the version itself)."""
MAX_REGIONS = 64
"""Most target regions an image version may name."""
MAX_REPLICAS_PER_REGION = 100
"""The cloud's limit of replicas per version per region."""
REPOSITORY_PREFIX_MAX = 128
"""Longest Gallery repositoryPrefix."""
ANNOTATIONS_BYTES_MAX = 256 * 1024
"""Most bytes of an object's annotations, keys and values together (Kubernetes'
TotalAnnotationSizeLimitB)."""
DURATION_MAX_SECONDS = 2**31 - 1
"""Longest duration (about 68 years): what Kubernetes' own durations in seconds hold
(int32, e.g. a Deployment's minReadySeconds and progressDeadlineSeconds); a moment
that far from now is still a time Python and the API server can write."""

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
"""A Kubernetes object name (at most NAME_MAX characters)."""
LABEL_VALUE_PATTERN = r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$"
"""A label value (at most LABEL_NAME_MAX characters), Kubernetes' grammar."""
QUALIFIED_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
"""A label or annotation key: an optional DNS subdomain prefix (at most 253 characters)
and `/`, then a name of at most 63 characters (Kubernetes' grammar)."""
VERSION_PATTERN = r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$"
"""MAJOR.MINOR.PATCH, each a non-negative integer without leading zeros (RE2 compatible)."""
ISO8601_DURATION_PATTERN = (
    r"^P([0-9]{1,10}D)?(T([0-9]{1,10}H)?([0-9]{1,10}M)?([0-9]{1,10}(\.[0-9]{1,9})?S)?)?$"
)
"""Days, hours, minutes and seconds of ISO 8601 (RE2 compatible, so CEL can use it); at
most 10 digits a part, so CEL can add the parts up without overflowing."""
DURATION_MESSAGE = 'must be an ISO 8601 duration such as "PT0S", "PT30S" or "PT5M"'
DURATION_MAX_MESSAGE = (
    f"must be at most {DURATION_MAX_SECONDS} seconds (P24855DT3H14M7S, about 68 years)"
)
TIMESTAMP_MESSAGE = (
    'must be an RFC 3339 time with a zone ("Z" or an offset), e.g. "2027-01-01T00:00:00Z"'
)
LABEL_KEY_MESSAGE = (
    "keys must be qualified names: an optional DNS subdomain prefix of at most 253 "
    "characters and '/', then at most 63 letters, digits, '-', '_' or '.', beginning "
    "and ending with a letter or digit"
)
ANNOTATIONS_SIZE_MESSAGE = (
    f"annotations must total at most {ANNOTATIONS_BYTES_MAX} bytes, keys and values together"
)

LabelValue = Annotated[str, Field(max_length=LABEL_NAME_MAX, pattern=LABEL_VALUE_PATTERN)]
"""A label value (or a node selector value)."""
AnnotationValue = Annotated[str, Field(max_length=8192)]
"""An annotation value (bounded for CEL cost estimates; `annotation_map` bounds the sum)."""


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


def is_qualified_name(key: str) -> bool:
    """Whether `key` may be a label or annotation key (`QUALIFIED_NAME_PATTERN`).

    >>> [is_qualified_name(k) for k in ("app", "galleon.dev/version", "a/b/c", "-x", "x" * 64)]
    [True, True, False, False, False]
    """
    prefix, slash, _ = key.rpartition("/")
    return bool(re.fullmatch(QUALIFIED_NAME_PATTERN, key)) and (
        not slash or len(prefix) <= NAME_MAX
    )


def _key_rule(key: str) -> str:
    """CEL: `key` (an expression) is a qualified name."""
    return (
        f"{key}.matches(r'{QUALIFIED_NAME_PATTERN}') "
        f"&& (!{key}.contains('/') || {key}.indexOf('/') <= {NAME_MAX})"
    )


def label_map_field(description: str, *, max_items: int) -> Any:
    """A map of labels (values `LabelValue`): keys are qualified names, refused at
    admission by CEL and by the owner's `check_label_keys` validator."""
    return Field(
        default_factory=dict,
        max_length=max_items,
        description=description,
        json_schema_extra=validations(cel(f"self.all(k, {_key_rule('k')})", LABEL_KEY_MESSAGE)),
    )


def annotation_map_field(description: str, *, max_items: int) -> Any:
    """A map of annotations: keys are qualified names (any case, as the API server
    compares them lower-cased) and all of it fits Kubernetes' annotation size limit;
    the owner mirrors both with `check_annotations`."""
    return Field(
        default_factory=dict,
        max_length=max_items,
        description=description,
        json_schema_extra=validations(
            cel(f"self.all(k, {_key_rule('k.lowerAscii()')})", LABEL_KEY_MESSAGE),
            cel(
                f"self.map(k, size(bytes(k)) + size(bytes(self[k]))).sum() "
                f"<= {ANNOTATIONS_BYTES_MAX}",
                ANNOTATIONS_SIZE_MESSAGE,
            ),
        ),
    )


def check_label_keys(labels: Mapping[str, str]) -> Mapping[str, str]:
    """The pydantic half of `label_map_field`'s rule: `labels`, unless a key is not a
    qualified name.

    >>> check_label_keys({"app": "web"})
    {'app': 'web'}
    >>> check_label_keys({"bad key": "web"})
    Traceback (most recent call last):
    ...
    ValueError: keys must be qualified names: ...; got 'bad key'
    """
    for key in labels:
        if not is_qualified_name(key):
            raise ValueError(f"{LABEL_KEY_MESSAGE}; got {key!r}")
    return labels


def check_annotations(annotations: Mapping[str, str]) -> Mapping[str, str]:
    """The pydantic half of `annotation_map_field`'s rules."""
    for key in annotations:
        if not is_qualified_name(key.lower()):
            raise ValueError(f"{LABEL_KEY_MESSAGE}; got {key!r}")
    total = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if total > ANNOTATIONS_BYTES_MAX:
        raise ValueError(f"{ANNOTATIONS_SIZE_MESSAGE}; got {total}")
    return annotations


def _has_zone(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(TIMESTAMP_MESSAGE)
    return moment


Timestamp = Annotated[datetime, AfterValidator(_has_zone)]
"""A time a user writes: RFC 3339, with its zone (a zone-less time is refused, never
guessed)."""


def timestamp_field(description: str) -> Any:
    """An optional `Timestamp` field. Its schema's `format: date-time` is enough at
    admission: the API server refuses a date-time without a zone (tested in
    tests/integration/test_admission_fuzz.py); the model refuses it too."""
    return Field(default=None, strict=False, description=description)


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

    name: str = Field(
        max_length=NAME_MAX, pattern=DNS_SUBDOMAIN_PATTERN, description="Name of the Secret."
    )
    namespace: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
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

    name: str = Field(
        max_length=NAME_MAX, pattern=DNS_SUBDOMAIN_PATTERN, description="Name of the Secret."
    )
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
