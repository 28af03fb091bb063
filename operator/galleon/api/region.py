"""`Region` (cluster-scoped): where instances run and where image replicas are stored.

A region is the set of nodes labelled `topology.kubernetes.io/region=<name>` (or
the region's own node selector) plus the OCI registries that hold image replicas
in that region, one registry per replica location.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator

from galleon.api import registry_hosts
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
    check_label_keys,
    conditions_field,
    label_map_field,
    list_map,
    observed_generation_field,
    validations,
)
from galleon.api.common import Condition as Condition

REGION_LABEL = "topology.kubernetes.io/region"
"""The well-known node label naming a node's region."""

NAME_MESSAGE = (
    f"a Region's name must be a DNS label of at most {LABEL_NAME_MAX} characters (lower case "
    "letters, digits and '-'): it is the value of its nodes' region label and what "
    "targetRegions and a ScaleSet's region name"
)
METADATA_RULES = (
    cel(
        f"size(self.metadata.name) <= {LABEL_NAME_MAX} "
        f"&& self.metadata.name.matches(r'{DNS_LABEL_PATTERN}')",
        NAME_MESSAGE,
    ),
)
"""CEL rules on the whole object (only a root rule may read metadata.name)."""


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


URL_MESSAGE = (
    'url must be a URL starting with "https://" or "http://", with a host name of at most 253 '
    "characters, e.g. https://reg.example.com"
)


class RegistryEndpoint(SpecModel):
    """One registry replica location of the region."""

    model_config = SpecModel.model_config | {
        "json_schema_extra": validations(
            cel(
                "(self.url.startsWith('https://') || self.url.startsWith('http://')) "
                "&& isURL(self.url) && url(self.url).getHostname() != '' "
                f"&& size(url(self.url).getHostname()) <= {NAME_MAX}",
                URL_MESSAGE,
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
        "http:// only for local registries. Its host must not be a link-local, "
        "metadata-service or unspecified address, nor a non-canonical numeric one.",
        json_schema_extra=validations(
            *registry_hosts.cel_rules(
                registry_hosts.URL_AUTHORITY, registry_hosts.URL_APPLIES, registry_hosts.URL_SUBJECT
            )
        ),
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

    @field_validator("url")
    @classmethod
    def _http_or_https(cls, url: str) -> str:
        try:
            host = urlsplit(url).hostname
        except ValueError:  # e.g. "http://[::1": not a URL at all
            host = None
        scheme_ok = url.startswith(("https://", "http://"))
        if not scheme_ok or not host or len(host) > NAME_MAX or any(c.isspace() for c in url):
            raise ValueError(URL_MESSAGE)
        registry_hosts.check(registry_hosts.url_authority(url), registry_hosts.URL_SUBJECT)
        return url


def endpoints_of(
    spec: Mapping[str, Any],
) -> tuple[tuple[RegistryEndpoint, ...], tuple[str, ...]]:
    """The registries of a Region's `spec` that pass the model's rules, and why each
    other one does not: a Region stored before a rule the API server now enforces
    (e.g. a link-local URL) is reported, never raised on at every pass.

    >>> good, bad = endpoints_of({"registries": [
    ...     {"name": "a", "url": "http://10.0.0.5:5000"},
    ...     {"name": "b", "url": "http://169.254.169.254"}]})
    >>> [e.name for e in good], bad[0][:30]
    (['a'], 'registry b: 1 validation error')
    """
    usable, refused = [], []
    for index, raw in enumerate(spec.get("registries") or []):
        try:
            usable.append(RegistryEndpoint.model_validate(raw))
        except ValidationError as error:
            name = raw.get("name") if isinstance(raw, Mapping) else None
            refused.append(f"registry {name or index}: {str(error)[:300]}")
    return tuple(usable), tuple(refused)


class RegionReplication(SpecModel):
    """Who copies image versions into the region's registries."""

    copied_by: Literal["Operator", "RegionAgent"] = Field(
        default="Operator",
        description="Operator: the operator streams each replica's bytes from the source "
        "(simple; every replica crosses the link into the region). RegionAgent: the "
        "region's replication agent (galleon-region-agent, running on the region's nodes) "
        "pulls the image from the source once and writes every replica of the region "
        "over the region's own network; the operator hands it a ReplicationTask per copy "
        "and reads its progress. Without a running agent, copies wait and are retried.",
    )


class RegionSpec(SpecModel):
    """Desired state of a Region. The Region's own name is a DNS label of at most 63
    characters: its nodes' region label value."""

    display_name: str | None = Field(
        default=None, max_length=256, description='Human-friendly name, e.g. "East US 2".'
    )
    node_selector: dict[str, LabelValue] = label_map_field(
        "Labels selecting the region's nodes (default: "
        "topology.kubernetes.io/region=<region name>).",
        max_items=16,
    )
    registries: list[RegistryEndpoint] = Field(
        default_factory=list,
        max_length=MAX_REPLICAS_PER_REGION,
        description="Registry replica locations of the region; an image version keeps at "
        "most one replica in each.",
        json_schema_extra=list_map("name"),
    )
    replication: RegionReplication = Field(
        default_factory=RegionReplication,
        description="Who copies image versions into the region (default: the operator).",
    )

    @field_validator("node_selector")
    @classmethod
    def _label_keys(cls, labels: dict[str, str]) -> dict[str, str]:
        check_label_keys(labels)
        return labels


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
