"""`ScaleSet`: a fleet of identical instances (Pods `<name>-<index>` with data disks
as PVCs) in one region, following an image definition, with the upgrade policy of
the cloud's scale sets (batched rolling OS upgrades with health gates and rollback).

Why this module is longer than most: it is the whole schema of one kind (spec,
upgrade policies, the rolling-upgrade status and its history), from which the CRD,
its CEL rules and docs/reference.md are generated; split, one kind's schema would
be read in several files.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from galleon.api.common import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    DURATION_MAX_MESSAGE,
    DURATION_MAX_SECONDS,
    DURATION_MESSAGE,
    ISO8601_DURATION_PATTERN,
    LABEL_NAME_MAX,
    NAME_MAX,
    PRESERVE_UNKNOWN,
    VERSION_MAX,
    VERSION_PATTERN,
    AnnotationValue,
    Condition,
    LabelValue,
    SpecModel,
    StatusModel,
    annotation_map_field,
    cel,
    check_annotations,
    check_label_keys,
    conditions_field,
    immutable,
    label_map_field,
    list_map,
    object_default,
    observed_generation_field,
    validations,
)

MAX_CAPACITY = 10000
INDEX_DIGITS_MAX = 5
"""Digits of the largest instance index: 9999 under MAX_CAPACITY, and room for surge
indexes (capacity plus the batch) up to 99999."""
SCALESET_NAME_MAX = LABEL_NAME_MAX - 1 - INDEX_DIGITS_MAX
"""Longest ScaleSet name (57): instance `<name>-<index>` is a pod hostname and a label
value, both at most 63 characters."""
DATA_DISK_NAME_MAX = LABEL_NAME_MAX - len("disk-")
"""Longest data disk name (58): the pod volume `disk-<name>` is a DNS label (the claim
`<disk>-<scaleset>-<index>`, at most 58 + 1 + 57 + 1 + 5 = 122, is well within 253)."""
MAX_DATA_DISKS = 64
MAX_UPGRADE_HISTORY = 5
"""The cloud keeps the last 5 OS upgrade attempts; so do we."""
LATEST = "latest"

IMAGE_VERSION_MESSAGE = 'version must be "latest" or MAJOR.MINOR.PATCH, e.g. "1.0.2"'
BATCH_MESSAGE = "maxBatchInstancePercent must not exceed maxUnhealthyInstancePercent"
NAME_LENGTH_MESSAGE = (
    f"a ScaleSet's name must be at most {SCALESET_NAME_MAX} characters: its instances are "
    f"named <name>-<index> (index up to {INDEX_DIGITS_MAX} digits), a pod hostname and a label "
    f"value of at most {LABEL_NAME_MAX}"
)
NAME_GRAMMAR_MESSAGE = (
    "a ScaleSet's name must be a DNS label (lower case letters, digits and '-', beginning "
    "and ending with a letter or digit): it names its instances' hostnames"
)
METADATA_RULES = (
    cel(f"size(self.metadata.name) <= {SCALESET_NAME_MAX}", NAME_LENGTH_MESSAGE),
    cel(f"self.metadata.name.matches(r'{DNS_LABEL_PATTERN}')", NAME_GRAMMAR_MESSAGE),
)
"""CEL rules on the whole object (only a root rule may read metadata.name)."""


def check_name(name: str) -> str:
    """The pydantic-side twin of `METADATA_RULES`: `name`, unless a ScaleSet may not
    be called that.

    >>> check_name("web")
    'web'
    >>> check_name("w" * 58)
    Traceback (most recent call last):
    ...
    ValueError: a ScaleSet's name must be at most 57 characters: ...
    """
    if len(name) > SCALESET_NAME_MAX:
        raise ValueError(NAME_LENGTH_MESSAGE)
    if not re.fullmatch(DNS_LABEL_PATTERN, name):
        raise ValueError(NAME_GRAMMAR_MESSAGE)
    return name


UpgradeMode = Literal["Manual", "Automatic", "Rolling"]
OSImageUpdate = Literal["Recreate", "InPlaceIfPossible"]
RunningStatusCode = Literal["RollingForward", "Cancelled", "Completed", "Faulted"]
RetentionRule = Literal["Retain", "Delete"]


def is_iso8601_duration(value: str) -> bool:
    """Whether `value` is a days/hours/minutes/seconds ISO 8601 duration.

    >>> [is_iso8601_duration(v) for v in ("PT0S", "PT1H30M", "P1D", "P", "PT", "30s")]
    [True, True, True, False, False, False]
    """
    return (
        bool(re.fullmatch(ISO8601_DURATION_PATTERN, value))
        and value not in ("P", "PT")
        and (not value.endswith("T"))
    )


def duration_seconds(value: str) -> int:
    """Whole seconds of an ISO 8601 duration (`is_iso8601_duration`), the fraction of
    a second dropped as the CEL rule drops it.

    >>> duration_seconds("PT1M30.5S"), duration_seconds("P1DT1H"), duration_seconds("P9999999999D")
    (90, 90000, 863999999913600)
    """
    match = re.fullmatch(ISO8601_DURATION_PATTERN, value)
    if match is None:
        raise ValueError(f"{DURATION_MESSAGE}; got {value!r}")
    days, _, hours, minutes, seconds, _ = match.groups()

    def number(part: str | None) -> int:
        return int(part[:-1].split(".")[0]) if part else 0

    return number(days) * 86400 + number(hours) * 3600 + number(minutes) * 60 + number(seconds)


def _seconds_cel() -> str:
    """CEL adding up a duration's parts in seconds (the pattern's 10 digits a part keep
    it far from int64 overflow)."""
    terms = []
    for unit, seconds in (("D", 86400), ("H", 3600), ("M", 60)):
        found = f"self.find(r'[0-9]+{unit}')"
        terms.append(
            f"(self.matches(r'[0-9]+{unit}') ? int({found}.replace('{unit}', '')) * {seconds} : 0)"
        )
    found = r"self.find(r'[0-9]+(\.[0-9]+)?S')"
    terms.append(
        rf"(self.matches(r'[0-9]+(\.[0-9]+)?S') "
        rf"? int({found}.split('.')[0].replace('S', '')) : 0)"
    )
    return " + ".join(terms)


def duration_field(
    default: Any,
    description: str,
    *,
    maximum: int = DURATION_MAX_SECONDS,
    maximum_message: str = DURATION_MAX_MESSAGE,
    minimum: int = 0,
    minimum_message: str = "",
    alias: str | None = None,
) -> Any:
    """An ISO 8601 duration of at least `minimum` and at most `maximum` seconds (refused
    with `minimum_message` and `maximum_message`); `default` `...` makes it required.
    The owner mirrors the rules with `is_iso8601_duration` and `duration_seconds`."""
    rules = [
        cel(
            f"self.matches(r'{ISO8601_DURATION_PATTERN}') && self != 'P' && !self.endsWith('T')",
            DURATION_MESSAGE,
        ),
        cel(
            f"!self.matches(r'{ISO8601_DURATION_PATTERN}') || {_seconds_cel()} <= {maximum}",
            maximum_message,
        ),
    ]
    if minimum > 0:
        rules.append(
            cel(
                f"!self.matches(r'{ISO8601_DURATION_PATTERN}') || {_seconds_cel()} >= {minimum}",
                minimum_message,
            )
        )
    return Field(
        default=default,
        alias=alias,
        max_length=32,
        description=f"{description} At most {maximum} seconds.",
        json_schema_extra=validations(*rules),
    )


def percent_field(default: int, description: str) -> Any:
    return Field(default=default, ge=5, le=100, description=description)


class ImageReference(SpecModel):
    """Which image the instances run."""

    image_definition_name: str = Field(
        max_length=NAME_MAX, description="ImageDefinition to follow."
    )
    namespace: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="Namespace of the ImageDefinition (default: the ScaleSet's own). Another "
        "namespace's images are usable when its Gallery's sharingProfile shares them with this "
        "namespace and, with galleon's admission policy, when the user may `use` the "
        "ImageDefinition.",
    )
    version: str = Field(
        default=LATEST,
        max_length=VERSION_MAX,
        description='"latest" (the newest version replicated to the region) or a pinned '
        "MAJOR.MINOR.PATCH.",
        json_schema_extra=validations(
            cel(f"self == 'latest' || self.matches(r'{VERSION_PATTERN}')", IMAGE_VERSION_MESSAGE)
        ),
    )

    @field_validator("version")
    @classmethod
    def _latest_or_semantic(cls, version: str) -> str:
        if version != LATEST and not re.fullmatch(VERSION_PATTERN, version):
            raise ValueError(f"{IMAGE_VERSION_MESSAGE}; got {version!r}")
        return version


class PodTemplateMetadata(SpecModel):
    """Labels and annotations copied onto every instance."""

    labels: dict[str, LabelValue] = label_map_field("Labels of every instance.", max_items=64)
    annotations: dict[str, AnnotationValue] = annotation_map_field(
        "Annotations of every instance.", max_items=64
    )

    @field_validator("labels")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        check_label_keys(labels)
        return labels

    @field_validator("annotations")
    @classmethod
    def _annotations(cls, annotations: dict[str, str]) -> dict[str, str]:
        check_annotations(annotations)
        return annotations


class PodTemplate(SpecModel):
    """The instance model: a pod template whose OS container's image galleon sets."""

    metadata: PodTemplateMetadata = Field(
        default_factory=PodTemplateMetadata,
        description="Labels and annotations of every instance.",
        json_schema_extra=object_default(PodTemplateMetadata),
    )
    spec: dict[str, Any] = Field(
        description="A core/v1 PodSpec; the OS container's image is set by galleon.",
        json_schema_extra=PRESERVE_UNKNOWN,
    )

    @field_validator("spec")
    @classmethod
    def _has_containers(cls, spec: dict[str, Any]) -> dict[str, Any]:
        containers = spec.get("containers")
        if not isinstance(containers, list) or not containers:
            raise ValueError("template.spec.containers must list at least one container")
        return spec


