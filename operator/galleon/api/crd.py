"""The CustomResourceDefinitions of galleon, generated from the pydantic models.

`hack/gen_crds.py` writes `render_all()` into `crds/`; a unit test fails when the
files there differ from what the models generate, so the two never drift.

`KINDS` is every kind galleon serves: the replication and rollout kinds (Region,
Gallery, ImageDefinition, ImageVersion, ScaleSet), the image builder's
(ImageTemplate, ImageBuild) and the region agents' ReplicationTask. Each is also in
crds/ and the chart's copy (`make crds`), docs/reference.md, `galleon.kube.resources`,
the chart's RBAC and, where it has conditions, an Argo CD health check
(helm/galleon/argocd/) or a reason for none (tests/unit/test_argocd_health.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from galleon import GROUP, VERSION
from galleon.api.gallery import GallerySpec, GalleryStatus
from galleon.api.imagebuild import ImageBuildSpec, ImageBuildStatus
from galleon.api.imagedefinition import ImageDefinitionSpec, ImageDefinitionStatus
from galleon.api.imagetemplate import METADATA_RULES as IMAGETEMPLATE_METADATA_RULES
from galleon.api.imagetemplate import ImageTemplateSpec, ImageTemplateStatus
from galleon.api.imageversion import ImageVersionSpec, ImageVersionStatus
from galleon.api.region import METADATA_RULES as REGION_METADATA_RULES
from galleon.api.region import RegionSpec, RegionStatus
from galleon.api.replicationtask import ReplicationTaskSpec, ReplicationTaskStatus
from galleon.api.scaleset import METADATA_RULES as SCALESET_METADATA_RULES
from galleon.api.scaleset import ScaleSetSpec, ScaleSetStatus
from galleon.api.schema import VALIDATIONS, structural_schema

CATEGORY = "galleon"


def ready_column() -> dict[str, Any]:
    return column(
        "Ready",
        "string",
        '.status.conditions[?(@.type=="Ready")].status',
        "Whether the resource is Ready.",
    )


def column(name: str, type_: str, path: str, description: str, priority: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "type": type_,
        "jsonPath": path,
        "description": description,
    }
    if priority:
        entry["priority"] = priority
    return entry


AGE = column("Age", "date", ".metadata.creationTimestamp", "Time since creation.")


@dataclass(frozen=True)
class Kind:
    """One galleon resource kind and how its CRD presents it."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    scope: Literal["Namespaced", "Cluster"]
    spec: type[BaseModel]
    status: type[BaseModel]
    description: str
    columns: tuple[dict[str, Any], ...]
    scale: bool = False
    metadata_rules: tuple[dict[str, str], ...] = ()
    """CEL rules of the whole object: the only place a rule may read metadata.name."""
    internal: bool = False
    """Written by galleon alone (the operator and its agents), in the operator's
    namespace: no role for people grants it."""

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def name(self) -> str:
        return f"{self.plural}.{GROUP}"


