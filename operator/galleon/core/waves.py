"""Release waves and version quarantine, as pure functions.

Rules of this module (docs/rollout.md, "Release waves and quarantine"):
- A definition without waves releases a version to a region as soon as it is
  replicated there (`galleon.core.versions`); everything below adds to that.
- The version being released is the highest one that is eligible overall
  (`VersionFacts.eligible_overall`) and not quarantined. Wave 1 is open for it at
  once. Wave N+1 opens when wave N is open, *done* (every region of the wave
  that the version targets has a completed copy, and every ScaleSet following
  latest there runs the version with no upgrade running, and, when the wave
  asks, at least `min_healthy_percent` of its instances healthy on it) and has
  stayed done for the wave's bake time, while every ScaleSet of the earlier
  waves is still done. A wave once open stays open for that version.
- Regions that no wave lists are released with the last wave.
- A region's released version is the version being released when its wave is
  open and the copy there completed; otherwise the highest version eligible in
  the region that is not newer than what the region was released before (a
  quarantined or deleted version steps back to the one below it). A region never
  released anything gets nothing until its wave opens.
- A version is quarantined when an upgrade to it (a version change, not a model
  change) faulted on any ScaleSet following the definition, in any namespace,
  after its last release annotation. A quarantine ends when the annotation
  `galleon.dev/release-quarantine` on the ImageVersion is a time at or after the
  fault. A quarantined version is never released; a newer one supersedes it.
- "Done since" is the time a pass first saw a wave done (kept in status): the
  bake counts from there, and starts again if the wave stops being done before
  it baked.
- Nothing here does I/O or reads a clock; `now` is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from galleon.core import reasons
from galleon.core.instances import version_of
from galleon.core.rollout.model import Hold, Rollout
from galleon.core.rollout.notes import duration
from galleon.core.versions import VersionFacts, is_newer, version_key

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
RELEASE_ANNOTATION = "galleon.dev/release-quarantine"
"""On an ImageVersion: a time at or after its quarantine's fault releases it."""


@dataclass(frozen=True)
class Wave:
    regions: tuple[str, ...]
    bake: timedelta = timedelta(0)
    min_healthy_percent: int | None = None
    name: str | None = None

    def label(self, number: int) -> str:
        return f"wave {number}" + (f" ({self.name})" if self.name else "")


@dataclass(frozen=True)
class Member:
    """A ScaleSet that follows the definition, as the release rules see it."""

    namespace: str
    name: str
    region: str
    follows_latest: bool
    capacity: int = 0
    current_version: str | None = None
    healthy: Mapping[str, int] = field(default_factory=dict)
    """Version → healthy instances on it."""
    upgrade_from: str | None = None
    upgrade_to: str | None = None
    upgrade_code: str | None = None
    """RollingForward, Completed, Cancelled or Faulted (None: never upgraded)."""
    upgrade_since: datetime | None = None
    """When the recorded upgrade reached its code (phaseSince)."""
    upgrade_message: str = ""

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def done_on(self, version: str, min_healthy_percent: int | None) -> tuple[bool, str]:
        """(whether the ScaleSet counts as upgraded to `version`, why not)."""
        if self.upgrade_to == version and self.upgrade_code == "Faulted":
            return False, f"scaleset {self.key} faulted"
        if self.upgrade_code == "RollingForward":
            return False, f"scaleset {self.key} upgrading to {self.upgrade_to}"
        if self.current_version != version:
            now_on = self.current_version or "nothing"
            return False, f"scaleset {self.key} runs {now_on}, not yet {version}"
        if min_healthy_percent is not None:
            healthy = self.healthy.get(version, 0)
            if healthy * 100 < min_healthy_percent * self.capacity:
                return False, (
                    f"scaleset {self.key}: {healthy} of {self.capacity} healthy on {version}, "
                    f"{min_healthy_percent}% needed"
                )
        return True, ""


@dataclass(frozen=True)
class Quarantine:
    version: str
    since: datetime | None
    scale_set: str
    message: str


@dataclass(frozen=True)
class RecordedWave:
    released_at: datetime | None = None
    upgraded_at: datetime | None = None


@dataclass(frozen=True)
class Recorded:
    """What status kept of earlier passes."""

    version: str | None = None
    waves: Mapping[int, RecordedWave] = field(default_factory=dict)
    released: Mapping[str, str] = field(default_factory=dict)
    """Region → the version released there before."""
    quarantined: Sequence[Quarantine] = ()


@dataclass(frozen=True)
class WaveState:
    number: int
    wave: Wave
    state: str
    """Waiting, Upgrading, Baking or Done."""
    released_at: datetime | None = None
    upgraded_at: datetime | None = None
    opens_at: datetime | None = None
    message: str = ""


@dataclass(frozen=True)
class RegionRelease:
    region: str
    version: str | None
    wave: int | None = None
    pending: str | None = None
    opens_at: datetime | None = None
    message: str = ""


@dataclass(frozen=True)
class Release:
    version: str | None
    waves: tuple[WaveState, ...]
    regions: tuple[RegionRelease, ...]
    next_change: datetime | None = None
    """When a bake ends (the next pass is due then)."""


