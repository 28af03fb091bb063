"""`ImageTemplate`: how to build an image: a source image, typed customization steps
(`galleon.api.customize`) and where the result is published (a new ImageVersion of an
image definition).

Rules of this module:
- A template describes; it never runs anything. Each build is an `ImageBuild`
  (`galleon.api.imagebuild`), which its status summarises.
- Every cross-field rule is written twice, as a CEL rule and a model validator with
  the same message; `SPEC_RULES` are those spanning the spec's fields.
- The status is also the template controller's memory: which generation and which
  source digest it last created a build for, and the failed builds in a row it has
  counted, so a restarted operator neither builds twice nor forgets a failing streak.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from galleon.api.common import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    DURATION_MESSAGE,
    LABEL_NAME_MAX,
    NAME_MAX,
    VERSION_MAX,
    VERSION_PATTERN,
    Condition,
    SpecModel,
    StatusModel,
    cel,
    conditions_field,
    list_map,
    object_default,
    observed_generation_field,
    validations,
)
from galleon.api.customize import (
    ARGUMENT_MAX,
    MAX_STEPS,
    STEP_NAMES_MESSAGE,
    CustomizeStep,
    TemplateImageSource,
    check_distinct_names,
    check_exactly_one,
    check_pattern,
    distinct_names_rule,
    exactly_one_rule,
)
from galleon.api.imagebuild import BuildPhase
from galleon.api.imageversion import (
    DIGEST_MAX,
    DIGEST_PATTERN,
    VERSION_MESSAGE,
    PublishingProfile,
)
from galleon.api.scaleset import (
    IMAGE_VERSION_MESSAGE,
    LATEST,
    duration_field,
    duration_seconds,
    is_iso8601_duration,
)

BUILD_TIMEOUT_MAX_SECONDS = 86400
"""Longest build (P1D): a build holds its source's and layers' bytes in flight."""
HISTORY_LIMIT_MAX = 100
TEMPLATE_NAME_MAX = LABEL_NAME_MAX

VersioningScheme = Literal["Latest", "Source", "Explicit"]

NAME_MESSAGE = (
    f"an ImageTemplate's name must be a DNS label of at most {TEMPLATE_NAME_MAX} characters "
    "(lower case letters, digits and '-'): it is the value of the galleon.dev/template label "
    "on its builds"
)
METADATA_RULES = (
    cel(
        f"size(self.metadata.name) <= {TEMPLATE_NAME_MAX} "
        f"&& self.metadata.name.matches(r'{DNS_LABEL_PATTERN}')",
        NAME_MESSAGE,
    ),
)
"""CEL rules on the whole object (only a root rule may read metadata.name)."""
SOURCE_MESSAGE = "source must set exactly one of imageVersion and image"
EXPLICIT_VERSION_MESSAGE = 'version must be set when scheme is "Explicit", and only then'
MAJOR_MESSAGE = 'major may only be set when scheme is "Latest"'
SOURCE_SCHEME_MESSAGE = (
    'distribute.versioning.scheme "Source" needs source.imageVersion: the version published '
    "is the source version's"
)
SOURCE_SAME_DEFINITION_MESSAGE = (
    'distribute.versioning.scheme "Source" must not publish into the source\'s own image '
    "definition: that version exists already"
)
TRIGGER_SOURCE_MESSAGE = (
    'triggers.sourceImageUpdate needs source.imageVersion with version "latest": only a '
    "gallery definition's latest version is watched for a newer one"
)
VALIDATION_TIMEOUT_MAX_SECONDS = 4 * 3600
VALIDATION_TIMEOUT_MAX_MESSAGE = (
    f"validate.timeout must be at most PT4H ({VALIDATION_TIMEOUT_MAX_SECONDS} seconds)"
)
CHECK_MESSAGE = "validate must set podReady, command or both"
PROBE_MESSAGE = "readinessProbe must set exactly one of httpGet, tcpSocket and exec"
MAX_COMMAND = 64
FAILED_BUILDS_TO_SUSPEND = 3
"""Failed builds in a row after which the source-update trigger is switched off."""
BUILD_TIMEOUT_MAX_MESSAGE = (
    f"buildTimeout must be at most P1D ({BUILD_TIMEOUT_MAX_SECONDS} seconds)"
)


# -- the source --------------------------------------------------------------------


class ImageVersionSource(SpecModel):
    """A version of an image definition of galleon's as the source."""

    image_definition_name: str = Field(
        max_length=NAME_MAX,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="ImageDefinition whose version is the source.",
    )
    version: str = Field(
        default=LATEST,
        max_length=VERSION_MAX,
        description='"latest" (the definition\'s status.latestVersion when the build '
        "starts) or a pinned MAJOR.MINOR.PATCH.",
        json_schema_extra=validations(
            cel(f"self == 'latest' || self.matches(r'{VERSION_PATTERN}')", IMAGE_VERSION_MESSAGE)
        ),
    )
    namespace: str | None = Field(
        default=None,
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="Namespace of the ImageDefinition (default: the template's own); another "
        "namespace's when its Gallery's sharingProfile shares it with this one.",
    )

    @field_validator("version")
    @classmethod
    def _latest_or_semantic(cls, version: str) -> str:
        if version != LATEST and not re.fullmatch(VERSION_PATTERN, version):
            raise ValueError(f"{IMAGE_VERSION_MESSAGE}; got {version!r}")
        return version


