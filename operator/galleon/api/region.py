"""`Region` (cluster-scoped): where instances run and where image replicas are stored.

A region is the set of nodes labelled `topology.kubernetes.io/region=<name>` (or
the region's own node selector) plus the OCI registries that hold image replicas
in that region, one registry per replica location.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import Field

from galleon.api.common import (
    DNS_LABEL_PATTERN,
    LABEL_NAME_MAX,
    MAX_REPLICAS_PER_REGION,
    NAME_MAX,
    LabelValue,
    SecretReference,
    SpecModel,
    StatusModel,
    cel,
    conditions_field,
    list_map,
    observed_generation_field,
    validations,
)
from galleon.api.common import Condition as Condition

REGION_LABEL = "topology.kubernetes.io/region"
"""The well-known node label naming a node's region."""


def node_selector(spec: Mapping[str, Any], region: str) -> dict[str, str]:
    """The labels of the region's nodes: its `nodeSelector`, else the region label.

    >>> node_selector({}, "eastus")
    {'topology.kubernetes.io/region': 'eastus'}
    >>> node_selector({"nodeSelector": {"pool": "east"}}, "eastus")
    {'pool': 'east'}
    """
    return dict(spec.get("nodeSelector") or {}) or {REGION_LABEL: region}


class RegistryTLS(SpecModel):
    """How to reach a Region's registry over TLS (an ImageVersion's source has
    `SourceTLS`, whose CA Secret must be in the version's namespace)."""

    insecure_skip_verify: bool = Field(
        default=False, description="Accept any server certificate (testing only)."
    )
    ca_secret_ref: SecretReference | None = Field(
        default=None,
        description="Secret whose key `ca.crt` holds the CA bundle to trust (default namespace: "
        "the operator's).",
    )


class RegistryEndpoint(SpecModel):
    """One registry replica location of the region."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "self.url.startsWith('https://') || self.url.startsWith('http://')",
                'url must start with "https://" or "http://"',
                field_path=".url",
            )
        )
    }

    name: str = Field(
        max_length=LABEL_NAME_MAX,
        pattern=DNS_LABEL_PATTERN,
        description='Name of this replica location, unique in the region (e.g. "a").',
    )
    url: str = Field(
        max_length=512,
        description="Base URL of the registry, e.g. https://registry.eastus2.example.com; "
        "http:// only for local registries.",
    )
    credentials_secret_ref: SecretReference | None = Field(
        default=None, description="Secret with the credentials galleon pushes and pulls with."
    )
    tls: RegistryTLS | None = Field(default=None, description="TLS settings for https URLs.")
    pull_secret_name: str | None = Field(
        default=None,
        max_length=NAME_MAX,
        description="Image pull Secret that instances in this region use for this registry "
        "(must exist in the ScaleSet's namespace).",
    )


class RegionSpec(SpecModel):
    """Desired state of a Region."""

    display_name: str | None = Field(
        default=None, max_length=256, description='Human-friendly name, e.g. "East US 2".'
    )
    node_selector: dict[str, LabelValue] = Field(
        default_factory=dict,
        max_length=16,
        description="Labels selecting the region's nodes (default: "
        "topology.kubernetes.io/region=<region name>).",
    )
    registries: list[RegistryEndpoint] = Field(
        default_factory=list,
        max_length=MAX_REPLICAS_PER_REGION,
        description="Registry replica locations of the region; an image version keeps at "
        "most one replica in each.",
        json_schema_extra=list_map("name"),
    )


class RegistryStatus(StatusModel):
    """What the last check of one registry replica found."""

    name: str = Field(max_length=LABEL_NAME_MAX, description="Replica location name.")
    url: str = Field(max_length=512, description="Base URL that was checked.")
    reachable: bool = Field(description="Whether GET /v2/ answered as a registry.")
    last_checked: datetime | None = Field(default=None, description="When it was checked.")
    message: str = Field(default="", max_length=1024, description="Why it is unreachable.")


class RegionStatus(StatusModel):
    """Observed state of a Region."""

    observed_generation: int | None = observed_generation_field()
    conditions: list[Condition] = conditions_field()
    nodes: int | None = Field(default=None, ge=0, description="Nodes matching the selector.")
    ready_nodes: int | None = Field(default=None, ge=0, description="Of those, nodes Ready.")
    registries: list[RegistryStatus] = Field(
        default_factory=list,
        max_length=MAX_REPLICAS_PER_REGION,
        description="Reachability of each registry replica location.",
        json_schema_extra=list_map("name"),
    )
    reachable_registries: int | None = Field(
        default=None, ge=0, description="Registry replica locations that answered."
    )
    total_registries: int | None = Field(
        default=None, ge=0, description="Registry replica locations configured."
    )
