"""`ImageDefinition`: one image (publisher/offer/sku) of a gallery, whose versions
scale sets follow. Its status says which version is "latest", overall and per region."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, model_validator

from galleon.api.common import (
    DNS_LABEL_PATTERN,
    LABEL_NAME_MAX,
    MAX_REGIONS,
    MESSAGE_MAX,
    NAME_MAX,
    VERSION_MAX,
    Condition,
    SpecModel,
    StatusModel,
    Timestamp,
    cel,
    conditions_field,
    immutable,
    list_map,
    observed_generation_field,
    timestamp_field,
    validations,
)
from galleon.api.scaleset import duration_field

IDENTIFIER_PART_PATTERN = r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$"


MAX_USED_BY = 100
"""Namespaces listed in status.usedByNamespaces (the count has them all)."""

MAX_WAVES = 16
MAX_QUARANTINED = 32
"""Quarantined versions the status lists (the oldest beyond it are forgotten)."""
BAKE_TIME_MAX_SECONDS = 30 * 86400

RegionName = Annotated[str, Field(max_length=LABEL_NAME_MAX, pattern=DNS_LABEL_PATTERN)]


class Wave(SpecModel):
    """One step of a release: regions that receive a new version together."""

    name: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description='Optional name shown in status and messages, e.g. "canary".',
    )
    regions: list[RegionName] = Field(
        min_length=1,
        max_length=MAX_REGIONS,
        description="Regions of this wave. A region belongs to at most one wave; regions "
        "that no wave lists are released with the last wave.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    bake_time: str = duration_field(
        "PT0S",
        "How long this wave's ScaleSets following latest must stay upgraded and healthy "
        "before the next wave opens (ISO 8601, e.g. PT1H).",
        maximum=BAKE_TIME_MAX_SECONDS,
        maximum_message="must be at most 30 days",
    )
    min_healthy_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Share of each ScaleSet's instances that must be healthy on the new "
        "version for the wave to count as done and to keep baking (unset: the upgrade "
        "completed, whatever the share).",
    )


class ReleasePolicy(SpecModel):
    """How a new version becomes "latest" across regions: in waves, each opening only
    after the previous one completed and baked."""

    waves: list[Wave] = Field(
        min_length=1,
        max_length=MAX_WAVES,
        description="Ordered waves. Wave 1 follows a new version as soon as it is "
        "replicated; wave N+1 once every ScaleSet following latest in waves 1..N "
        "completed its upgrade to it and wave N baked.",
        json_schema_extra=validations(
            cel(
                "self.all(w, self.filter(o, o.regions.exists(r, r in w.regions)).size() == 1)",
                "a region belongs to at most one wave",
            ),
        ),
    )

    @model_validator(mode="after")
    def _regions_once(self) -> ReleasePolicy:
        seen: set[str] = set()
        for wave in self.waves:
            for region in wave.regions:
                if region in seen:
                    raise ValueError(f"region {region} is in more than one wave")
                seen.add(region)
        return self


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
    release_policy: ReleasePolicy | None = Field(
        default=None,
        description="Release waves with bake time (unset: a version is latest in each "
        "region as soon as it is replicated there).",
    )


class RegionalLatest(StatusModel):
    """The latest version that a region can deploy."""

    region: str = Field(max_length=LABEL_NAME_MAX, description="Region name.")
    version: str | None = Field(
        default=None,
        max_length=VERSION_MAX,
        description="Highest version completely replicated to the region, not excluded "
        "from latest there, not quarantined and released to the region's wave.",
    )
    wave: int | None = Field(default=None, ge=1, description="The region's wave (1-based).")
    pending_version: str | None = Field(
        default=None,
        max_length=VERSION_MAX,
        description="A newer version waiting for the region's wave to open.",
    )
    opens_at: datetime | None = Field(
        default=None, description="When the wave opens for pendingVersion, if known."
    )
    message: str | None = Field(
        default=None, max_length=MESSAGE_MAX, description="Why pendingVersion waits."
    )


class WaveStatus(StatusModel):
    """Where the version being released stands in one wave."""

    wave: int = Field(ge=1, description="1-based wave number.")
    name: str | None = Field(default=None, max_length=LABEL_NAME_MAX, description="Its name.")
    state: Literal["Waiting", "Upgrading", "Baking", "Done"] = Field(
        description="Waiting: not open yet; Upgrading: open, ScaleSets upgrading; Baking: "
        "upgraded, bake time running; Done: baked."
    )
    released_at: datetime | None = Field(default=None, description="When the wave opened.")
    upgraded_at: datetime | None = Field(
        default=None,
        description="Since when every ScaleSet following latest in the wave has been upgraded "
        "and healthy (the bake time counts from here).",
    )
    opens_at: datetime | None = Field(
        default=None, description="When the wave opens (Waiting only), if known."
    )
    message: str | None = Field(default=None, max_length=MESSAGE_MAX, description="Details.")


class ReleaseStatus(StatusModel):
    """The newest version's progress through the release waves."""

    version: str | None = Field(
        default=None, max_length=VERSION_MAX, description="The version being released."
    )
    waves: list[WaveStatus] = Field(
        default_factory=list,
        max_length=MAX_WAVES,
        description="One entry per wave, in order.",
        json_schema_extra=list_map("wave"),
    )


class QuarantinedVersion(StatusModel):
    """A version whose upgrade faulted somewhere: not latest anywhere, no upgrade to it
    starts, running ones hold after their batch."""

    version: str = Field(max_length=VERSION_MAX, description="The version.")
    since: datetime | None = Field(default=None, description="When the fault happened.")
    scale_set: str = Field(
        max_length=2 * NAME_MAX + 1, description="namespace/name of the ScaleSet that faulted."
    )
    message: str = Field(default="", max_length=MESSAGE_MAX, description="The fault.")


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
    release: ReleaseStatus | None = Field(
        default=None, description="The newest version's progress through the release waves."
    )
    quarantined_versions: list[QuarantinedVersion] = Field(
        default_factory=list,
        max_length=MAX_QUARANTINED,
        description="Versions quarantined after a faulted upgrade (release one with the "
        "galleon.dev/release-quarantine annotation on its ImageVersion).",
        json_schema_extra=list_map("version"),
    )