class TemplateSource(SpecModel):
    """The image a build starts from: a galleon image version or any OCI image."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            exactly_one_rule(("imageVersion", "image"), SOURCE_MESSAGE)
        )
    }

    image_version: ImageVersionSource | None = Field(
        default=None, description="A version of an ImageDefinition (resolved when a build starts)."
    )
    image: TemplateImageSource | None = Field(
        default=None, description="Any OCI image (resolved to a digest when a build starts)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TemplateSource:
        check_exactly_one((self.image_version, self.image), SOURCE_MESSAGE)
        return self


# -- the distribution --------------------------------------------------------------


class Versioning(SpecModel):
    """Which version a build publishes."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "(self.scheme == 'Explicit') == has(self.version)",
                EXPLICIT_VERSION_MESSAGE,
                field_path=".version",
            ),
            cel("!has(self.major) || self.scheme == 'Latest'", MAJOR_MESSAGE, field_path=".major"),
        )
    }

    scheme: VersioningScheme = Field(
        default="Latest",
        description="Latest: the next patch of the definition's highest version (of `major`, "
        "when set; MAJOR.0.0 when it has none of that major, 1.0.0 when it has none at all); "
        "Source: the source image version's own version (source.imageVersion only); "
        "Explicit: `version`.",
    )
    major: int | None = Field(
        default=None,
        ge=0,
        le=2**31 - 1,
        description="Latest only: the major version to publish under (default: the highest).",
    )
    version: str | None = Field(
        default=None,
        max_length=VERSION_MAX,
        description="Explicit only (and required then): the MAJOR.MINOR.PATCH to publish.",
        json_schema_extra=validations(cel(f"self.matches(r'{VERSION_PATTERN}')", VERSION_MESSAGE)),
    )

    @field_validator("version")
    @classmethod
    def _semantic_version(cls, version: str | None) -> str | None:
        return None if version is None else check_pattern(version, VERSION_PATTERN, VERSION_MESSAGE)

    @model_validator(mode="after")
    def _members_of_scheme(self) -> Versioning:
        if (self.scheme == "Explicit") != (self.version is not None):
            raise ValueError(EXPLICIT_VERSION_MESSAGE)
        if self.major is not None and self.scheme != "Latest":
            raise ValueError(MAJOR_MESSAGE)
        return self