class DataDisk(SpecModel):
    """A data disk attached to every instance: one PVC per instance, kept across upgrades."""

    name: str = Field(
        max_length=DATA_DISK_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description=f"Disk name, a DNS label of at most {DATA_DISK_NAME_MAX} characters (the "
        "pod volume is disk-<name>).",
    )
    lun: int = Field(ge=0, le=63, description="Logical unit number, unique per instance.")
    disk_size_gb: int = Field(alias="diskSizeGB", ge=1, le=65536, description="Size in GiB.")
    storage_class_name: str | None = Field(
        default=None,
        max_length=NAME_MAX,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="StorageClass (default: the cluster's).",
    )
    mount_path: str | None = Field(
        default=None,
        max_length=1024,
        description="Where the OS container mounts the disk (default: /data/<name>).",
    )


class PersistentVolumeClaimRetentionPolicy(SpecModel):
    """What happens to data disks of instances that go away (StatefulSet's rule)."""

    when_deleted: RetentionRule = Field(
        default="Retain", description="Disks of a deleted ScaleSet: Retain or Delete."
    )
    when_scaled: RetentionRule = Field(
        default="Retain", description="Disks of instances removed by scale-in: Retain or Delete."
    )


MAX_DEFERRAL_SECONDS = 7 * 86400
MAX_DEFERRAL_MESSAGE = 'maxOSUpgradeDeferral must be at most 7 days ("P7D")'


