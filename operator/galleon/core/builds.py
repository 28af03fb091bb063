"""Pure decisions of the image builder: where a build's image is staged, which
version it publishes, what a template's steps become, which builds a template
starts and which it forgets.

Rules of this module:
- No I/O. The controllers (`galleon.controllers.builder`) read the world and bring
  every input here as plain values; what comes back says what to do.
- A staging repository can never be any galleon repository of another namespace:
  its last component carries `__`, which no repository prefix, namespace, gallery
  or definition name may contain (`staging_repository`), so a path derived for one
  namespace is never one derived for another.
- Names galleon creates (builds, versions) are deterministic, so a restarted
  operator that creates one again meets the one it made (409), never a twin.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from galleon.api.customize import CustomizeStep
from galleon.api.imagetemplate import FAILED_BUILDS_TO_SUSPEND, Versioning
from galleon.core import layers
from galleon.core.replication import repository_path
from galleon.core.versions import version_key

STAGING_SUFFIX = "__staging"
"""Appended to a definition's repository for its builds' images (see the module rules)."""
TEMPLATE_LABEL = "galleon.dev/template"
BUILD_LABEL = "galleon.dev/build"
TERMINAL_PHASES = ("Succeeded", "Failed")
NAME_MAX = 253
TAG_MAX = 128

PROVENANCE_ANNOTATIONS = {
    "template": "galleon.dev/built-from-template",
    "generation": "galleon.dev/built-from-generation",
    "build": "galleon.dev/built-by",
    "source": "galleon.dev/built-from-source",
    "provenance": "galleon.dev/provenance",
}
PROVENANCE_PREDICATE = "https://galleon.dev/provenance/v1"
"""Annotations a published ImageVersion carries about the build that made it."""


def staging_repository(prefix: str, namespace: str, gallery: str, definition: str) -> str:
    """The repository of the home region's registry a definition's builds push to.

    >>> staging_repository("galleon", "team-a", "contoso", "ubuntu")
    'galleon/team-a/contoso/ubuntu__staging'
    """
    return repository_path(prefix, namespace, gallery, definition) + STAGING_SUFFIX


def staging_tag(build: str) -> str:
    """The tag a build's image is pushed under (keeps it from a registry's garbage
    collection of untagged manifests), from the build's name.

    >>> staging_tag("hardened-2")
    'hardened-2'
    >>> len(staging_tag("b" * 200))
    128
    """
    if len(build) <= TAG_MAX:
        return build
    digest = hashlib.sha256(build.encode()).hexdigest()[:12]
    return f"{build[: TAG_MAX - 13]}-{digest}"


def _bounded_name(base: str, suffix: str) -> str:
    if len(base) + len(suffix) <= NAME_MAX:
        return base + suffix
    digest = hashlib.sha256(base.encode()).hexdigest()[:10]
    return f"{base[: NAME_MAX - len(suffix) - 11]}-{digest}{suffix}"


def version_object_name(definition: str, version: str) -> str:
    """The ImageVersion a build publishes `version` of `definition` as.

    >>> version_object_name("ubuntu-hardened", "1.0.3")
    'ubuntu-hardened-1.0.3'
    """
    return _bounded_name(definition, f"-{version}")


def build_name(template: str, reason: str, key: str) -> str:
    """The ImageBuild galleon creates for a template, a trigger and what triggered it
    (a generation or a source digest): the same trigger always names the same build.

    >>> build_name("hardened", "Created", "1")
    'hardened-g1'
    >>> build_name("hardened", "SourceImageUpdate", "sha256:" + "ab" * 32)
    'hardened-s-abababababab'
    """
    if reason == "SourceImageUpdate":
        return _bounded_name(template, f"-s-{key.removeprefix('sha256:')[:12]}")
    return _bounded_name(template, f"-g{key}")


def provenance(
    *,
    namespace: str,
    template: str,
    generation: int,
    build: str,
    source: str,
    source_digest: str,
    inputs: Sequence[Mapping[str, str]],
    output_digest: str,
) -> bytes:
    """The provenance document of a build (compact JSON, keys sorted): what it was
    made from, attached to its image as a referrer.

    >>> document = provenance(namespace="a", template="t", generation=2, build="t-g2",
    ...     source="reg/os@sha256:1", source_digest="sha256:1", inputs=[], output_digest="sha256:2")
    >>> document[:40]
    b'{"build":{"generation":2,"name":"t-g2","'
    """
    document = {
        "predicateType": PROVENANCE_PREDICATE,
        "build": {
            "name": build,
            "namespace": namespace,
            "template": template,
            "generation": generation,
        },
        "source": {"reference": source, "digest": source_digest},
        "inputs": [{"name": i["name"], "digest": i["digest"]} for i in inputs],
        "output": {"digest": output_digest},
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


# -- versions ----------------------------------------------------------------------


class VersionRefused(ValueError):
    """No version can be published as the template asks (its message says why)."""


def next_version(
    versioning: Versioning, existing: Iterable[str], source_version: str | None = None
) -> str:
    """The version a build publishes, given the definition's `existing` versions.

    >>> next_version(Versioning(), ["1.0.0", "1.2.9", "2.0.1"])
    '2.0.2'
    >>> next_version(Versioning(major=1), ["1.0.0", "1.2.9", "2.0.1"])
    '1.2.10'
    >>> next_version(Versioning(major=3), ["1.0.0"])
    '3.0.0'
    >>> next_version(Versioning(), [])
    '1.0.0'
    >>> next_version(Versioning(scheme="Source"), ["1.0.0"], "1.4.2")
    '1.4.2'
    >>> next_version(Versioning(scheme="Explicit", version="1.0.0"), ["1.0.0"])
    Traceback (most recent call last):
    ...
    galleon.core.builds.VersionRefused: version 1.0.0 of the image definition exists already
    """
    taken = set(existing)
    if versioning.scheme == "Explicit":
        wanted = str(versioning.version)
    elif versioning.scheme == "Source":
        if source_version is None:
            raise VersionRefused("the source is not a gallery version: it has no version")
        wanted = source_version
    else:
        keys = [version_key(v) for v in taken]
        if versioning.major is not None:
            keys = [k for k in keys if k[0] == versioning.major]
        if not keys:
            wanted = f"{versioning.major if versioning.major is not None else 1}.0.0"
        else:
            major, minor, patch = max(keys)
            wanted = f"{major}.{minor}.{patch + 1}"
    if wanted in taken:
        raise VersionRefused(f"version {wanted} of the image definition exists already")
    return wanted


# -- steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerImage:
    """A Layer step's image, resolved: where to read it and its digest."""

    registry: str
    repository: str
    digest: str