class Distribution(SpecModel):
    """Where a build's image is published: a new ImageVersion of an image definition."""

    image_definition_name: str = Field(
        max_length=NAME_MAX,
        pattern=DNS_SUBDOMAIN_PATTERN,
        description="ImageDefinition (the template's namespace) the new version belongs to.",
    )
    versioning: Versioning = Field(
        default_factory=Versioning,
        description="Which version each build publishes.",
        json_schema_extra=object_default(Versioning),
    )
    publishing_profile: PublishingProfile = Field(
        description="Target regions and replica counts of each new ImageVersion."
    )


class HTTPGetProbe(SpecModel):
    """An HTTP GET to the validation Pod (any answer from 200 to 399 is Ready)."""

    path: str = Field(default="/", max_length=1024, pattern=r"^/[^\s]*$", description="Path.")
    port: int = Field(ge=1, le=65535, description="Port of the container.")


class TCPSocketProbe(SpecModel):
    """A TCP connection to the validation Pod."""

    port: int = Field(ge=1, le=65535, description="Port of the container.")


class ExecProbe(SpecModel):
    """A command run in the validation Pod's container (exit 0 is Ready)."""

    command: list[Annotated[str, Field(max_length=ARGUMENT_MAX)]] = Field(
        min_length=1, max_length=MAX_COMMAND, description="Command and arguments."
    )


class ReadinessProbe(SpecModel):
    """When the validation Pod counts as Ready: exactly one probe."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            exactly_one_rule(("httpGet", "tcpSocket", "exec"), PROBE_MESSAGE)
        )
    }

    http_get: HTTPGetProbe | None = Field(default=None, description="An HTTP GET.")
    tcp_socket: TCPSocketProbe | None = Field(default=None, description="A TCP connection.")
    exec: ExecProbe | None = Field(default=None, description="A command.")
    period_seconds: int = Field(default=2, ge=1, le=300, description="Seconds between probes.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ReadinessProbe:
        check_exactly_one((self.http_get, self.tcp_socket, self.exec), PROBE_MESSAGE)
        return self


class PodReadyCheck(SpecModel):
    """The built image runs as a Pod on the home region's nodes (its own entrypoint and
    command) and must turn Ready."""

    readiness_probe: ReadinessProbe | None = Field(
        default=None,
        description="When the Pod is Ready (default: once its container runs).",
    )


TOLERATION_MESSAGE = 'a toleration with operator "Exists" has no value; one with "Equal" has a key'


class Toleration(SpecModel):
    """A taint the validation Pods tolerate (Kubernetes' Toleration), e.g. of a node
    pool kept for validation."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "(has(self.operator) && self.operator == 'Exists') "
                "? (!has(self.value) || self.value == '') : (has(self.key) && self.key != '')",
                TOLERATION_MESSAGE,
            )
        )
    }

    key: str = Field(
        default="",
        max_length=317,
        pattern=r"^([A-Za-z0-9][-A-Za-z0-9_.]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$|^$",
        description="Taint key (empty with operator Exists: every taint).",
    )
    operator: Literal["Exists", "Equal"] = Field(default="Equal", description="Exists or Equal.")
    value: str = Field(default="", max_length=63, description="Taint value (Equal).")
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(
        default="", description="Taint effect (empty: every effect)."
    )

    @model_validator(mode="after")
    def _operator_fits(self) -> Toleration:
        if (self.operator == "Exists" and self.value) or (
            self.operator == "Equal" and not self.key
        ):
            raise ValueError(TOLERATION_MESSAGE)
        return self


