"""`ReplicationTask` (namespaced, in the operator's namespace): one copy of an image
version into some of one region's registries, handed by the operator to that region's
replication agent (a Region with `spec.replication.copiedBy: RegionAgent`).

The agent runs in the region (`galleon-region-agent`, on the region's nodes): it pulls
the image from the source once and writes it to the region's registries over the
region's own network, so the bytes cross the link into the region once however many
replicas it holds. The operator creates a task per copy attempt, reads its progress
into the ImageVersion's status, and deletes it once it has taken the outcome.

Rules of this kind:
- The spec names things, never addresses or credentials: the ImageVersion (by
  namespace, name and UID), the region and its registries by name. The agent reads
  the source from the ImageVersion and the registries' URLs and credentials from the
  Region, so a task can only copy what the operator would copy.
- Only the operator writes the spec (its namespace is not the tenants'); only the
  agent writes the status. `spec.attempt` grows with each new attempt of the same copy;
  the agent answers the generation it took in `status.observedGeneration`.
- The status says what each registry's copy came to, with the outcome's reason and
  whether it is permanent (the operator retries only transient failures).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from galleon.api.common import (
    DNS_LABEL_PATTERN,
    DNS_SUBDOMAIN_PATTERN,
    LABEL_NAME_MAX,
    MAX_REPLICAS_PER_REGION,
    NAME_MAX,
    REASON_MAX,
    SpecModel,
    StatusModel,
    list_map,
    observed_generation_field,
)
from galleon.api.imageversion import DIGEST_MAX, DIGEST_PATTERN

REPOSITORY_MAX = 255
"""The longest repository name the distribution registry accepts."""
MAX_TAGS = 8
TAG_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
"""The OCI distribution spec's tag grammar."""
TASK_MESSAGE_MAX = 1024
RegistryName = Annotated[str, Field(max_length=LABEL_NAME_MAX, pattern=DNS_LABEL_PATTERN)]
Tag = Annotated[str, Field(max_length=128, pattern=TAG_PATTERN)]


class ImageVersionReference(SpecModel):
    """The ImageVersion a task copies, by namespace, name and UID (a version deleted
    and created again under the same name is another version)."""

    namespace: str = Field(
        max_length=LABEL_NAME_MAX, pattern=DNS_LABEL_PATTERN, description="Its namespace."
    )
    name: str = Field(max_length=NAME_MAX, pattern=DNS_SUBDOMAIN_PATTERN, description="Its name.")
    uid: str = Field(
        max_length=64, pattern=r"^[0-9a-fA-F-]{1,64}$", description="Its metadata.uid."
    )


class ReplicationTaskSpec(SpecModel):
    """One copy of a version into registries of one region."""

    image_version: ImageVersionReference = Field(description="The version to copy.")
    region: str = Field(
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description="The Region whose agent copies (its registries' URLs and credentials).",
    )
    registries: list[RegistryName] = Field(
        min_length=1,
        max_length=MAX_REPLICAS_PER_REGION,
        description="The region's registries (by name) to copy into.",
    )
    digest: str = Field(
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="The source digest, as the version's status records it.",
    )
    repository: str = Field(
        max_length=REPOSITORY_MAX, description="The repository in each registry."
    )
    tags: list[Tag] = Field(
        default_factory=list, max_length=MAX_TAGS, description="Tags to set on each copy."
    )
    attempt: int = Field(
        default=1, ge=1, description="Which attempt of this copy (grows on each retry)."
    )


TaskReplicaState = Literal["Queued", "Replicating", "Completed", "Failed"]


class TaskReplicaStatus(StatusModel):
    """What one registry's copy came to."""

    registry: str = Field(max_length=LABEL_NAME_MAX, description="The registry's name.")
    state: TaskReplicaState = Field(description="Queued, Replicating, Completed or Failed.")
    bytes_done: int = Field(default=0, ge=0, description="Bytes present so far.")
    bytes_total: int = Field(default=0, ge=0, description="Bytes of every blob of the image.")
    bytes_copied: int = Field(default=0, ge=0, description="Bytes sent by this attempt.")
    bytes_skipped: int = Field(
        default=0, ge=0, description="Bytes already there or mounted from another repository."
    )
    digest: str | None = Field(
        default=None,
        max_length=DIGEST_MAX,
        pattern=DIGEST_PATTERN,
        description="Digest of the copy, once Completed.",
    )
    reason: str = Field(default="", max_length=REASON_MAX, description="Why it Failed.")
    message: str = Field(default="", max_length=TASK_MESSAGE_MAX, description="What went wrong.")
    permanent: bool = Field(
        default=False, description="Whether the failure needs a human (else it is retried)."
    )


class ReplicationTaskStatus(StatusModel):
    """What the region's agent did with the task."""

    observed_generation: int | None = observed_generation_field()
    phase: Literal["Running", "Done"] | None = Field(
        default=None, description="Running while the agent copies; Done once every copy ended."
    )
    agent: str = Field(default="", max_length=NAME_MAX, description="The agent that took it.")
    start_time: datetime | None = Field(default=None, description="When the agent took it.")
    heartbeat_time: datetime | None = Field(
        default=None, description="The agent's last word on it (written while it copies)."
    )
    replicas: list[TaskReplicaStatus] = Field(
        default_factory=list,
        max_length=MAX_REPLICAS_PER_REGION,
        description="Each registry's copy.",
        json_schema_extra=list_map("registry"),
    )