class AutomaticOSUpgradePolicy(SpecModel):
    """Automatic OS image upgrades: roll out each newer version once it reached the region."""

    enable_automatic_os_upgrade: bool = Field(
        default=False,
        alias="enableAutomaticOSUpgrade",
        description="Upgrade instances when a newer version is replicated to the region.",
    )
    disable_automatic_rollback: bool = Field(
        default=False,
        description="Keep failed instances on the new version instead of rolling them back.",
    )
    use_rolling_upgrade_policy: bool = Field(
        default=False, description="Use rollingUpgradePolicy's limits (they apply either way)."
    )
    os_rolling_upgrade_deferral: bool = Field(
        default=False,
        description="Tell each instance of a batch that its upgrade is pending (pod "
        "annotation galleon.dev/upgrade-pending, readable through the downward API) and "
        "replace it only once it approves (annotation galleon.dev/upgrade-approved) or "
        "maxOSUpgradeDeferral passed. See docs/rollout.md.",
    )
    max_os_upgrade_deferral: str = duration_field(
        "PT1H",
        "How long an instance told of a pending upgrade may defer it, ISO 8601; then it "
        "is replaced without its approval.",
        maximum=MAX_DEFERRAL_SECONDS,
        maximum_message=MAX_DEFERRAL_MESSAGE,
        alias="maxOSUpgradeDeferral",
    )

    @field_validator("max_os_upgrade_deferral")
    @classmethod
    def _deferral_duration(cls, value: str) -> str:
        if not is_iso8601_duration(value):
            raise ValueError(f"{DURATION_MESSAGE}; got {value!r}")
        if duration_seconds(value) > MAX_DEFERRAL_SECONDS:
            raise ValueError(f"{MAX_DEFERRAL_MESSAGE}; got {value!r}")
        return value


