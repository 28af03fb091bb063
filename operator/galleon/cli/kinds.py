"""The kinds `kubectl galleon get` and `status` know, one declarative entry each:
how the kind is named on the command line, what its list and its detail view show,
and when it is done (which decides `status`'s exit code).

Rules of this module: an entry holds no logic of its own, only names, help texts
and pure functions of `galleon.cli.render` and `galleon.cli.outcome`; `main` turns
every entry into the same `get` and `status` commands. Adding a kind to `KINDS`
adds both commands, with the same options as the others.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Namespace, Pod
from rich.console import RenderableType

from galleon import GROUP, VERSION
from galleon.cli import render
from galleon.cli.cluster import Kind
from galleon.cli.outcome import (
    Outcome,
    imagebuild_outcome,
    imageversion_outcome,
    scaleset_outcome,
)
from galleon.cli.render.wide import IMAGEBUILD_WIDE, IMAGEVERSION_WIDE, SCALESET_WIDE
from galleon.kube.resources import Gallery, ImageDefinition, ImageVersion, Region, ScaleSet

SCALESET = Kind(ScaleSet, "scaleset")
IMAGEVERSION = Kind(ImageVersion, "imageversion")
IMAGEDEFINITION = Kind(ImageDefinition, "imagedefinition")
REGION = Kind(Region, "region")
GALLERY = Kind(Gallery, "gallery")
POD = Kind(Pod, "pod")
NAMESPACE = Kind(Namespace, "namespace")
# The same classes as `galleon.kube.resources` makes for these kinds (lightkube makes
# one class per group, version and kind), made here so the plugin does not depend on
# when the builder's kinds joined that module.
IMAGETEMPLATE = Kind(
    create_namespaced_resource(GROUP, VERSION, "ImageTemplate", "imagetemplates"),
    "imagetemplate",
)
IMAGEBUILD = Kind(
    create_namespaced_resource(GROUP, VERSION, "ImageBuild", "imagebuilds"), "imagebuild"
)
TEMPLATE_LABEL = "galleon.dev/template"
"""The label every ImageBuild carries: the name of its ImageTemplate."""


@dataclass(frozen=True)
class KindView:
    """One kind as `get` and `status` present it.

    Example: `get ss` lists ScaleSets with `columns`; `get scaleset web` prints
    `detail(obj)`; `status scaleset web` polls `outcome(obj)` (and Stalled, as every
    kind: `galleon.cli.outcome.decide`) until done (exit 0), failed (exit 1) or the
    timeout (exit 2).
    """

    kind: Kind
    """The resource, and its lower-case name in messages ("scaleset web not found")."""
    title: str
    """The kind as its docs spell it, in argument help ("ScaleSet name.")."""
    names: tuple[str, ...]
    """The command name, then hidden aliases (plural, short name)."""
    columns: Sequence[render.Column]
    """The list's columns between NAME and AGE."""
    wide_columns: Sequence[render.Column]
    """The columns `-o wide` adds after `columns`."""
    detail: Callable[[Mapping[str, Any]], RenderableType]
    """What `get <kind> NAME` prints."""
    outcome: Callable[[Mapping[str, Any]], Outcome]
    """Whether the object is done, failed or still waiting: `status`'s exit code."""
    get_help: str
    status_help: str
    status_metavar: str = "NAME"
    """How `status <kind> --help` names the argument."""
    ends: bool = False
    """An object of this kind ends: once `outcome` is done or failed it never changes
    again (an ImageBuild Succeeded or Failed). `get <kind> NAME --watch` then follows
    it through a watch of the API and stops when it ends, and `status` reads the same
    watch instead of reading the object every second."""

    @property
    def plural(self) -> str:
        """`scalesets`, as in "No scalesets found."."""
        return self.names[1]


SCALESET_VIEW = KindView(
    kind=SCALESET,
    title="ScaleSet",
    names=("scaleset", "scalesets", "ss"),
    columns=render.SCALESET_COLUMNS,
    wide_columns=SCALESET_WIDE,
    detail=render.scaleset_view,
    outcome=scaleset_outcome,
    get_help=(
        "Show a ScaleSet: versions, instances by version and health, the rolling upgrade "
        "with its progress, conditions. Without NAME: list ScaleSets."
    ),
    status_help=(
        "Wait until a ScaleSet is Ready with no upgrade rolling forward: exit 0; "
        "1 if the upgrade Faulted or the ScaleSet is Stalled; 2 on timeout."
    ),
)

IMAGEVERSION_VIEW = KindView(
    kind=IMAGEVERSION,
    title="ImageVersion",
    names=("imageversion", "imageversions", "iv"),
    columns=render.IMAGEVERSION_COLUMNS,
    wide_columns=IMAGEVERSION_WIDE,
    detail=render.replication_view,
    outcome=imageversion_outcome,
    get_help=("Show an ImageVersion's replication per region. Without NAME: list ImageVersions."),
    status_help=(
        "Wait until an ImageVersion is replicated to every target region: exit 0; "
        "1 if replication Failed or the ImageVersion is Stalled; 2 on timeout."
    ),
    status_metavar="IMAGEVERSION",
)

IMAGEBUILD_VIEW = KindView(
    kind=IMAGEBUILD,
    title="ImageBuild",
    names=("imagebuild", "imagebuilds", "imgb"),
    columns=render.IMAGEBUILD_COLUMNS,
    wide_columns=IMAGEBUILD_WIDE,
    detail=render.imagebuild_view,
    outcome=imagebuild_outcome,
    get_help=(
        "Show an ImageBuild: phase, source and output digests, the version published, "
        "each step with its phase, duration, layer and size. With --watch: until it ends. "
        "Without NAME: list ImageBuilds."
    ),
    status_help=(
        "Wait until an ImageBuild Succeeded: exit 0; 1 if it Failed (or is Stalled); 2 on timeout."
    ),
    ends=True,
)

KINDS = (SCALESET_VIEW, IMAGEVERSION_VIEW, IMAGEBUILD_VIEW)
"""Every kind `get` and `status` take, in the order `--help` lists them."""