class Validation(SpecModel):
    """Checks of the built image before it is published: each runs as a Pod of the
    image on a node of the gallery's home region, in the template's namespace."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel("has(self.podReady) || has(self.command)", CHECK_MESSAGE)
        )
    }

    pod_ready: PodReadyCheck | None = Field(
        default=None, description="The image must boot: its Pod must turn Ready."
    )
    command: list[Annotated[str, Field(max_length=ARGUMENT_MAX)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_COMMAND,
        description="A command run in a Pod of the image (replacing its entrypoint) that must "
        "exit 0, e.g. [/bin/sh, -c, 'test -f /etc/motd'].",
    )
    timeout: str = duration_field(
        "PT10M",
        "How long each check may take, pulling the image included, ISO 8601.",
        maximum=VALIDATION_TIMEOUT_MAX_SECONDS,
        maximum_message=VALIDATION_TIMEOUT_MAX_MESSAGE,
    )
    tolerations: list[Toleration] = Field(
        default_factory=list,
        max_length=16,
        description="Taints of the home region's nodes the validation Pods tolerate.",
    )
    continue_distribute_on_failure: bool = Field(
        default=False,
        description="Publish the image even when a check fails (the build then says so in "
        "its Validated condition); by default a failed check publishes nothing.",
    )

    @field_validator("timeout")
    @classmethod
    def _iso_duration(cls, value: str) -> str:
        if not is_iso8601_duration(value):
            raise ValueError(f"{DURATION_MESSAGE}; got {value!r}")
        if duration_seconds(value) > VALIDATION_TIMEOUT_MAX_SECONDS:
            raise ValueError(f"{VALIDATION_TIMEOUT_MAX_MESSAGE}; got {value!r}")
        return value

    @model_validator(mode="after")
    def _a_check(self) -> Validation:
        if self.pod_ready is None and self.command is None:
            raise ValueError(CHECK_MESSAGE)
        return self


class Triggers(SpecModel):
    """When galleon starts a build by itself (besides the template's creation and each
    change of its spec)."""

    source_image_update: bool = Field(
        default=False,
        description="Build again when the source definition gets a newer latest version "
        f"(source.imageVersion with version latest only). Switched off, with the condition "
        f"TriggersSuspended, after {FAILED_BUILDS_TO_SUSPEND} failed builds in a row, until "
        "a build succeeds or the spec changes.",
    )


# -- the spec ----------------------------------------------------------------------


SPEC_RULES = (
    cel(
        "!has(self.distribute.versioning) || self.distribute.versioning.scheme != 'Source' "
        "|| has(self.source.imageVersion)",
        SOURCE_SCHEME_MESSAGE,
        field_path=".distribute.versioning.scheme",
    ),
    cel(
        "!has(self.distribute.versioning) || self.distribute.versioning.scheme != 'Source' "
        "|| !has(self.source.imageVersion) || has(self.source.imageVersion.namespace) "
        "|| self.source.imageVersion.imageDefinitionName != self.distribute.imageDefinitionName",
        SOURCE_SAME_DEFINITION_MESSAGE,
        field_path=".distribute.imageDefinitionName",
    ),
    cel(
        "!has(self.triggers) || !has(self.triggers.sourceImageUpdate) "
        "|| !self.triggers.sourceImageUpdate || (has(self.source.imageVersion) "
        "&& (!has(self.source.imageVersion.version) "
        "|| self.source.imageVersion.version == 'latest'))",
        TRIGGER_SOURCE_MESSAGE,
        field_path=".triggers.sourceImageUpdate",
    ),
)
"""Rules across the spec's fields (validate will add its own here)."""


