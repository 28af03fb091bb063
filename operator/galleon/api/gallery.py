"""`Gallery`: a namespaced collection of image definitions, with a home region and
the repository prefix under which its images are stored in every region."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from galleon.api.common import (
    DNS_LABEL_PATTERN,
    LABEL_NAME_MAX,
    QUALIFIED_NAME_PATTERN,
    REPOSITORY_PREFIX_MAX,
    Condition,
    LabelValue,
    SpecModel,
    StatusModel,
    cel,
    check_label_keys,
    conditions_field,
    immutable,
    label_map_field,
    object_default,
    observed_generation_field,
    validations,
)

REPOSITORY_PREFIX_PATTERN = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
"""OCI repository path components (distribution's grammar, lower case)."""


VALUES_MESSAGE = "values must be non-empty for In and NotIn and empty for Exists and DoesNotExist"


class LabelSelectorRequirement(SpecModel):
    """One requirement of a label selector (Kubernetes' LabelSelectorRequirement)."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "(self.operator in ['In', 'NotIn']) == (has(self.values) && size(self.values) > 0)",
                VALUES_MESSAGE,
                field_path=".values",
            )
        )
    }

    key: str = Field(max_length=317, pattern=QUALIFIED_NAME_PATTERN, description="The label key.")
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"] = Field(
        description="In, NotIn, Exists or DoesNotExist."
    )
    values: list[LabelValue] = Field(
        default_factory=list,
        max_length=64,
        description="Values (In, NotIn); empty for Exists and DoesNotExist.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    @model_validator(mode="after")
    def _values_match_operator(self) -> LabelSelectorRequirement:
        if (self.operator in ("In", "NotIn")) != bool(self.values):
            raise ValueError(VALUES_MESSAGE)
        return self


class NamespaceSelector(SpecModel):
    """Namespaces by label (Kubernetes' LabelSelector: every term must hold)."""

    match_labels: dict[str, LabelValue] = label_map_field(
        "Labels a namespace must carry, with these values.", max_items=32
    )
    match_expressions: list[LabelSelectorRequirement] = Field(
        default_factory=list, max_length=16, description="Requirements a namespace must meet."
    )

    @field_validator("match_labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        check_label_keys(labels)
        return labels


class SharingProfile(SpecModel):
    """Which namespaces may deploy this gallery's images (the cloud's gallery sharing:
    private, shared with chosen subscriptions, or a community gallery)."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            # Why the has() guards: a partial object ({permissions: Private}) is validated
            # as written, before the defaults of its own fields can be relied on.
            cel(
                "(has(self.permissions) ? self.permissions : 'Private') == 'Namespaces' || "
                "((!has(self.namespaces) || size(self.namespaces) == 0) "
                "&& !has(self.namespaceSelector))",
                'namespaces and namespaceSelector are only used with permissions "Namespaces"',
                field_path=".namespaces",
            ),
            cel(
                "(has(self.permissions) ? self.permissions : 'Private') != 'Namespaces' || "
                "(has(self.namespaces) && size(self.namespaces) > 0) || "
                "has(self.namespaceSelector)",
                'permissions "Namespaces" needs namespaces, a namespaceSelector or both',
                field_path=".namespaces",
            ),
        )
    }

    permissions: Literal["Private", "Namespaces", "Cluster"] = Field(
        default="Private",
        description="Private: only the gallery's own namespace; Namespaces: also those listed "
        "or selected; Cluster: every namespace (a community gallery).",
    )
    namespaces: list[
        Annotated[str, Field(max_length=LABEL_NAME_MAX, pattern=DNS_LABEL_PATTERN)]
    ] = Field(
        default_factory=list,
        max_length=256,
        description="Namespaces allowed to use the gallery's images (with permissions Namespaces).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    namespace_selector: NamespaceSelector | None = Field(
        default=None,
        description="Namespaces allowed by label (with permissions Namespaces); a namespace "
        "listed or selected may use the images.",
    )

    @model_validator(mode="after")
    def _used_only_with_namespaces(self) -> SharingProfile:
        chosen = bool(self.namespaces) or self.namespace_selector is not None
        if self.permissions != "Namespaces" and chosen:
            raise ValueError(
                'namespaces and namespaceSelector are only used with permissions "Namespaces"'
            )
        if self.permissions == "Namespaces" and not chosen:
            raise ValueError(
                'permissions "Namespaces" needs namespaces, a namespaceSelector or both'
            )
        return self


class GallerySpec(SpecModel):
    """Desired state of a Gallery."""

    description: str | None = Field(default=None, max_length=2048, description="Free text.")
    location: str = Field(
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="Home (source) region of the gallery; every image version must target it.",
        json_schema_extra=immutable("location"),
    )
    repository_prefix: str = Field(
        default="galleon",
        max_length=REPOSITORY_PREFIX_MAX,
        pattern=REPOSITORY_PREFIX_PATTERN,
        description="Repository path prefix in every region's registries: versions are stored "
        "at <prefix>/<namespace>/<gallery>/<definition>:<version>.",
        json_schema_extra=immutable("repositoryPrefix"),
    )
    sharing_profile: SharingProfile = Field(
        default_factory=SharingProfile,
        description="Which namespaces may use this gallery's images (default: none but its own).",
        json_schema_extra=object_default(SharingProfile),
    )


class GalleryStatus(StatusModel):
    """Observed state of a Gallery."""

    observed_generation: int | None = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    image_definition_count: int | None = Field(
        default=None, ge=0, description="Image definitions in this gallery."
    )
    image_version_count: int | None = Field(
        default=None, ge=0, description="Image versions under this gallery's definitions."
    )
