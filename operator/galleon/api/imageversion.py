"""`ImageVersion`: one immutable `MAJOR.MINOR.PATCH` version of an image definition,
published from a source OCI image and replicated to its target regions.

After creation only the target regions, replica counts, `excludeFromLatest` and the
end-of-life date may change; the version, its definition and its source may not.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import Field, field_validator

from galleon.api import registry_hosts
from galleon.api.common import (
    DNS_LABEL_PATTERN,
    IMAGE_REFERENCE_MAX,
    LABEL_NAME_MAX,
    MAX_REGIONS,
    MAX_REPLICAS_PER_REGION,
    MESSAGE_MAX,
    NAME_MAX,
    REPOSITORY_PREFIX_MAX,
    VERSION_MAX,
    VERSION_PATTERN,
    Condition,
    LocalSecretReference,
    SpecModel,
    StatusModel,
    Timestamp,
    cel,
    conditions_field,
    immutable,
    list_map,
    local_secret_field,
    object_default,
    observed_generation_field,
    refuse_secret_namespace,
    timestamp_field,
    validations,
)

VERSION_MESSAGE = 'version must be MAJOR.MINOR.PATCH with non-negative integers, e.g. "1.0.2"'
REPOSITORY_MAX = REPOSITORY_PREFIX_MAX + 1 + LABEL_NAME_MAX + 1 + NAME_MAX + 1 + NAME_MAX
"""Longest repository path galleon can build, <prefix>/<namespace>/<gallery>/<definition>
(700); registries refuse names over 255 characters, and say so in the replica's state."""
DIGEST_MAX = 128
"""Longest digest written to status ("sha256:" and 64 hex digits is 71)."""
DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}$"
"""The only digests galleon verifies, and so the only ones status may hold: a
registry's answer never becomes a path or a status field unchecked."""

RegionalReplicationState = Literal[
    "Unknown", "Queued", "Replicating", "Completed", "Failed", "Removing"
]
AggregatedReplicationState = Literal["Unknown", "InProgress", "Completed", "Failed"]
ReplicaState = Literal["Queued", "Replicating", "Completed", "Failed", "Removing"]


class TargetRegion(SpecModel):
    """A region the version is replicated to."""

    name: str = Field(
        max_length=LABEL_NAME_MAX, pattern=DNS_LABEL_PATTERN, description="Region name."
    )
    regional_replica_count: int | None = Field(
        default=None,
        ge=1,
        le=MAX_REPLICAS_PER_REGION,
        description="Replicas kept in this region, one per registry replica location "
        "(default: publishingProfile.replicaCount).",
    )
    exclude_from_latest: bool = Field(
        default=False, description="Never treat this version as latest in this region."
    )


class PublishingProfile(SpecModel):
    """Where the version is replicated, and how it counts for "latest"."""

    target_regions: list[TargetRegion] = Field(
        min_length=1,
        max_length=MAX_REGIONS,
        description="Regions to replicate to; must include the gallery's location.",
        json_schema_extra=list_map("name")
        | validations(
            cel(
                "self.all(r, self.exists_one(s, s.name == r.name))",
                "targetRegions must not name a region twice",
            )
        ),
    )
    replica_count: int = Field(
        default=1,
        ge=1,
        le=MAX_REPLICAS_PER_REGION,
        description="Replicas per region when a target region gives no regionalReplicaCount.",
    )
    exclude_from_latest: bool = Field(
        default=False, description="Never treat this version as latest, in any region."
    )
    end_of_life_date: Timestamp | None = timestamp_field(
        "When this version stops being supported (RFC 3339 with a zone, e.g. "
        "2027-01-01T00:00:00Z); safetyProfile.blockDeletionBeforeEndOfLife holds deletion "
        "until then."
    )
    replication_mode: Literal["Full", "Shallow"] = Field(
        default="Full",
        description="Full copies every blob; Shallow is accepted for compatibility and "
        "replicates fully.",
    )

    @field_validator("target_regions")
    @classmethod
    def _distinct_regions(cls, regions: list[TargetRegion]) -> list[TargetRegion]:
        names = [region.name for region in regions]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"targetRegions must not name a region twice: {duplicates}")
        return regions

    def replicas_for(self, region: str) -> int:
        """Replicas desired in `region` (0 when it is not a target).

        >>> profile = PublishingProfile(target_regions=[{"name": "eastus2"}], replica_count=2)
        >>> profile.replicas_for("eastus2"), profile.replicas_for("westus")
        (2, 0)
        """
        for target in self.target_regions:
            if target.name == region:
                return target.regional_replica_count or self.replica_count
        return 0


