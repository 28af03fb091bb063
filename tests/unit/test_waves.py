"""Release waves and quarantine (`galleon.core.waves`), with injected time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from galleon.core.versions import RegionFacts, VersionFacts
from galleon.core.waves import (
    Member,
    Quarantine,
    Recorded,
    RecordedWave,
    Release,
    Wave,
    quarantines,
    release,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
DONE = RegionFacts(completed=True)
BUSY = RegionFacts(completed=False)
WAVES = [Wave(("east",), timedelta(hours=1)), Wave(("west", "north"), timedelta(minutes=5))]


def versions(**newest: RegionFacts) -> list[VersionFacts]:
    everywhere = {"east": DONE, "west": DONE, "north": DONE}
    return [VersionFacts("1.0.0", regions=everywhere), VersionFacts("1.0.1", regions=newest)]


def member(region: str, current: str, code: str | None = None, **kw: object) -> Member:
    return Member(
        "team-a",
        f"web-{region}",
        region,
        True,
        capacity=4,
        current_version=current,
        upgrade_code=code,
        **kw,  # type: ignore[arg-type]
    )


def recorded(found: Release, released: dict[str, str] | None = None) -> Recorded:
    """What the controller writes back to status after a pass."""
    return Recorded(
        version=found.version,
        waves={w.number: RecordedWave(w.released_at, w.upgraded_at) for w in found.waves},
        released=released or {r.region: r.version for r in found.regions if r.version},
    )


def by_region(found: Release) -> dict[str, tuple[str | None, str | None]]:
    return {r.region: (r.version, r.pending) for r in found.regions}


OLD = {"east": "1.0.0", "west": "1.0.0", "north": "1.0.0"}


def test_wave_two_opens_only_after_wave_one_upgraded_and_baked() -> None:
    vs = versions(east=DONE, west=DONE, north=DONE)
    fleet = [member("east", "1.0.0"), member("west", "1.0.0")]
    first = release(WAVES, vs, fleet, Recorded(released=OLD), [], T0)
    assert by_region(first) == {
        "east": ("1.0.1", None),
        "north": ("1.0.0", "1.0.1"),
        "west": ("1.0.0", "1.0.1"),
    }
    assert [w.state for w in first.waves] == ["Upgrading", "Waiting"]
    assert first.regions[2].message == (
        "wave 2 waits for wave 1: scaleset team-a/web-east runs 1.0.0, not yet 1.0.1"
    )
    # East upgrades: the bake starts when a pass sees it done.
    t1 = T0 + timedelta(minutes=10)
    fleet[0] = member("east", "1.0.1", "RollingForward", upgrade_to="1.0.1")
    upgrading = release(WAVES, vs, fleet, recorded(first), [], t1)
    assert upgrading.waves[0].message == "wave 1: scaleset team-a/web-east upgrading to 1.0.1"
    fleet[0] = member("east", "1.0.1", "Completed", upgrade_to="1.0.1")
    baking = release(WAVES, vs, fleet, recorded(upgrading), [], t1)
    assert [w.state for w in baking.waves] == ["Baking", "Waiting"]
    assert baking.next_change == t1 + timedelta(hours=1)
    assert baking.waves[1].opens_at == t1 + timedelta(hours=1)
    later = release(WAVES, vs, fleet, recorded(baking), [], t1 + timedelta(minutes=22))
    assert later.regions[2].message == "wave 2 opens after 1h bake of wave 1: 38m left"
    assert by_region(later)["west"] == ("1.0.0", "1.0.1")
    # A minute short: still closed; at the end of the bake, wave 2 opens.
    assert by_region(release(WAVES, vs, fleet, recorded(later), [], t1 + timedelta(minutes=59)))[
        "west"
    ] == ("1.0.0", "1.0.1")
    opened = release(WAVES, vs, fleet, recorded(later), [], t1 + timedelta(hours=1))
    assert by_region(opened)["west"] == ("1.0.1", None)
    assert opened.waves[1].released_at == t1 + timedelta(hours=1)
    assert [w.state for w in opened.waves] == ["Done", "Upgrading"]


def test_bake_starts_again_when_the_wave_stops_being_healthy() -> None:
    waves = [Wave(("east",), timedelta(hours=1), min_healthy_percent=75), Wave(("west",))]
    vs = versions(east=DONE, west=DONE)
    healthy = member("east", "1.0.1", "Completed", upgrade_to="1.0.1", healthy={"1.0.1": 4})
    first = release(waves, vs, [healthy], Recorded(released=OLD), [], T0)
    assert first.waves[0].state == "Baking"
    sick = member("east", "1.0.1", "Completed", upgrade_to="1.0.1", healthy={"1.0.1": 2})
    t1 = T0 + timedelta(minutes=50)
    broken = release(waves, vs, [sick], recorded(first), [], t1)
    assert broken.waves[0].state == "Upgrading"
    assert "2 of 4 healthy on 1.0.1, 75% needed" in broken.waves[0].message
    again = release(waves, vs, [healthy], recorded(broken), [], t1)
    assert again.waves[0].upgraded_at == t1  # counted afresh
    assert by_region(release(waves, vs, [healthy], recorded(again), [], T0 + timedelta(hours=1)))[
        "west"
    ] == ("1.0.0", "1.0.1")


def test_an_open_wave_stays_open_and_a_later_wave_waits_for_every_earlier_one() -> None:
    three = [Wave(("east",)), Wave(("west",)), Wave(("north",))]
    vs = versions(east=DONE, west=DONE, north=DONE)
    east = member("east", "1.0.1", "Completed", upgrade_to="1.0.1")
    west = member("west", "1.0.0")
    first = release(three, vs, [east, west], Recorded(released=OLD), [], T0)
    assert [w.state for w in first.waves] == ["Done", "Upgrading", "Waiting"]
    # East breaks (a new ScaleSet there still on 1.0.0): west stays open, north waits.
    late = member("east", "1.0.0")
    second = release(three, vs, [east, late, west], recorded(first), [], T0)
    assert by_region(second)["west"] == ("1.0.1", None)
    assert by_region(second)["north"] == ("1.0.0", "1.0.1")
    west_done = member("west", "1.0.1", "Completed", upgrade_to="1.0.1")
    third = release(three, vs, [east, late, west_done], recorded(second), [], T0)
    assert [w.state for w in third.waves] == ["Upgrading", "Baking", "Waiting"]
    assert "web-east runs 1.0.0" in third.regions[1].message  # north, by name order


def test_a_copy_still_replicating_holds_its_region_and_its_wave() -> None:
    vs = versions(east=BUSY, west=DONE, north=DONE)
    found = release(WAVES, vs, [], Recorded(released=OLD), [], T0)
    assert by_region(found)["east"] == ("1.0.0", "1.0.1")
    assert found.regions[0].message == "1.0.1 is replicating to east"
    assert found.waves[0].message == "wave 1: 1.0.1 is replicating to east"


def test_regions_no_wave_lists_go_with_the_last_wave() -> None:
    vs = versions(east=DONE, west=DONE, north=DONE)
    found = release([Wave(("east",))], vs, [], Recorded(released=OLD), [], T0)
    assert [w.wave.regions for w in found.waves] == [("east", "north", "west")]
    assert {r.wave for r in found.regions} == {1}


def test_a_region_never_released_waits_for_its_wave_and_a_newer_version_supersedes() -> None:
    vs = [VersionFacts("1.0.0", regions={"east": DONE, "west": DONE})]
    fleet = [member("east", "0.9.0")]
    found = release([*WAVES[:1], Wave(("west",))], vs, fleet, Recorded(), [], T0)
    assert by_region(found) == {"east": ("1.0.0", None), "west": (None, "1.0.0")}
    # 1.0.1 arrives before wave 2 opened for 1.0.0: 1.0.0 never reaches west.
    newer = [*vs, VersionFacts("1.0.1", regions={"east": DONE, "west": DONE})]
    after = release([*WAVES[:1], Wave(("west",))], newer, fleet, recorded(found), [], T0)
    assert after.version == "1.0.1"
    assert by_region(after) == {"east": ("1.0.1", None), "west": (None, "1.0.1")}


def test_quarantined_version_is_skipped_and_regions_step_back() -> None:
    vs = versions(east=DONE, west=DONE, north=DONE)
    found = release(
        WAVES, vs, [], Recorded(released={"east": "1.0.1", "west": "1.0.0"}), ["1.0.1"], T0
    )
    assert found.version == "1.0.0"
    assert by_region(found)["east"] == ("1.0.0", None)


def test_quarantine_trips_on_a_version_fault_anywhere_and_is_released_by_annotation() -> None:
    faulted = Member(
        "team-b",
        "api",
        "west",
        False,
        upgrade_from="1.0.0",
        upgrade_to="1.0.1",
        upgrade_code="Faulted",
        upgrade_since=T0,
        upgrade_message="3 of 4 unhealthy",
    )
    found = quarantines([], [faulted], {}, ["1.0.0", "1.0.1"])
    assert found == [Quarantine("1.0.1", T0, "team-b/api", "3 of 4 unhealthy")]
    # Recorded quarantines stay after the ScaleSet moved on, until released.
    assert quarantines(found, [], {}, ["1.0.1"]) == found
    assert quarantines(found, [], {"1.0.1": T0 - timedelta(seconds=1)}, ["1.0.1"]) == found
    assert quarantines(found, [faulted], {"1.0.1": T0}, ["1.0.1"]) == []
    # A fault after the release quarantines it again; a deleted version is forgotten.
    again = Member(
        "team-c",
        "db",
        "east",
        True,
        upgrade_from="1.0.0",
        upgrade_to="1.0.1",
        upgrade_code="Faulted",
        upgrade_since=T0 + timedelta(hours=1),
    )
    assert [q.scale_set for q in quarantines([], [faulted, again], {"1.0.1": T0}, ["1.0.1"])] == [
        "team-c/db"
    ]
    assert quarantines(found, [], {}, ["1.0.0"]) == []


def test_a_faulted_model_change_or_a_cancel_quarantines_nothing() -> None:
    model = Member(
        "a",
        "web",
        "east",
        True,
        upgrade_from="1.0.1",
        upgrade_to="1.0.1",
        upgrade_code="Faulted",
        upgrade_since=T0,
    )
    cancelled = Member(
        "a",
        "api",
        "east",
        True,
        upgrade_from="1.0.0",
        upgrade_to="1.0.1",
        upgrade_code="Cancelled",
        upgrade_since=T0,
    )
    assert quarantines([], [model, cancelled], {}, ["1.0.0", "1.0.1"]) == []


def test_a_faulted_scaleset_in_wave_one_keeps_wave_two_closed() -> None:
    vs = versions(east=DONE, west=DONE, north=DONE)
    faulted = member("east", "1.0.0", "Faulted", upgrade_from="1.0.0", upgrade_to="1.0.1")
    found = release(WAVES, vs, [faulted], Recorded(released=OLD), [], T0)
    assert found.waves[0].message == "wave 1: scaleset team-a/web-east faulted"
    assert by_region(found)["west"] == ("1.0.0", "1.0.1")
