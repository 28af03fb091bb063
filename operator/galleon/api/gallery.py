"""`Gallery`: a namespaced collection of image definitions, with a home region and
the repository prefix under which its images are stored in every region."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from galleon.api.common import (
    DNS_LABEL_PATTERN,
    LABEL_NAME_MAX,
    Condition,
    SpecModel,
    StatusModel,
    cel,
    conditions_field,
    immutable,
    object_default,
    observed_generation_field,
    validations,
)

REPOSITORY_PREFIX_PATTERN = r"^[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$"
"""OCI repository path components (distribution's grammar, lower case)."""


class SharingProfile(SpecModel):
    """Which namespaces may deploy this gallery's images."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.permissions != 'Private' || size(self.namespaces) == 0",
                'namespaces must be empty when permissions is "Private"',
                field_path=".namespaces",
            )
        )
    }

    permissions: Literal["Private", "Namespaces"] = Field(
        default="Private",
        description="Private: only the gallery's own namespace; Namespaces: also those listed.",
    )
    namespaces: list[Annotated[str, Field(max_length=LABEL_NAME_MAX)]] = Field(
        default_factory=list,
        max_length=256,
        description="Namespaces allowed to use the gallery's images (with permissions Namespaces).",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


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
        max_length=128,
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