class RollingUpgradePolicy(SpecModel):
    """Limits of a batched rolling upgrade (the cloud's defaults)."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.maxBatchInstancePercent <= self.maxUnhealthyInstancePercent",
                BATCH_MESSAGE,
                field_path=".maxBatchInstancePercent",
            )
        )
    }

    max_batch_instance_percent: int = percent_field(
        20, "Most instances upgraded in one batch, in percent of all (at least 1 instance)."
    )
    max_unhealthy_instance_percent: int = percent_field(
        20, "Most instances unhealthy before a batch starts, in percent of all."
    )
    max_unhealthy_upgraded_instance_percent: int = percent_field(
        20, "Most upgraded instances unhealthy before the upgrade is Faulted, in percent."
    )
    pause_time_between_batches: str = duration_field(
        "PT0S", "Wait between batches, ISO 8601 (e.g. PT30S)."
    )
    prioritize_unhealthy_instances: bool = Field(
        default=False, description="Upgrade unhealthy instances first."
    )
    rollback_failed_instances_on_policy_breach: bool = Field(
        default=False, description="On a breach, roll failed instances back to the old version."
    )
    max_surge: bool = Field(
        default=False,
        description="Create the new instance before removing the old one (needs spare room).",
    )
    upgraded_instance_health_timeout: str = duration_field(
        "PT5M", "How long an upgraded instance has to become healthy, ISO 8601."
    )
    pre_pull_images: bool | None = Field(
        default=None,
        description="Before instances are replaced, pull the new OS image onto the nodes "
        "they run on (a short-lived pod per node), so that an instance's downtime is its "
        "start, not its pull; the upgrade waits for the pulls (at most 5 minutes). Unset: "
        "on in Rolling mode, off otherwise.",
    )

    @field_validator("pause_time_between_batches", "upgraded_instance_health_timeout")
    @classmethod
    def _iso_duration(cls, value: str) -> str:
        if not is_iso8601_duration(value):
            raise ValueError(f"{DURATION_MESSAGE}; got {value!r}")
        if duration_seconds(value) > DURATION_MAX_SECONDS:
            raise ValueError(f"{DURATION_MAX_MESSAGE}; got {value!r}")
        return value

    @model_validator(mode="after")
    def _batch_within_unhealthy(self) -> RollingUpgradePolicy:
        if self.max_batch_instance_percent > self.max_unhealthy_instance_percent:
            raise ValueError(
                f"{BATCH_MESSAGE} ({self.max_batch_instance_percent} > "
                f"{self.max_unhealthy_instance_percent})"
            )
        return self


MAX_MAINTENANCE_WINDOWS = 16
WINDOW_DURATION_MIN_SECONDS = 60
WINDOW_DURATION_MAX_SECONDS = 90 * 86400
"""A window's opening lasts from one minute to 90 days (a quarter's change freeze)."""
RRULE_MAX = 512
CRON_MAX = 128
TIME_ZONE_MAX = 64
RRULE_PATTERN = r"^([Rr][Rr][Uu][Ll][Ee]:)?[A-Za-z]+=[-+A-Za-z0-9,]+(;[A-Za-z]+=[-+A-Za-z0-9,]+)*$"
CRON_PATTERN = r"^[-0-9A-Za-z*,/?#]+(\s+[-0-9A-Za-z*,/?#]+){4}$"
TIME_ZONE_PATTERN = r"^[A-Za-z][-A-Za-z0-9_+]*(/[-A-Za-z0-9_+]+)*$"
LOCAL_TIME_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2})?$"
RRULE_FREQ_RULE = "(?i)(^|[;:])FREQ=(HOURLY|DAILY|WEEKLY|MONTHLY|YEARLY)(;|$)"
RRULE_REFUSED_RULE = "(?i)(^|[;:])(COUNT|BYSECOND|DTSTART)="
ONE_RULE_MESSAGE = "a maintenance window must set exactly one of rrule and cron"
START_MESSAGE = "start must only be set with rrule (a cron expression has no start)"
FREQ_MESSAGE = (
    "rrule must say FREQ=HOURLY, DAILY, WEEKLY, MONTHLY or YEARLY (a window opens at most hourly)"
)
REFUSED_PARTS_MESSAGE = (
    "rrule must not use COUNT (end it with UNTIL), BYSECOND (windows open on whole minutes) "
    "or DTSTART (use start)"
)
WINDOW_DURATION_MIN_MESSAGE = 'duration must be at least one minute ("PT1M")'
WINDOW_DURATION_MAX_MESSAGE = 'duration must be at most 90 days ("P90D")'


class MaintenanceWindow(SpecModel):
    """A recurring window during which upgrades may start batches (or, with deny, may
    not). What admission cannot check (an RRULE or cron expression that parses but
    is wrong, a time zone that does not exist) is said on the ScaleSet's
    MaintenanceWindow condition, and no batch starts until it is fixed."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel("has(self.rrule) != has(self.cron)", ONE_RULE_MESSAGE),
            cel("!has(self.start) || has(self.rrule)", START_MESSAGE, field_path=".start"),
        )
    }

    name: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="A name for messages and conditions, e.g. nightly or year-end-freeze.",
    )
    rrule: str | None = Field(
        default=None,
        max_length=RRULE_MAX,
        pattern=RRULE_PATTERN,
        description="When the window opens: an RFC 5545 RRULE, e.g. "
        "FREQ=WEEKLY;BYDAY=SA,SU;BYHOUR=2;BYMINUTE=0 (FREQ at most HOURLY; UNTIL, not "
        "COUNT). Times without BYHOUR/BYMINUTE come from start (midnight without it). "
        "Exactly one of rrule and cron.",
        json_schema_extra=validations(
            cel(f"self.matches(r'{RRULE_FREQ_RULE}')", FREQ_MESSAGE),
            cel(f"!self.matches(r'{RRULE_REFUSED_RULE}')", REFUSED_PARTS_MESSAGE),
        ),
    )
    cron: str | None = Field(
        default=None,
        max_length=CRON_MAX,
        pattern=CRON_PATTERN,
        description="When the window opens: a five-field cron expression (minute hour "
        "day-of-month month day-of-week), e.g. '0 2 * * 6,0'. Exactly one of rrule and cron.",
    )
    start: str | None = Field(
        default=None,
        max_length=19,
        pattern=LOCAL_TIME_PATTERN,
        description="The rrule's DTSTART: a local date and time in timeZone, without an "
        "offset, e.g. 2026-01-03T02:00:00. INTERVAL counts from it and no opening comes "
        "before it (default 2000-01-01T00:00:00). rrule only.",
    )
    duration: str = duration_field(
        ...,
        "How long each opening lasts, ISO 8601 (e.g. PT4H), in elapsed time: across a "
        "daylight saving change the local end moves by the hour.",
        maximum=WINDOW_DURATION_MAX_SECONDS,
        maximum_message=WINDOW_DURATION_MAX_MESSAGE,
        minimum=WINDOW_DURATION_MIN_SECONDS,
        minimum_message=WINDOW_DURATION_MIN_MESSAGE,
    )
    time_zone: str = Field(
        default="UTC",
        max_length=TIME_ZONE_MAX,
        pattern=TIME_ZONE_PATTERN,
        description="IANA time zone the rule's times are in, e.g. Europe/Berlin. A start "
        "in the gap when clocks go forward opens at the same time after the jump (02:30 "
        "becomes 03:30); one that occurs twice opens at the first.",
    )
    deny: bool = Field(
        default=False,
        description="A deny window: no batch starts inside it, whatever the other windows "
        "say (a change freeze).",
    )

    @field_validator("duration")
    @classmethod
    def _window_duration(cls, value: str) -> str:
        if not is_iso8601_duration(value):
            raise ValueError(f"{DURATION_MESSAGE}; got {value!r}")
        seconds = duration_seconds(value)
        if seconds < WINDOW_DURATION_MIN_SECONDS:
            raise ValueError(f"{WINDOW_DURATION_MIN_MESSAGE}; got {value!r}")
        if seconds > WINDOW_DURATION_MAX_SECONDS:
            raise ValueError(f"{WINDOW_DURATION_MAX_MESSAGE}; got {value!r}")
        return value

    @field_validator("rrule")
    @classmethod
    def _rrule_parts(cls, value: str | None) -> str | None:
        if value is not None and not re.search(RRULE_FREQ_RULE, value):
            raise ValueError(f"{FREQ_MESSAGE}; got {value!r}")
        if value is not None and re.search(RRULE_REFUSED_RULE, value):
            raise ValueError(f"{REFUSED_PARTS_MESSAGE}; got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> MaintenanceWindow:
        if (self.rrule is None) == (self.cron is None):
            raise ValueError(ONE_RULE_MESSAGE)
        if self.start is not None and self.rrule is None:
            raise ValueError(START_MESSAGE)
        return self


class UpgradePolicy(SpecModel):
    """How changes and new OS image versions reach the instances."""

    mode: UpgradeMode = Field(
        default="Manual",
        description="Manual: upgrade when asked; Rolling: in batches when the model changes; "
        "Automatic: at once when the model changes.",
    )
    automatic_os_upgrade_policy: AutomaticOSUpgradePolicy = Field(
        default_factory=AutomaticOSUpgradePolicy,
        alias="automaticOSUpgradePolicy",
        description="Automatic OS image upgrades (they always roll in batches).",
        json_schema_extra=object_default(AutomaticOSUpgradePolicy),
    )
    rolling_upgrade_policy: RollingUpgradePolicy = Field(
        default_factory=RollingUpgradePolicy,
        description="Batch size, health limits and pauses of rolling upgrades.",
        json_schema_extra=object_default(RollingUpgradePolicy),
    )
    os_image_update: OSImageUpdate = Field(
        default="Recreate",
        alias="osImageUpdate",
        description="How an upgrade or a rollback gives an instance its new OS image. "
        "Recreate: its pod is deleted and created again (same name and data disks). "
        "InPlaceIfPossible: the running pod's OS container gets the new image and kubelet "
        "restarts that container (same pod, node, IP and disks; no rescheduling), when "
        "only the version changes, no init container runs the OS image and the image "
        "pull Secret stays the same; otherwise Recreate. See docs/rollout.md.",
    )
    maintenance_windows: list[MaintenanceWindow] = Field(
        default_factory=list,
        max_length=MAX_MAINTENANCE_WINDOWS,
        description="When upgrades may start batches: with an allow window, only inside "
        "one; never inside a deny window. Every batch of every upgrade waits for them "
        "(Platform or User, Rolling or Automatic, a start annotation too); a running "
        "batch always finishes. Empty: any time. See docs/rollout.md.",
    )


class ScaleSetSpec(SpecModel):
    """Desired state of a ScaleSet. The ScaleSet's own name is a DNS label of at most
    57 characters: instance `<name>-<index>` is a pod hostname and a label value."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "!has(self.dataDisks) || self.dataDisks.all(d, "
                "self.dataDisks.exists_one(e, e.lun == d.lun))",
                "dataDisks must not use a lun twice",
                field_path=".dataDisks",
            )
        )
    }

    region: str = Field(
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="Region the instances run in.",
        json_schema_extra=immutable("region"),
    )
    capacity: int = Field(ge=0, le=MAX_CAPACITY, description="Number of instances.")
    image_reference: ImageReference = Field(description="Image definition and version to run.")
    os_container_name: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="Container whose image is the OS image (default: the first container). "
        "Init containers whose image is the same as this container's in the template (e.g. "
        "`set-by-galleon`) run the OS image too: extensions that run again on every new OS "
        "image.",
    )
    template: PodTemplate = Field(description="Instance model (pod template).")
    data_disks: list[DataDisk] = Field(
        default_factory=list,
        max_length=MAX_DATA_DISKS,
        description="Data disks of every instance, kept across OS upgrades.",
        json_schema_extra=list_map("name"),
    )
    persistent_volume_claim_retention_policy: PersistentVolumeClaimRetentionPolicy = Field(
        default_factory=PersistentVolumeClaimRetentionPolicy,
        description="Whether data disks are kept when instances go away.",
        json_schema_extra=object_default(PersistentVolumeClaimRetentionPolicy),
    )
    min_ready_seconds: int = Field(
        default=0, ge=0, le=3600, description="Seconds an instance must stay Ready to be healthy."
    )
    upgrade_policy: UpgradePolicy = Field(
        default_factory=UpgradePolicy,
        description="When and how instances are upgraded.",
        json_schema_extra=object_default(UpgradePolicy),
    )
    paused: bool = Field(
        default=False, description="Pause a running upgrade after its current batch."
    )

    @field_validator("data_disks")
    @classmethod
    def _distinct_disks(cls, disks: list[DataDisk]) -> list[DataDisk]:
        for attribute, label in (("name", "name"), ("lun", "lun")):
            values = [getattr(disk, attribute) for disk in disks]
            if len(set(values)) != len(values):
                raise ValueError(f"dataDisks must not use a {label} twice")
        return disks


class InstanceVersionCount(StatusModel):
    """How many instances run one version."""

    version: str = Field(max_length=VERSION_MAX, description="Image version.")
    instances: int = Field(ge=0, description="Instances on this version.")
    healthy: int = Field(ge=0, description="Of those, healthy instances.")


class RunningStatus(StatusModel):
    """Where the latest rolling upgrade stands."""

    code: RunningStatusCode = Field(description="RollingForward, Cancelled, Completed or Faulted.")
    start_time: datetime | None = Field(default=None, description="When it started.")
    last_action: Literal["Start", "Cancel"] | None = Field(
        default=None, description="Last action taken on it: Start or Cancel."
    )
    last_action_time: datetime | None = Field(default=None, description="When that was.")


class RollingUpgradeProgress(StatusModel):
    """Instance counters of a rolling upgrade."""

    successful_instance_count: int = Field(default=0, ge=0, description="Upgraded and healthy.")
    failed_instance_count: int = Field(default=0, ge=0, description="Upgraded but unhealthy.")
    in_progress_instance_count: int = Field(default=0, ge=0, description="Being upgraded now.")
    pending_instance_count: int = Field(default=0, ge=0, description="Not yet upgraded.")


class UpgradeError(StatusModel):
    """Why an upgrade stopped."""

    code: str = Field(
        max_length=128,
        description="Error code, e.g. MaxUnhealthyUpgradedInstancePercentExceededInRollingUpgrade.",
    )
    message: str = Field(default="", max_length=4096, description="Details, with numbers.")


class RollbackInfo(StatusModel):
    """Instances returned to the previous version after a fault."""

    successfully_rolledback_instance_count: int = Field(
        default=0, ge=0, description="Instances rolled back and healthy again."
    )
    failed_rolledback_instance_count: int = Field(
        default=0, ge=0, description="Instances whose rollback failed."
    )


class RollingUpgradeStatus(StatusModel):
    """The latest (or current) rolling upgrade."""

    from_version: str | None = Field(
        default=None, max_length=VERSION_MAX, description="Version instances ran before."
    )
    to_version: str | None = Field(
        default=None, max_length=VERSION_MAX, description="Version being rolled out."
    )
    from_revision: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        description="Instance revision (version and model hash) before the upgrade.",
    )
    to_revision: str | None = Field(
        default=None, max_length=LABEL_NAME_MAX, description="Instance revision being rolled out."
    )
    started_by: Literal["User", "Platform"] | None = Field(
        default=None, description="User (a manual start) or Platform (automatic)."
    )
    running_status: RunningStatus | None = Field(default=None, description="Where it stands.")
    progress: RollingUpgradeProgress = Field(
        default_factory=RollingUpgradeProgress, description="Instance counters."
    )
    current_batch: int | None = Field(default=None, ge=0, description="1-based current batch.")
    total_batches: int | None = Field(default=None, ge=0, description="Batches planned.")
    error: UpgradeError | None = Field(default=None, description="Why it stopped, if it did.")
    rollback_info: RollbackInfo | None = Field(default=None, description="Rollback counters.")
    phase: Literal["Replacing", "Waiting", "Pausing", "RollingBack", "Done"] | None = Field(
        default=None, description="Step of the current batch (the operator resumes from it)."
    )
    phase_since: datetime | None = Field(default=None, description="When that step began.")
    batch_start_time: datetime | None = Field(
        default=None,
        description="When the current batch (or the rollback) began: its instances' health "
        "timeout counts from it.",
    )
    batch_instances: list[int] = Field(
        default_factory=list, max_length=MAX_CAPACITY, description="Indexes in the current batch."
    )
    upgraded_instances: list[int] = Field(
        default_factory=list, max_length=MAX_CAPACITY, description="Indexes upgraded so far."
    )
    failed_instances: list[int] = Field(
        default_factory=list,
        max_length=MAX_CAPACITY,
        description="Upgraded indexes that did not become healthy.",
    )
    rolled_back_instances: list[int] = Field(
        default_factory=list,
        max_length=MAX_CAPACITY,
        description="Indexes put back on the previous version.",
    )
    cancel_requested: bool = Field(
        default=False, description="A cancel was asked; the upgrade stops after this batch."
    )


class UpgradeHistoryEntry(StatusModel):
    """One finished OS upgrade attempt."""

    from_version: str | None = Field(default=None, max_length=VERSION_MAX, description="From.")
    to_version: str = Field(max_length=VERSION_MAX, description="Target version.")
    started_by: Literal["User", "Platform"] = Field(description="User or Platform.")
    start_time: datetime | None = Field(default=None, description="When it started.")
    end_time: datetime | None = Field(default=None, description="When it ended.")
    result: RunningStatusCode = Field(description="Completed, Cancelled or Faulted.")
    progress: RollingUpgradeProgress = Field(
        default_factory=RollingUpgradeProgress, description="Final instance counters."
    )
    error: UpgradeError | None = Field(default=None, description="Why it stopped, if it did.")
    rollback_info: RollbackInfo | None = Field(default=None, description="Rollback counters.")


class ScaleSetStatus(StatusModel):
    """Observed state of a ScaleSet."""

    observed_generation: int | None = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    replicas: int | None = Field(default=None, ge=0, description="Instances that exist.")
    ready_replicas: int | None = Field(default=None, ge=0, description="Instances healthy.")
    selector: str | None = Field(
        default=None, max_length=1024, description="Label selector of the instances (for scale)."
    )
    current_version: str | None = Field(
        default=None,
        max_length=VERSION_MAX,
        description="Version most instances run (all of them when no upgrade is under way).",
    )
    target_version: str | None = Field(
        default=None,
        max_length=VERSION_MAX,
        description="Version the instances should run, as resolved in the region.",
    )
    waiting_for_replication: str | None = Field(
        default=None,
        max_length=VERSION_MAX,
        description="A newer version that exists but has not finished replicating here.",
    )
    instances_by_version: list[InstanceVersionCount] = Field(
        default_factory=list,
        max_length=64,
        description="Instances per version and health.",
        json_schema_extra=list_map("version"),
    )
    rolling_upgrade: RollingUpgradeStatus | None = Field(
        default=None, description="The latest rolling upgrade."
    )
    upgrade_history: list[UpgradeHistoryEntry] = Field(
        default_factory=list,
        max_length=MAX_UPGRADE_HISTORY,
        description="The last OS upgrade attempts, newest first.",
    )