class ImageTemplateSpec(SpecModel):
    """Desired state of an ImageTemplate. The template's own name is a DNS label of at
    most 63 characters: the galleon.dev/template label of its builds."""

    model_config = SpecModel.model_config | {"json_schema_extra": validations(*SPEC_RULES)}

    source: TemplateSource = Field(description="The image each build starts from.")
    customize: list[CustomizeStep] = Field(
        min_length=1,
        max_length=MAX_STEPS,
        description="Steps applied in order, each one layer (File, Archive, Layer) or one edit "
        "of the image config; the same steps over the same source give the same image.",
        json_schema_extra=list_map("name") | validations(distinct_names_rule(STEP_NAMES_MESSAGE)),
    )
    distribute: Distribution = Field(description="Where each build's image is published.")
    build_timeout: str = duration_field(
        "PT4H",
        "How long one build may take before it fails, ISO 8601 (e.g. PT30M).",
        maximum=BUILD_TIMEOUT_MAX_SECONDS,
        maximum_message=BUILD_TIMEOUT_MAX_MESSAGE,
    )
    validate_: Validation | None = Field(
        default=None,
        alias="validate",
        description="Checks of the built image before it is published (none by default).",
    )
    triggers: Triggers = Field(
        default_factory=Triggers,
        description="Builds galleon starts by itself.",
        json_schema_extra=object_default(Triggers),
    )
    history_limit: int = Field(
        default=10,
        ge=1,
        le=HISTORY_LIMIT_MAX,
        description="Finished ImageBuilds kept (the oldest are deleted; the ImageVersions they "
        "published stay).",
    )

    @field_validator("customize")
    @classmethod
    def _distinct_steps(cls, steps: list[CustomizeStep]) -> list[CustomizeStep]:
        check_distinct_names([step.name for step in steps], STEP_NAMES_MESSAGE)
        return steps

    @field_validator("build_timeout")
    @classmethod
    def _iso_duration(cls, value: str) -> str:
        if not is_iso8601_duration(value):
            raise ValueError(f"{DURATION_MESSAGE}; got {value!r}")
        if duration_seconds(value) > BUILD_TIMEOUT_MAX_SECONDS:
            raise ValueError(f"{BUILD_TIMEOUT_MAX_MESSAGE}; got {value!r}")
        return value

    @model_validator(mode="after")
    def _versioning_fits_source(self) -> ImageTemplateSpec:
        scheme = self.distribute.versioning.scheme
        source = self.source.image_version
        if scheme == "Source" and source is None:
            raise ValueError(SOURCE_SCHEME_MESSAGE)
        if (
            scheme == "Source"
            and source is not None
            and source.namespace is None
            and source.image_definition_name == self.distribute.image_definition_name
        ):
            raise ValueError(SOURCE_SAME_DEFINITION_MESSAGE)
        if self.triggers.source_image_update and (source is None or source.version != LATEST):
            raise ValueError(TRIGGER_SOURCE_MESSAGE)
        return self


def check_name(name: str) -> str:
    """The model's twin of `METADATA_RULES`: `name`, unless a template may not be called so.

    >>> check_name("hardened-ubuntu")
    'hardened-ubuntu'
    >>> check_name("Hardened")
    Traceback (most recent call last):
    ...
    ValueError: an ImageTemplate's name must be a DNS label of at most 63 characters ...
    """
    if len(name) > TEMPLATE_NAME_MAX or not re.fullmatch(DNS_LABEL_PATTERN, name):
        raise ValueError(NAME_MESSAGE)
    return name


# -- the status --------------------------------------------------------------------


class LastBuild(StatusModel):
    """The template's most recent ImageBuild."""

    name: str = Field(max_length=NAME_MAX, description="Name of the ImageBuild.")
    phase: BuildPhase | None = Field(
        default=None,
        description="Its phase: Pending, Resolving, Building, Pushing, Validating, "
        "Publishing, Succeeded or Failed.",
    )
    output_digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Digest of the image it built, once pushed.",
    )
    version: str | None = Field(
        default=None, max_length=VERSION_MAX, description="Version it published, once known."
    )


class ImageTemplateStatus(StatusModel):
    """Observed state of an ImageTemplate."""

    observed_generation: int | None = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    last_build: LastBuild | None = Field(default=None, description="The most recent build.")
    builds: int | None = Field(
        default=None,
        ge=0,
        description="ImageBuilds of this template that exist (at most historyLimit finished "
        "ones, plus one running).",
    )
    latest_output_digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Digest of the image of the latest successful build.",
    )
    triggered_generation: int | None = Field(
        default=None,
        ge=0,
        description="metadata.generation galleon last created a build for (0: none yet).",
    )
    triggered_source_digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Source digest galleon last created a build for (source-update trigger).",
    )
    failed_builds_in_a_row: int = Field(
        default=0, ge=0, description="Finished builds that failed since the last success."
    )
    counted_build: str | None = Field(
        default=None,
        max_length=NAME_MAX,
        description="Newest finished build counted in failedBuildsInARow.",
    )