class SafetyProfile(SpecModel):
    """Guards against losing replicas by mistake."""

    allow_deletion_of_replicated_locations: bool = Field(
        default=True,
        description="Whether a target region may be removed (its replicas are then deleted).",
    )
    block_deletion_before_end_of_life: bool = Field(
        default=False, description="Refuse to delete the version before its end-of-life date."
    )


KIND = "ImageVersion"
CREDENTIALS_PATH = "source.credentialsSecretRef"
CA_PATH = "source.tls.caSecretRef"


class SourceTLS(SpecModel):
    """How to reach the source registry over TLS (its CA Secret in the version's namespace).

    A Region's `RegistryTLS` may name a Secret of any namespace (only cluster
    administrators write Regions); a source's may not.
    """

    insecure_skip_verify: bool = Field(
        default=False, description="Accept any server certificate (testing only)."
    )
    ca_secret_ref: LocalSecretReference | None = local_secret_field(
        KIND,
        CA_PATH,
        "Secret of the ImageVersion's namespace whose key `ca.crt` holds the CA bundle to trust.",
    )

    @field_validator("ca_secret_ref")
    @classmethod
    def _own_namespace(cls, ref: LocalSecretReference | None) -> LocalSecretReference | None:
        return refuse_secret_namespace(ref, KIND, CA_PATH)


class ImageSource(SpecModel):
    """The OCI image a version is published from."""

    image: str = Field(
        min_length=1,
        max_length=IMAGE_REFERENCE_MAX,
        description="Image reference, e.g. registry.example.com/base/ubuntu:22.04 (a digest "
        "is recorded at publication). Its registry host must not be a link-local, "
        "metadata-service or unspecified address, nor a non-canonical numeric one.",
        json_schema_extra=validations(
            *registry_hosts.cel_rules(
                registry_hosts.IMAGE_AUTHORITY,
                registry_hosts.IMAGE_APPLIES,
                registry_hosts.IMAGE_SUBJECT,
            )
        ),
    )
    credentials_secret_ref: LocalSecretReference | None = local_secret_field(
        KIND,
        CREDENTIALS_PATH,
        "Secret of the ImageVersion's namespace with credentials to read the source image "
        "(for a `.dockerconfigjson`, the entry of the image's registry host).",
    )
    plain_http: bool = Field(
        default=False,
        alias="plainHTTP",
        description="Reach the source registry over plain http (local only).",
    )
    tls: SourceTLS | None = Field(default=None, description="TLS settings for the source.")

    @field_validator("credentials_secret_ref")
    @classmethod
    def _own_namespace(cls, ref: LocalSecretReference | None) -> LocalSecretReference | None:
        return refuse_secret_namespace(ref, KIND, CREDENTIALS_PATH)

    @field_validator("image")
    @classmethod
    def _registry_host(cls, image: str) -> str:
        registry_hosts.check(registry_hosts.image_authority(image), registry_hosts.IMAGE_SUBJECT)
        return image


