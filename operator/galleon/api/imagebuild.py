"""`ImageBuild`: one run of an ImageTemplate, from resolving its source to publishing
the new ImageVersion.

Rules of this module:
- The spec says only which template, which of its generations and why; it is
  immutable once created (a different build is a new ImageBuild).
- The status is the build's record: what went in (each input's digest), what each
  step produced and what came out, so a build can be explained and reproduced. A
  digest in status is always `sha256:` and 64 hex digits (`DIGEST_PATTERN`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from galleon.api.common import (
    DNS_LABEL_PATTERN,
    IMAGE_REFERENCE_MAX,
    LABEL_NAME_MAX,
    MESSAGE_MAX,
    NAME_MAX,
    VERSION_MAX,
    Condition,
    SpecModel,
    StatusModel,
    cel,
    conditions_field,
    list_map,
    observed_generation_field,
    validations,
)
from galleon.api.customize import MAX_STEPS, STEP_NAME_MAX, StepType
from galleon.api.imageversion import DIGEST_MAX, DIGEST_PATTERN

SPEC_IMMUTABLE_MESSAGE = (
    "spec is immutable: it must not change once the build is created (create another "
    "ImageBuild instead)"
)
BuildPhase = Literal[
    "Pending",
    "Resolving",
    "Building",
    "Pushing",
    "Validating",
    "Publishing",
    "Succeeded",
    "Failed",
]
"""Where a build stands (also what a template's status.lastBuild.phase reports)."""
BuildReason = Literal["Manual", "Created", "TemplateUpdate", "SourceImageUpdate"]
StepPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped"]
INPUT_NAME_MAX = 128
MAX_INPUTS = MAX_STEPS + 1
"""The source and at most one input per step (a File's or Archive's bytes, a Layer's image)."""
STEP_MESSAGE_MAX = 4096
GENERATION_MAX = 2**53 - 1
"""Largest generation written (metadata.generation is an int64, but a CRD's `maximum`
is a JSON number, exact only up to 2**53)."""


class ImageBuildSpec(SpecModel):
    """Desired state of an ImageBuild: which template to build, and why."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(cel("self == oldSelf", SPEC_IMMUTABLE_MESSAGE))
    }

    template_name: str = Field(
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="ImageTemplate (same namespace) to build; a template's name is a DNS label.",
    )
    template_generation: int | None = Field(
        default=None,
        ge=1,
        le=GENERATION_MAX,
        description="metadata.generation of the template this build was made from (galleon "
        "sets it on the builds it creates; a manual build may leave it out to build the "
        "template's current spec).",
    )
    reason: BuildReason = Field(
        default="Manual",
        description="Why the build exists: Manual (a user created it), Created (the "
        "template's first build), TemplateUpdate (its spec changed), SourceImageUpdate (its "
        "source definition has a newer latest version).",
    )


class PublishedVersion(StatusModel):
    """The ImageVersion a build created."""

    name: str = Field(max_length=NAME_MAX, description="Name of the ImageVersion.")
    version: str = Field(max_length=VERSION_MAX, description="Its MAJOR.MINOR.PATCH.")


class BuildStepStatus(StatusModel):
    """What one customization step did in this build."""

    name: str = Field(max_length=STEP_NAME_MAX, description="Name of the step in the template.")
    type: StepType = Field(description="Type of the step (File, Archive, Layer, ...).")
    phase: StepPhase = Field(
        default="Pending", description="Pending, Running, Succeeded, Failed or Skipped."
    )
    duration_seconds: float | None = Field(
        default=None, ge=0, description="How long the step took, in seconds."
    )
    layer_digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Digest of the layer it produced (File, Archive); a Layer step's first "
        "added layer's; none for a config edit.",
    )
    size_bytes: int | None = Field(
        default=None, ge=0, description="Bytes of the layers it added (as pushed, compressed)."
    )
    message: str = Field(
        default="",
        max_length=STEP_MESSAGE_MAX,
        description="What it did or why it failed (never a file's content).",
    )


CheckName = Literal["podReady", "command"]
OUTPUT_MAX = 4096


class ValidationResult(StatusModel):
    """One check of the built image and how it went."""

    name: CheckName = Field(description="podReady or command.")
    phase: StepPhase = Field(
        default="Pending", description="Pending, Running, Succeeded, Failed or Skipped."
    )
    pod: str | None = Field(default=None, max_length=NAME_MAX, description="The check's Pod.")
    node: str | None = Field(default=None, max_length=NAME_MAX, description="Node it ran on.")
    duration_seconds: float | None = Field(
        default=None, ge=0, description="From the Pod's creation to the check's end."
    )
    message: str = Field(
        default="", max_length=STEP_MESSAGE_MAX, description="What happened (exit code, reason)."
    )
    output: str = Field(
        default="",
        max_length=OUTPUT_MAX,
        description="The end of the container's log, when the check failed.",
    )


class BuildInput(StatusModel):
    """One input of the build and the digest it had, for provenance."""

    name: str = Field(
        max_length=INPUT_NAME_MAX,
        description='"source" for the source image, else the name of the step it fed.',
    )
    digest: str = Field(
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="sha256 of the input: an image's manifest digest, a file's or archive's bytes.",
    )


class ImageBuildStatus(StatusModel):
    """Observed state of an ImageBuild."""

    observed_generation: int | None = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    phase: BuildPhase | None = Field(
        default=None,
        description="Pending, Resolving (source and inputs to digests), Building (the layers), "
        "Pushing (to the staging image), Validating (the template's checks), Publishing (the "
        "ImageVersion), Succeeded or Failed.",
    )
    start_time: datetime | None = Field(default=None, description="When the build started.")
    completion_time: datetime | None = Field(
        default=None, description="When it succeeded or failed."
    )
    template_generation: int | None = Field(
        default=None, ge=1, le=GENERATION_MAX, description="Generation of the template built."
    )
    source: str | None = Field(
        default=None,
        max_length=IMAGE_REFERENCE_MAX,
        description="Where the source was read: host/repository@digest (and, for a gallery "
        "version, which one).",
    )
    source_digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Digest the source image resolved to.",
    )
    output_digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Digest of the built image's manifest.",
    )
    staging_image: str | None = Field(
        default=None,
        max_length=IMAGE_REFERENCE_MAX,
        description="Reference the built image was pushed to, the new ImageVersion's source.",
    )
    image_version: PublishedVersion | None = Field(
        default=None, description="The ImageVersion the build published."
    )
    steps: list[BuildStepStatus] = Field(
        default_factory=list,
        max_length=MAX_STEPS,
        description="Each customization step, in the template's order.",
        json_schema_extra=list_map("name"),
    )
    validation: list[ValidationResult] = Field(
        default_factory=list,
        max_length=2,
        description="Each check of template's validate, in order (podReady, command).",
        json_schema_extra=list_map("name"),
    )
    inputs: list[BuildInput] = Field(
        default_factory=list,
        max_length=MAX_INPUTS,
        description="Each input's digest (the source, then each step's bytes or image).",
        json_schema_extra=list_map("name"),
    )
    message: str = Field(
        default="", max_length=MESSAGE_MAX, description="Why the build is in its phase."
    )