def build_steps(
    steps: Sequence[CustomizeStep],
    contents: Mapping[str, bytes],
    images: Mapping[str, LayerImage],
) -> list[layers.Step]:
    """The template's steps as `galleon.core.layers` steps: `contents` are the bytes of
    each File and Archive step (by name), `images` each Layer step's image.

    >>> step = CustomizeStep.model_validate(
    ...     {"name": "tz", "type": "Environment", "environment": [{"name": "TZ", "value": "UTC"}]}
    ... )
    >>> build_steps([step], {}, {})
    [Environment(variables=(('TZ', 'UTC'),))]
    """
    built: list[layers.Step] = []
    for step in steps:
        if step.file is not None:
            f = step.file
            built.append(
                layers.File(f.destination, contents[step.name], f.mode, f.owner.uid, f.owner.gid)
            )
        elif step.archive is not None:
            a = step.archive
            built.append(
                layers.Archive(
                    a.destination,
                    contents[step.name],
                    a.owner.uid if a.owner else None,
                    a.owner.gid if a.owner else None,
                )
            )
        elif step.layer is not None:
            image = images[step.name]
            built.append(layers.Layer(image.repository, image.digest, image.registry))
        elif step.environment is not None:
            built.append(layers.Environment(tuple((v.name, v.value) for v in step.environment)))
        elif step.labels is not None:
            built.append(layers.Labels(tuple(sorted(step.labels.items()))))
        elif step.entrypoint is not None:
            built.append(layers.Entrypoint(tuple(step.entrypoint)))
        elif step.cmd is not None:
            built.append(layers.Cmd(tuple(step.cmd)))
        elif step.working_dir is not None:
            built.append(layers.WorkingDir(step.working_dir))
        elif step.user is not None:
            built.append(layers.User(step.user))
    return built