def quarantines(
    recorded: Sequence[Quarantine],
    members: Iterable[Member],
    released_at: Mapping[str, datetime | None],
    existing: Iterable[str],
) -> list[Quarantine]:
    """The quarantined versions: those recorded and not released, plus new faults.

    `released_at` is version → its release annotation's time (None: none).

    >>> t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    >>> web = Member("team-a", "web", "eastus2", True, upgrade_from="1.0.0",
    ...              upgrade_to="1.0.1", upgrade_code="Faulted", upgrade_since=t)
    >>> [q.scale_set for q in quarantines([], [web], {}, ["1.0.0", "1.0.1"])]
    ['team-a/web']
    >>> quarantines([], [web], {"1.0.1": t}, ["1.0.1"])
    []
    """
    existing = set(existing)

    def released(version: str, since: datetime | None) -> bool:
        at = released_at.get(version)
        return at is not None and (since is None or at >= since)

    found: dict[str, Quarantine] = {}
    for q in recorded:
        if q.version in existing and not released(q.version, q.since):
            found.setdefault(q.version, q)
    for m in sorted(members, key=lambda m: (m.upgrade_since or EPOCH, m.key)):
        version = m.upgrade_to
        if (
            m.upgrade_code != "Faulted"
            or version is None
            or version == m.upgrade_from  # a model change faulted, not the version
            or version not in existing
            or version in found
            or released(version, m.upgrade_since)
        ):
            continue
        found[version] = Quarantine(
            version, m.upgrade_since, m.key, m.upgrade_message or "the upgrade faulted"
        )
    return sorted(found.values(), key=lambda q: version_key(q.version))


def assign(waves: Sequence[Wave], regions: Iterable[str]) -> list[Wave]:
    """The waves with the regions no wave lists added to the last one.

    >>> [w.regions for w in assign([Wave(("a",)), Wave(("b",))], ["c", "a"])]
    [('a',), ('b', 'c')]
    """
    listed = {r for w in waves for r in w.regions}
    rest = tuple(sorted(set(regions) - listed))
    if not waves or not rest:
        return list(waves)
    last = waves[-1]
    joined = Wave((*last.regions, *rest), last.bake, last.min_healthy_percent, last.name)
    return [*waves[:-1], joined]


def _wave_done(wave: Wave, version: VersionFacts, members: Sequence[Member]) -> tuple[bool, str]:
    for region in wave.regions:
        facts = version.regions.get(region)
        if facts is not None and not facts.completed:
            return False, f"{version.version} is replicating to {region}"
    for m in sorted(members, key=lambda m: m.key):
        if m.region in wave.regions and m.follows_latest:
            done, why = m.done_on(version.version, wave.min_healthy_percent)
            if not done:
                return False, why
    return True, ""


def release(
    waves: Sequence[Wave],
    versions: Sequence[VersionFacts],
    members: Sequence[Member],
    recorded: Recorded,
    quarantined: Iterable[str],
    now: datetime,
) -> Release:
    """The module's rules for one definition with waves.

    Two waves, no bake yet: wave 1 gets 1.0.1 at once, wave 2 keeps 1.0.0.

    >>> t = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    >>> from galleon.core.versions import RegionFacts
    >>> done = RegionFacts(completed=True)
    >>> both = {"east": done, "west": done}
    >>> vs = [VersionFacts("1.0.0", regions=both), VersionFacts("1.0.1", regions=both)]
    >>> web = Member("a", "web", "east", True, capacity=2, current_version="1.0.0")
    >>> r = release([Wave(("east",), timedelta(hours=1)), Wave(("west",))], vs, [web],
    ...             Recorded(released={"east": "1.0.0", "west": "1.0.0"}), [], t)
    >>> [(x.region, x.version, x.pending) for x in r.regions]
    [('east', '1.0.1', None), ('west', '1.0.0', '1.0.1')]
    >>> print(r.regions[1].message)
    wave 2 waits for wave 1: scaleset a/web runs 1.0.0, not yet 1.0.1
    """
    quarantined = set(quarantined)
    eligible = [v for v in versions if v.eligible_overall() and v.version not in quarantined]
    regions = sorted(
        {r for v in versions for r in v.regions} | {r for w in waves for r in w.regions}
    )
    waves = assign(waves, regions)
    candidate = max(eligible, key=lambda v: version_key(v.version), default=None)
    states: list[WaveState] = []
    next_change: datetime | None = None
    if candidate is not None:
        same = recorded.version == candidate.version
        for number, wave in enumerate(waves, start=1):
            before = recorded.waves.get(number, RecordedWave()) if same else RecordedWave()
            released_at = before.released_at
            if released_at is None and (number == 1 or states[-1].state == "Done"):
                released_at = now
            if released_at is None:
                states.append(_waiting(number, wave, states[-1], waves[number - 2], now))
                continue
            done, why = _wave_done(wave, candidate, members)
            upgraded_at = (before.upgraded_at or now) if done else None
            baked = upgraded_at + wave.bake if upgraded_at is not None else None
            earlier = next((s for s in states if s.state != "Done"), None)
            if baked is None:
                state, message = "Upgrading", f"{wave.label(number)}: {why}"
            elif now < baked:
                state, message = "Baking", f"{wave.label(number)} baking"
                next_change = baked if next_change is None else min(next_change, baked)
            elif earlier is not None:
                state, message = "Baking", earlier.message
            else:
                state, message = "Done", ""
            states.append(WaveState(number, wave, state, released_at, upgraded_at, None, message))
    by_region = {r: n for n, w in enumerate(waves, start=1) for r in w.regions}
    out = []
    for region in regions:
        at = by_region.get(region)
        found = states[at - 1] if states and at else None
        version = _released_in(region, versions, quarantined, recorded.released.get(region))
        pending = opens = None
        message = ""
        if candidate is not None and found is not None and region in candidate.regions:
            if found.state != "Waiting" and candidate.eligible_in(region):
                version = candidate.version
            elif version is None or is_newer(candidate.version, version):
                pending, opens, message = candidate.version, found.opens_at, found.message
                if found.state != "Waiting":
                    message = f"{candidate.version} is replicating to {region}"
        out.append(RegionRelease(region, version, at, pending, opens, message))
    return Release(candidate.version if candidate else None, tuple(states), tuple(out), next_change)