KINDS: tuple[Kind, ...] = (
    Kind(
        kind="Region",
        plural="regions",
        short_names=("gregion",),
        scope="Cluster",
        spec=RegionSpec,
        status=RegionStatus,
        description="A region: the nodes labelled with its name and the OCI registries "
        "holding image replicas there.",
        metadata_rules=REGION_METADATA_RULES,
        columns=(
            column("Nodes", "integer", ".status.nodes", "Nodes in the region."),
            column(
                "Registries",
                "integer",
                ".status.totalRegistries",
                "Registry replica locations configured.",
            ),
            column(
                "Reachable",
                "integer",
                ".status.reachableRegistries",
                "Registry replica locations that answer.",
            ),
            ready_column(),
            AGE,
        ),
    ),
    Kind(
        kind="Gallery",
        plural="galleries",
        short_names=("gal",),
        scope="Namespaced",
        spec=GallerySpec,
        status=GalleryStatus,
        description="A gallery of image definitions, with a home region and a repository "
        "prefix in every region's registries.",
        columns=(
            column("Location", "string", ".spec.location", "Home (source) region."),
            column("Definitions", "integer", ".status.imageDefinitionCount", "Image definitions."),
            column("Versions", "integer", ".status.imageVersionCount", "Image versions."),
            ready_column(),
            AGE,
        ),
    ),
    Kind(
        kind="ImageDefinition",
        plural="imagedefinitions",
        short_names=("imgdef", "idef"),
        scope="Namespaced",
        spec=ImageDefinitionSpec,
        status=ImageDefinitionStatus,
        description="An image (publisher/offer/sku) of a gallery; its status names the "
        "latest version overall and per region.",
        columns=(
            column("Gallery", "string", ".spec.galleryName", "Gallery."),
            column("Publisher", "string", ".spec.identifier.publisher", "Publisher."),
            column("Offer", "string", ".spec.identifier.offer", "Offer."),
            column("SKU", "string", ".spec.identifier.sku", "SKU."),
            column("Latest", "string", ".status.latestVersion", "Latest version overall."),
            ready_column(),
            AGE,
        ),
    ),
    Kind(
        kind="ImageVersion",
        plural="imageversions",
        short_names=("imgver", "iver"),
        scope="Namespaced",
        spec=ImageVersionSpec,
        status=ImageVersionStatus,
        description="An immutable MAJOR.MINOR.PATCH version of an image definition, "
        "replicated to its target regions.",
        columns=(
            column("Definition", "string", ".spec.imageDefinitionName", "Image definition."),
            column("Version", "string", ".spec.version", "Semantic version."),
            column(
                "State",
                "string",
                ".status.replicationStatus.aggregatedState",
                "Aggregated replication state.",
            ),
            column(
                "Regions",
                "string",
                ".status.replicationStatus.completedRegions",
                "Regions completed / targeted.",
            ),
            column("Digest", "string", ".status.sourceDigest", "Source digest.", priority=1),
            AGE,
        ),
    ),
    Kind(
        kind="ScaleSet",
        plural="scalesets",
        short_names=("sset", "vmss"),
        scope="Namespaced",
        spec=ScaleSetSpec,
        status=ScaleSetStatus,
        description="A fleet of instances in one region following an image definition, "
        "upgraded in batches with health gates and rollback.",
        columns=(
            column("Region", "string", ".spec.region", "Region."),
            column("Capacity", "integer", ".spec.capacity", "Instances wanted."),
            column("Ready", "integer", ".status.readyReplicas", "Instances healthy."),
            column("Current", "string", ".status.currentVersion", "Version most instances run."),
            column("Target", "string", ".status.targetVersion", "Version to run."),
            column(
                "Upgrade",
                "string",
                ".status.rollingUpgrade.runningStatus.code",
                "Latest rolling upgrade.",
            ),
            column(
                "Batch",
                "integer",
                ".status.rollingUpgrade.currentBatch",
                "Current batch.",
                priority=1,
            ),
            AGE,
        ),
        scale=True,
        metadata_rules=SCALESET_METADATA_RULES,
    ),
    Kind(
        kind="ImageTemplate",
        plural="imagetemplates",
        short_names=("imgt",),
        scope="Namespaced",
        spec=ImageTemplateSpec,
        status=ImageTemplateStatus,
        description="How to build an image: a source image, customization steps (each a "
        "layer or an image-config edit) and the image definition each build publishes a "
        "version of.",
        metadata_rules=IMAGETEMPLATE_METADATA_RULES,
        columns=(
            column(
                "Definition",
                "string",
                ".spec.distribute.imageDefinitionName",
                "Image definition the builds publish to.",
            ),
            column("Last Build", "string", ".status.lastBuild.name", "Most recent build."),
            column("Phase", "string", ".status.lastBuild.phase", "Phase of the most recent build."),
            column("Version", "string", ".status.lastBuild.version", "Version it published."),
            column("Builds", "integer", ".status.builds", "Builds kept."),
            column(
                "Source",
                "string",
                ".spec.source.imageVersion.imageDefinitionName",
                "Source image definition.",
                priority=1,
            ),
            column("Image", "string", ".spec.source.image.image", "Source image.", priority=1),
            column(
                "Digest",
                "string",
                ".status.latestOutputDigest",
                "Digest of the latest successful build's image.",
                priority=1,
            ),
            ready_column(),
            AGE,
        ),
    ),
    Kind(
        kind="ImageBuild",
        plural="imagebuilds",
        short_names=("imgb",),
        scope="Namespaced",
        spec=ImageBuildSpec,
        status=ImageBuildStatus,
        description="One run of an ImageTemplate: the source resolved, the steps built into "
        "layers, the image pushed and published as a new ImageVersion.",
        columns=(
            column("Template", "string", ".spec.templateName", "Image template."),
            column("Reason", "string", ".spec.reason", "Why the build exists."),
            column("Phase", "string", ".status.phase", "Phase of the build."),
            column("Version", "string", ".status.imageVersion.version", "Version published."),
            column("Started", "date", ".status.startTime", "When the build started.", priority=1),
            column("Completed", "date", ".status.completionTime", "When it ended.", priority=1),
            column("Digest", "string", ".status.outputDigest", "Built image digest.", priority=1),
            AGE,
        ),
    ),
    Kind(
        kind="ReplicationTask",
        plural="replicationtasks",
        short_names=("rtask",),
        scope="Namespaced",
        spec=ReplicationTaskSpec,
        status=ReplicationTaskStatus,
        description="One copy of an image version into registries of one region, handed by "
        "the operator to the region's replication agent (in the operator's namespace).",
        internal=True,
        columns=(
            column("Region", "string", ".spec.region", "Region whose agent copies."),
            column("Version", "string", ".spec.imageVersion.name", "ImageVersion copied."),
            column("Attempt", "integer", ".spec.attempt", "Attempt of this copy."),
            column("Phase", "string", ".status.phase", "Running or Done."),
            column("Agent", "string", ".status.agent", "Agent that took it.", priority=1),
            AGE,
        ),
    ),
)


