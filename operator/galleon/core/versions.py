"""Version ordering and the "latest" rule, as pure functions.

Rules of this module:
- Versions are `MAJOR.MINOR.PATCH` (no pre-release, no build metadata); they order
  by MAJOR, then MINOR, then PATCH, numerically ("1.10.0" > "1.9.9").
- "latest" overall is the highest version not excluded from latest and not being
  deleted. "latest" in a region is the highest such version that is also not
  excluded for that region and whose replication to that region has completed.
- Nothing here does I/O; callers build `VersionFacts` from what they observed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import semver

from galleon.api.scaleset import LATEST
from galleon.core import reasons


class InvalidVersion(ValueError):
    """A string that is not MAJOR.MINOR.PATCH."""


def parse_version(text: str) -> semver.Version:
    """Parse a strict `MAJOR.MINOR.PATCH`.

    >>> parse_version("1.10.0") > parse_version("1.9.9")
    True
    >>> parse_version("1.0")
    Traceback (most recent call last):
    ...
    galleon.core.versions.InvalidVersion: "1.0" is not MAJOR.MINOR.PATCH
    """
    try:
        version = semver.Version.parse(text)
    except (ValueError, TypeError) as error:
        raise InvalidVersion(f'"{text}" is not MAJOR.MINOR.PATCH') from error
    if version.prerelease or version.build:
        raise InvalidVersion(f'"{text}" is not MAJOR.MINOR.PATCH')
    return version


def version_key(text: str) -> tuple[int, int, int]:
    """Sort key of a version string: `sorted(versions, key=version_key)`."""
    version = parse_version(text)
    return (version.major, version.minor, version.patch)


def is_newer(candidate: str, than: str | None) -> bool:
    """Whether `candidate` is strictly newer than `than` (anything is newer than None)."""
    return than is None or version_key(candidate) > version_key(than)


@dataclass(frozen=True)
class RegionFacts:
    """What is known of one version in one target region."""

    completed: bool
    """Replication to the region has completed (every desired replica is there)."""
    excluded_from_latest: bool = False
    """The target region entry sets excludeFromLatest."""


@dataclass(frozen=True)
class VersionFacts:
    """What the "latest" rule needs to know of one image version."""

    version: str
    excluded_from_latest: bool = False
    """publishingProfile.excludeFromLatest: never latest anywhere."""
    deleting: bool = False
    """The version is being deleted: it can no longer become anybody's target."""
    regions: Mapping[str, RegionFacts] = field(default_factory=dict)
    """Target regions only; a region missing here has no replica."""

    def eligible_overall(self) -> bool:
        return not (self.excluded_from_latest or self.deleting)

    def eligible_in(self, region: str) -> bool:
        facts = self.regions.get(region)
        return (
            self.eligible_overall()
            and facts is not None
            and facts.completed
            and not facts.excluded_from_latest
        )

    def available_in(self, region: str) -> bool:
        """Replicated to `region` (a pinned version may use it even if excluded from latest)."""
        facts = self.regions.get(region)
        return not self.deleting and facts is not None and facts.completed


def _highest(versions: Iterable[VersionFacts]) -> str | None:
    best: VersionFacts | None = None
    for facts in versions:
        if best is None or version_key(facts.version) > version_key(best.version):
            best = facts
    return best.version if best else None


def latest_overall(versions: Iterable[VersionFacts]) -> str | None:
    """The highest version not excluded from latest, wherever it is replicated.

    >>> latest_overall([VersionFacts("1.0.0"), VersionFacts("1.0.2", excluded_from_latest=True)])
    '1.0.0'
    """
    return _highest(v for v in versions if v.eligible_overall())


def latest_in_region(versions: Iterable[VersionFacts], region: str) -> str | None:
    """The highest version a region may follow as "latest".

    >>> done, busy = RegionFacts(completed=True), RegionFacts(completed=False)
    >>> latest_in_region([VersionFacts("1.0.0", regions={"eastus2": done}),
    ...                   VersionFacts("1.0.2", regions={"eastus2": busy})], "eastus2")
    '1.0.0'
    """
    return _highest(v for v in versions if v.eligible_in(region))