class ImageVersionSpec(SpecModel):
    """Desired state of an ImageVersion."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(oldSelf.publishingProfile) || !has(self.safetyProfile) "
                "|| self.safetyProfile.allowDeletionOfReplicatedLocations "
                "|| oldSelf.publishingProfile.targetRegions.all(o, "
                "self.publishingProfile.targetRegions.exists(n, n.name == o.name))",
                "publishingProfile.targetRegions must keep every region while "
                "safetyProfile.allowDeletionOfReplicatedLocations is false",
                field_path=".publishingProfile.targetRegions",
            )
        )
    }

    image_definition_name: str = Field(
        max_length=NAME_MAX,
        description="ImageDefinition (same namespace) this is a version of.",
        json_schema_extra=immutable("imageDefinitionName"),
    )
    version: str = Field(
        max_length=VERSION_MAX,
        description="Semantic version MAJOR.MINOR.PATCH, unique within the definition.",
        json_schema_extra=validations(
            cel(f"self.matches(r'{VERSION_PATTERN}')", VERSION_MESSAGE),
            cel("self == oldSelf", "version is immutable: it must not change once set"),
        ),
    )
    source: ImageSource = Field(
        description="Source image; resolved to a digest once and immutable.",
        json_schema_extra=immutable("source"),
    )
    publishing_profile: PublishingProfile = Field(description="Target regions and replica counts.")
    safety_profile: SafetyProfile = Field(
        default_factory=SafetyProfile,
        description="Deletion guards.",
        json_schema_extra=object_default(SafetyProfile),
    )

    @field_validator("version")
    @classmethod
    def _semantic_version(cls, version: str) -> str:
        if not re.fullmatch(VERSION_PATTERN, version):
            raise ValueError(f"{VERSION_MESSAGE}; got {version!r}")
        return version


class ReplicaStatus(StatusModel):
    """One replica of the version: a copy in one registry replica location."""

    registry: str = Field(max_length=LABEL_NAME_MAX, description="Registry replica location.")
    state: ReplicaState = Field(description="Queued, Replicating, Completed, Failed or Removing.")
    bytes_done: int = Field(
        default=0, ge=0, description="Bytes present at the destination (copied or found there)."
    )
    bytes_total: int = Field(default=0, ge=0, description="Bytes of every blob of the image.")
    digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Digest of the replica's manifest, once there.",
    )
    message: str = Field(default="", max_length=1024, description="What went wrong, if it did.")
    retained: bool = Field(
        default=False,
        description="No longer wanted, but kept while an instance or another version still "
        "pulls this copy (the message names them); new instances do not use it.",
    )


class RegionalReplicationStatus(StatusModel):
    """Replication of the version into one region."""

    region: str = Field(max_length=LABEL_NAME_MAX, description="Region name.")
    state: RegionalReplicationState = Field(
        description="Unknown, Queued, Replicating, Completed, Failed or Removing."
    )
    progress: int = Field(default=0, ge=0, le=100, description="Percent of bytes replicated.")
    details: str = Field(default="", max_length=4096, description="Why it is in this state.")
    desired_replicas: int = Field(default=0, ge=0, description="Replicas wanted here.")
    completed_replicas: int = Field(default=0, ge=0, description="Replicas complete here.")
    bytes_copied: int = Field(
        default=0,
        ge=0,
        description="Bytes transferred into the region's registries (across operator restarts).",
    )
    bytes_skipped: int = Field(
        default=0, ge=0, description="Bytes already present at a destination (not transferred)."
    )
    bytes_total: int = Field(default=0, ge=0, description="Bytes of all replicas wanted here.")
    replicas: list[ReplicaStatus] = Field(
        default_factory=list,
        max_length=MAX_REPLICAS_PER_REGION,
        description="Each replica in this region.",
        json_schema_extra=list_map("registry"),
    )
    last_transition_time: datetime | None = Field(
        default=None, description="When state last changed."
    )


class ReplicationStatus(StatusModel):
    """Replication of the version into every target region."""

    aggregated_state: AggregatedReplicationState = Field(
        default="Unknown", description="Unknown, InProgress, Completed or Failed."
    )
    completed_regions: str = Field(
        default="", max_length=16, description='Regions completed out of targeted, e.g. "2/3".'
    )
    summary: list[RegionalReplicationStatus] = Field(
        default_factory=list,
        max_length=MAX_REGIONS,
        description="Per-region replication state.",
        json_schema_extra=list_map("region"),
    )


class VersionQuarantine(StatusModel):
    """Why this version is quarantined (its ImageDefinition's controller writes it)."""

    since: datetime | None = Field(default=None, description="When the upgrade faulted.")
    scale_set: str = Field(
        max_length=2 * NAME_MAX + 1, description="namespace/name of the ScaleSet that faulted."
    )
    message: str = Field(default="", max_length=MESSAGE_MAX, description="The fault.")


class ImageVersionStatus(StatusModel):
    """Observed state of an ImageVersion."""

    observed_generation: int | None = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    source_digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Digest the source resolved to at publication.",
    )
    source_media_type: str | None = Field(
        default=None, max_length=256, description="Media type of the source manifest or index."
    )
    size_bytes: int | None = Field(default=None, ge=0, description="Bytes of all blobs.")
    published_date: datetime | None = Field(
        default=None, description="When the source was resolved and the version published."
    )
    repository: str | None = Field(
        default=None,
        max_length=REPOSITORY_MAX,
        description="Repository path of the version's replicas in every region's registries.",
    )
    replication_status: ReplicationStatus | None = Field(
        default=None, description="Replication to each target region."
    )
    quarantine: VersionQuarantine | None = Field(
        default=None,
        description="Set while the version is quarantined after a faulted upgrade: not "
        "latest anywhere, no upgrade to it starts (annotate galleon.dev/release-quarantine "
        "with a time at or after `since` to release it).",
    )