def openapi_schema(kind: Kind) -> dict[str, Any]:
    """The CRD's `openAPIV3Schema` for `kind`."""
    schema: dict[str, Any] = {
        "type": "object",
        "description": kind.description,
        "required": ["spec"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion of this object."},
            "kind": {"type": "string", "description": "Kind of this object."},
            "metadata": {"type": "object"},
            "spec": structural_schema(kind.spec),
            "status": structural_schema(kind.status),
        },
    }
    if kind.metadata_rules:
        schema[VALIDATIONS] = [dict(rule) for rule in kind.metadata_rules]
    return schema


def render(kind: Kind) -> dict[str, Any]:
    """The whole CustomResourceDefinition for `kind`."""
    subresources: dict[str, Any] = {"status": {}}
    if kind.scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.capacity",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": kind.name,
            "labels": {"app.kubernetes.io/name": "galleon", "app.kubernetes.io/part-of": "galleon"},
        },
        "spec": {
            "group": GROUP,
            "scope": kind.scope,
            "names": {
                "kind": kind.kind,
                "listKind": f"{kind.kind}List",
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": openapi_schema(kind)},
                    "subresources": subresources,
                    "additionalPrinterColumns": list(kind.columns),
                }
            ],
        },
    }


def file_name(kind: Kind) -> str:
    return f"{GROUP}_{kind.plural}.yaml"


def render_all() -> dict[str, dict[str, Any]]:
    """File name → CRD, for every kind.

    >>> sorted(render_all())[:2]
    ['galleon.dev_galleries.yaml', 'galleon.dev_imagebuilds.yaml']
    """
    return {file_name(kind): render(kind) for kind in KINDS}


def kind_named(name: str) -> Kind:
    for kind in KINDS:
        if name in (kind.kind, kind.plural, kind.singular, *kind.short_names):
            return kind
    raise KeyError(name)
