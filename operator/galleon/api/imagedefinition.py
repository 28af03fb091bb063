"""`ImageDefinition`: one image (publisher/offer/sku) of a gallery, whose versions
scale sets follow. Its status says which version is "latest", overall and per region."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from galleon.api.common import (
    LABEL_NAME_MAX,
    MAX_REGIONS,
    NAME_MAX,
    VERSION_MAX,
    Condition,
    SpecModel,
    StatusModel,
    Timestamp,
    conditions_field,
    immutable,
    list_map,
    observed_generation_field,
    timestamp_field,
)

IDENTIFIER_PART_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"


MAX_USED_BY = 100
"""Namespaces listed in status.usedByNamespaces (the count has them all)."""


class ImageIdentifier(SpecModel):
    """The publisher/offer/sku triple that names the image, unique in its gallery."""

    publisher: str = Field(
        max_length=128, pattern=IDENTIFIER_PART_PATTERN, description='Publisher, e.g. "Contoso".'
    )
    offer: str = Field(
        max_length=64, pattern=IDENTIFIER_PART_PATTERN, description='Offer, e.g. "UbuntuServer".'
    )
    sku: str = Field(
        max_length=64, pattern=IDENTIFIER_PART_PATTERN, description='SKU, e.g. "22_04-lts".'
    )


class ImageDefinitionSpec(SpecModel):
    """Desired state of an ImageDefinition."""

    gallery_name: str = Field(
        max_length=NAME_MAX,
        description="Gallery (in the same namespace) this definition belongs to.",
        json_schema_extra=immutable("galleryName"),
    )
    identifier: ImageIdentifier = Field(
        description="Publisher/offer/sku of the image.",
        json_schema_extra=immutable("identifier"),
    )
    os_type: Literal["Linux", "Windows"] = Field(
        default="Linux",
        description="Operating system of the image.",
        json_schema_extra=immutable("osType"),
    )
    os_state: Literal["Generalized", "Specialized"] = Field(
        default="Generalized",
        description="Generalized images get a fresh identity per instance; Specialized keep it.",
        json_schema_extra=immutable("osState"),
    )
    description: str | None = Field(default=None, max_length=2048, description="Free text.")
    eula: str | None = Field(default=None, max_length=2048, description="End-user licence terms.")
    end_of_life_date: Timestamp | None = timestamp_field(
        "When the image stops being supported (informational: still usable; RFC 3339 with a "
        "zone, e.g. 2027-01-01T00:00:00Z)."
    )


class RegionalLatest(StatusModel):
    """The latest version that a region can deploy."""

    region: str = Field(max_length=LABEL_NAME_MAX, description="Region name.")
    version: str = Field(
        max_length=VERSION_MAX,
        description="Highest version completely replicated to the region and not excluded "
        "from latest there.",
    )


class ImageDefinitionStatus(StatusModel):
    """Observed state of an ImageDefinition."""

    observed_generation: int | None = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    latest_version: str | None = Field(
        default=None,
        max_length=VERSION_MAX,
        description="Highest version not excluded from latest, whatever its replication.",
    )
    latest_version_by_region: list[RegionalLatest] = Field(
        default_factory=list,
        max_length=MAX_REGIONS,
        description="Per region, the latest version replicated there: what scale sets follow.",
        json_schema_extra=list_map("region"),
    )
    version_count: int | None = Field(default=None, ge=0, description="Versions of this image.")
    used_by_namespaces: list[Annotated[str, Field(max_length=LABEL_NAME_MAX)]] = Field(
        default_factory=list,
        max_length=MAX_USED_BY,
        description=f"Namespaces whose ScaleSets follow this image (sorted; at most {MAX_USED_BY} "
        "listed, usedByNamespaceCount has them all).",
    )
    used_by_namespace_count: int | None = Field(
        default=None, ge=0, description="Namespaces whose ScaleSets follow this image."
    )
