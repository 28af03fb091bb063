"""The replication plan: layout per region, what to copy, keep, remove or refuse."""

from __future__ import annotations

import doctest

from hypothesis import given
from hypothesis import strategies as st

from galleon.api.imageversion import PublishingProfile
from galleon.core import replication
from galleon.core.replication import (
    Location,
    Recorded,
    RegionLayout,
    ReplicaProgress,
    aggregate,
    layout,
    plan,
    summarize_region,
)

REGISTRIES = ["a", "b", "c"]


def profile(**counts: int) -> PublishingProfile:
    return PublishingProfile(
        target_regions=[{"name": r, "regional_replica_count": n} for r, n in counts.items()]
    )


def test_doctests() -> None:
    assert doctest.testmod(replication).failed == 0


def test_layout_takes_the_first_registries_in_order() -> None:
    result = layout(profile(east=2, west=1), {"east": ["x", "y", "z"], "west": ["p", "q"]})
    assert result["east"].locations == (Location("east", "x"), Location("east", "y"))
    assert result["west"].locations == (Location("west", "p"),)
    assert not result["east"].error_reason


def test_unknown_region_and_too_few_registries_fail_only_that_region() -> None:
    result = layout(profile(east=3, west=1, nowhere=1), {"east": ["x"], "west": ["p"]})
    assert result["east"].error_reason == "NotEnoughRegistries"
    assert "1 registry replica location(s), 3 requested" in result["east"].error_message
    assert result["nowhere"].error_reason == "UnknownRegion"
    assert result["west"].locations == (Location("west", "p"),)


def test_replica_count_default_applies() -> None:
    spec = PublishingProfile(target_regions=[{"name": "east"}], replica_count=2)
    assert len(layout(spec, {"east": ["x", "y"]})["east"].locations) == 2


def test_another_digest_is_copied_again() -> None:
    east = layout(profile(east=1), {"east": ["a"]})
    stale = Recorded(Location("east", "a"), "Completed", "sha256:old")
    assert plan(east, [stale], "sha256:new", allow_deletion=True).copy == (Location("east", "a"),)


def test_removal_refused_without_permission() -> None:
    east = layout(profile(east=1), {"east": ["a", "b"]})
    extra = Recorded(Location("east", "b"), "Completed", "sha256:1")
    refused = plan(east, [extra], "sha256:1", allow_deletion=False)
    assert refused.remove == () and refused.refused == (Location("east", "b"),)
    allowed = plan(east, [extra], "sha256:1", allow_deletion=True)
    assert allowed.remove == (Location("east", "b"),) and allowed.refused == ()


locations = st.builds(
    Location, st.sampled_from(["east", "west", "north"]), st.sampled_from(REGISTRIES)
)
records = st.lists(
    st.builds(
        Recorded,
        locations,
        st.sampled_from(["Queued", "Replicating", "Completed", "Failed", "Removing"]),
        st.sampled_from([None, "sha256:1", "sha256:2"]),
    ),
    unique_by=lambda r: r.location,
)
counts = st.dictionaries(st.sampled_from(["east", "west", "north"]), st.integers(1, 3), min_size=1)


@given(counts, records, st.booleans())
def test_plan_partitions_every_location(
    wanted: dict[str, int], recorded: list[Recorded], allow: bool
) -> None:
    layouts = layout(profile(**wanted), {r: REGISTRIES for r in ("east", "west", "north")})
    result = plan(layouts, recorded, "sha256:1", allow_deletion=allow)
    desired = {loc for lay in layouts.values() for loc in lay.locations}
    assert set(result.copy) | set(result.keep) == desired
    assert not set(result.copy) & set(result.keep)
    assert not (set(result.remove) | set(result.refused)) & desired
    # Nothing complete at the source digest is copied again.
    for record in recorded:
        if record.state == "Completed" and record.digest == "sha256:1":
            assert record.location not in result.copy
    if not allow:
        assert result.remove == ()
    # Deciding twice gives the same answer.
    assert plan(layouts, recorded, "sha256:1", allow_deletion=allow) == result


def test_region_summary_states() -> None:
    east = RegionLayout("east", 2, (Location("east", "a"), Location("east", "b")))
    a = ReplicaProgress(Location("east", "a"), "Completed", 100, 100, 100, 0, "sha256:1")
    b = ReplicaProgress(Location("east", "b"), "Replicating", 30, 100, 30)
    s = summarize_region(east, [a, b])
    assert (s.state, s.progress, s.completed_replicas, s.bytes_copied) == (
        "Replicating",
        65,
        1,
        130,
    )
    b.state, b.message = "Failed", "Unavailable: connection refused"
    failed = summarize_region(east, [a, b])
    assert failed.state == "Failed" and "b: Unavailable" in failed.details
    b.state, b.bytes_done = "Completed", 100
    assert summarize_region(east, [a, b]).state == "Completed"
    assert summarize_region(east, [a, b]).progress == 100


def test_unknown_region_summary_is_failed_with_reason() -> None:
    gone = layout(profile(gone=1), {})["gone"]
    summary = summarize_region(gone, [])
    assert summary.state == "Failed" and summary.details.startswith("UnknownRegion:")


def test_aggregate() -> None:
    def s(state: str) -> replication.RegionSummary:
        return replication.RegionSummary("r", state, 0, "", 1, 0, 0, 0, 0)  # type: ignore[arg-type]

    assert aggregate([]) == ("Unknown", "0/0")
    assert aggregate([s("Completed"), s("Completed")]) == ("Completed", "2/2")
    assert aggregate([s("Completed"), s("Replicating")]) == ("InProgress", "1/2")
    assert aggregate([s("Failed"), s("Replicating")]) == ("InProgress", "0/2")
    assert aggregate([s("Failed"), s("Completed")]) == ("Failed", "1/2")