def latest_by_region(versions: Iterable[VersionFacts]) -> dict[str, str]:
    """Region → latest version there, for every region that has one."""
    versions = list(versions)
    regions = sorted({region for v in versions for region in v.regions})
    result = {}
    for region in regions:
        latest = latest_in_region(versions, region)
        if latest is not None:
            result[region] = latest
    return result


@dataclass(frozen=True)
class Resolution:
    """Which version a scale set in a region should run, and why."""

    target: str | None
    """The version to run, or None when nothing usable has reached the region."""
    waiting_for_replication: str | None
    """A newer version (than target) that exists but has not finished replicating here."""
    reason: str
    """CamelCase reason for the ScaleSet's conditions."""
    message: str
    """Human-readable explanation."""


@dataclass(frozen=True)
class Released:
    """What the definition's release waves let a region follow (`galleon.core.waves`)."""

    version: str | None
    """The newest version released to the region (None: none yet)."""
    pending: str | None = None
    """A newer version waiting for the region's wave."""
    message: str = ""
    """Why it waits."""


def resolve(
    versions: Iterable[VersionFacts],
    region: str,
    requested: str,
    quarantined: Mapping[str, str] | None = None,
    released: Released | None = None,
) -> Resolution:
    """Resolve a ScaleSet's `imageReference.version` ("latest" or pinned) in `region`.

    `quarantined` is version → why (never latest); `released` is what the release waves
    allow in the region (None: the definition has no waves).

    >>> done = {"eastus2": RegionFacts(completed=True)}
    >>> resolve([VersionFacts("1.0.0", regions=done), VersionFacts("1.0.2")],
    ...         "eastus2", "latest").waiting_for_replication
    '1.0.2'
    >>> both = [VersionFacts("1.0.0", regions=done), VersionFacts("1.0.2", regions=done)]
    >>> resolve(both, "eastus2", "latest", {"1.0.2": "web faulted"}).target
    '1.0.0'
    >>> print(resolve(both, "eastus2", "latest",
    ...               released=Released("1.0.0", "1.0.2", "wave 2 waits")).message)
    latest in eastus2 is 1.0.0; 1.0.2 waits for its wave: wave 2 waits
    """
    versions = list(versions)
    quarantined = quarantined or {}
    if requested == LATEST and (quarantined or released is not None):
        ceiling = released.version if released is not None else None
        allowed = [
            v
            for v in versions
            if v.version not in quarantined
            and (released is None or (ceiling is not None and not is_newer(v.version, ceiling)))
        ]
        found = resolve(allowed, region, requested)
        if released is None or not released.pending:
            return found
        waits = f"{released.pending} waits for its wave: {released.message}"
        if found.target is None:
            return Resolution(
                None,
                released.pending,
                reasons.WAITING_FOR_WAVE,
                f"no version is released to {region} yet; {waits}",
            )
        return replace(
            found,
            waiting_for_replication=released.pending,
            reason=reasons.WAITING_FOR_WAVE,
            message=f"latest in {region} is {found.target}; {waits}",
        )
    if requested == LATEST:
        target = latest_in_region(versions, region)
        newest = _highest(
            v
            for v in versions
            if v.eligible_overall()
            and not (v.regions.get(region) and v.regions[region].excluded_from_latest)
        )
        waiting = newest if newest is not None and is_newer(newest, target) else None
        if target is None:
            return Resolution(
                None,
                waiting,
                reasons.NO_VERSION_IN_REGION,
                f"no version of the image definition has finished replicating to {region}"
                + (f"; {waiting} is on its way" if waiting else ""),
            )
        return Resolution(
            target,
            waiting,
            reasons.LATEST_RESOLVED,
            f"latest in {region} is {target}"
            + (f"; {waiting} is waiting for replication to {region}" if waiting else ""),
        )
    pinned = next((v for v in versions if v.version == requested), None)
    if pinned is None:
        return Resolution(
            None,
            None,
            reasons.VERSION_NOT_FOUND,
            f"version {requested} does not exist in the image definition",
        )
    if pinned.deleting:
        return Resolution(
            None,
            None,
            reasons.VERSION_DELETING,
            f"version {requested} is being deleted; pin another version",
        )
    if not pinned.available_in(region):
        return Resolution(
            None,
            requested,
            reasons.VERSION_NOT_REPLICATED,
            f"version {requested} has not finished replicating to {region}",
        )
    return Resolution(requested, None, reasons.VERSION_PINNED, f"version {requested} is pinned")