def _waiting(
    number: int, wave: Wave, previous: WaveState, previous_wave: Wave, now: datetime
) -> WaveState:
    """A wave that is not open yet, and what it waits for."""
    label, before = wave.label(number), previous_wave.label(previous.number)
    if previous.state == "Waiting":
        return WaveState(number, wave, "Waiting", message=f"{label} waits for {before} to open")
    if previous.state == "Baking" and previous.upgraded_at is not None:
        opens = previous.upgraded_at + previous_wave.bake
        if opens > now:
            return WaveState(
                number,
                wave,
                "Waiting",
                opens_at=opens,
                message=f"{label} opens after {duration(previous_wave.bake)} bake of "
                f"{before}: {duration(opens - now)} left",
            )
    return WaveState(number, wave, "Waiting", message=f"{label} waits for {previous.message}")


def _released_in(
    region: str, versions: Sequence[VersionFacts], quarantined: set[str], before: str | None
) -> str | None:
    """The highest version eligible in `region`, not quarantined, not newer than `before`."""
    if before is None:
        return None
    best = None
    for v in versions:
        if (
            v.eligible_in(region)
            and v.version not in quarantined
            and not is_newer(v.version, before)
            and (best is None or is_newer(v.version, best))
        ):
            best = v.version
    return best


def quarantine_hold(
    quarantined: Mapping[str, str],
    upgrading_to: str | None,
    target: str | None,
) -> tuple[Hold | None, bool]:
    """(the hold a quarantine puts on a ScaleSet, whether its running upgrade is to be
    cancelled), given quarantined version → why, the version a running upgrade goes to
    (None: none runs) and the version the ScaleSet should run now.

    A running upgrade to a quarantined version holds after its batch, unless the target
    moved past it (superseded): then it is cancelled after its batch, so that the newer
    one can start. No upgrade to a quarantined version starts.

    >>> hold, cancel = quarantine_hold({"1.0.2": "scaleset a/web faulted"}, "1.0.2", "1.0.1")
    >>> print(hold.message); cancel
    1.0.2 is quarantined (scaleset a/web faulted); annotate its ImageVersion with ...
    False
    >>> quarantine_hold({"1.0.2": "x"}, "1.0.2", "1.0.3")
    (None, True)
    >>> quarantine_hold({"1.0.2": "x"}, None, "1.0.2")[0].reason
    'VersionQuarantined'
    """
    held = upgrading_to if upgrading_to is not None else target
    if held is None or held not in quarantined:
        return None, False
    if upgrading_to is not None and target is not None and is_newer(target, upgrading_to):
        return None, True
    message = (
        f"{held} is quarantined ({quarantined[held]}); annotate its ImageVersion with "
        f"{RELEASE_ANNOTATION} to release it"
    )
    return Hold(reasons.VERSION_QUARANTINED, message), False


def rollout_holds(
    quarantined: Mapping[str, str], recorded: Rollout | None, target: str | None
) -> tuple[tuple[Hold, ...], bool]:
    """(what holds a ScaleSet's new batches and upgrades back, whether its running
    upgrade is cancelled after its batch), given quarantined version → why, the
    ScaleSet's recorded upgrade (running or not) and the version it should run now:
    `quarantine_hold` with the version the running upgrade goes to. The controller's
    pass and the plan preview both compose holds with this.

    >>> rollout_holds({"1.0.2": "x"}, None, "1.0.2")[0][0].reason
    'VersionQuarantined'
    >>> rollout_holds({}, None, "1.0.2")
    ((), False)
    """
    running = recorded if recorded is not None and recorded.active else None
    hold, supersede = quarantine_hold(
        quarantined, version_of(running.to_revision) if running else None, target
    )
    return ((hold,) if hold is not None else ()), supersede