# -- a template's builds -----------------------------------------------------------


@dataclass(frozen=True)
class BuildFacts:
    """What the template controller knows of one of its builds."""

    name: str
    created: str
    """metadata.creationTimestamp (RFC 3339, sorts as time)."""
    phase: str | None
    reason: str = "Manual"
    source_digest: str | None = None
    output_digest: str | None = None
    version: str | None = None
    deleting: bool = False

    @property
    def finished(self) -> bool:
        return self.phase in TERMINAL_PHASES

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> BuildFacts:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        status = obj.get("status") or {}
        return cls(
            name=str(meta.get("name", "")),
            created=str(meta.get("creationTimestamp", "")),
            phase=status.get("phase"),
            reason=str(spec.get("reason", "Manual")),
            source_digest=status.get("sourceDigest"),
            output_digest=status.get("outputDigest"),
            version=(status.get("imageVersion") or {}).get("version"),
            deleting=bool(meta.get("deletionTimestamp")),
        )


def in_order(builds: Iterable[BuildFacts]) -> list[BuildFacts]:
    """Oldest first (creation time, then name)."""
    return sorted(builds, key=lambda b: (b.created, b.name))


def to_prune(builds: Iterable[BuildFacts], history_limit: int) -> list[str]:
    """Finished builds beyond the newest `history_limit` finished ones, oldest first
    (running builds are never pruned).

    >>> done = [BuildFacts(f"b{i}", f"2026-01-0{i}T00:00:00Z", "Failed") for i in range(1, 5)]
    >>> to_prune([*done, BuildFacts("b9", "2026-01-09T00:00:00Z", "Building")], 2)
    ['b1', 'b2']
    """
    finished = [b for b in in_order(builds) if b.finished and not b.deleting]
    return [b.name for b in finished[: max(0, len(finished) - history_limit)]]


@dataclass(frozen=True)
class Streak:
    """Failed builds in a row, counted up to the newest finished build."""

    failed: int
    counted: str | None


def count_failures(builds: Iterable[BuildFacts], failed: int, counted: str | None) -> Streak:
    """Extend the streak (`failed` builds failed in a row, up to build `counted`) with
    the builds finished after `counted`: a success ends it.

    >>> b = [BuildFacts("a", "1", "Failed"), BuildFacts("b", "2", "Succeeded"),
    ...      BuildFacts("c", "3", "Failed"), BuildFacts("d", "4", "Building")]
    >>> count_failures(b, 0, None)
    Streak(failed=1, counted='c')
    >>> count_failures(b, 4, "c")
    Streak(failed=4, counted='c')
    >>> count_failures(b, 4, "gone")
    Streak(failed=1, counted='c')
    """
    ordered = in_order(builds)
    names = [b.name for b in ordered]
    if counted in names:
        start = names.index(counted) + 1
    else:
        # Never counted, or the counted build is gone (a user deleted it: the template
        # prunes only after counting, and never the newest finished build): count the
        # builds kept afresh.
        failed, start = 0, 0
    for build in ordered[start:]:
        if not build.finished:
            break
        failed = failed + 1 if build.phase == "Failed" else 0
        counted = build.name
    return Streak(failed, counted)


def suspended(streak: Streak) -> bool:
    return streak.failed >= FAILED_BUILDS_TO_SUSPEND


def running(builds: Iterable[BuildFacts]) -> list[BuildFacts]:
    """Builds not finished, oldest first."""
    return [b for b in in_order(builds) if not b.finished and not b.deleting]


def latest_success(builds: Iterable[BuildFacts]) -> BuildFacts | None:
    done = [b for b in in_order(builds) if b.phase == "Succeeded"]
    return done[-1] if done else None
