"""An ImageVersion's replication status from its replicas
(galleon.core.imageversion_status)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from galleon.core import reasons
from galleon.core.imageversion_status import (
    ReplicationRecord,
    imageversion_status,
    load_record,
    set_ready,
    set_removal_refused,
)
from galleon.core.replication import Location, RegionLayout

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
EAST_A, EAST_B, WEST_A = Location("east", "a"), Location("east", "b"), Location("west", "a")


def record(states: dict[Location, str], unknown_west: bool = False) -> ReplicationRecord:
    r = ReplicationRecord()
    r.layouts = {"east": RegionLayout("east", 2, (EAST_A, EAST_B))}
    r.layouts["west"] = (
        RegionLayout("west", 1, (), "UnknownRegion", 'no Region named "west" exists')
        if unknown_west
        else RegionLayout("west", 1, (WEST_A,))
    )
    for location, state in states.items():
        replica = r.replica(location)
        replica.state = state  # type: ignore[assignment]
        replica.bytes_total, replica.bytes_done = 100, 100 if state == "Completed" else 40
    return r


@pytest.mark.parametrize(
    ("states", "unknown_west", "expected"),
    [
        pytest.param(
            {EAST_A: "Completed", EAST_B: "Completed", WEST_A: "Completed"},
            False,
            ("True", reasons.REPLICATED, "False", "False", "replicated to 2/2 regions"),
            id="all-replicated",
        ),
        pytest.param(
            {EAST_A: "Completed", EAST_B: "Replicating", WEST_A: "Completed"},
            False,
            ("False", reasons.REPLICATING, "True", "False", "1/2 regions replicated"),
            id="one-region-moving",
        ),
        pytest.param(
            {EAST_A: "Completed", EAST_B: "Completed"},
            True,
            (
                "False",
                reasons.REPLICATION_FAILED,
                "False",
                "True",
                'west: UnknownRegion: no Region named "west" exists',
            ),
            id="failed-region-and-nothing-moving-stalls",
        ),
        pytest.param(
            {EAST_A: "Replicating", EAST_B: "Queued"},
            True,
            (
                "False",
                reasons.REPLICATING,
                "True",
                "False",
                "0/2 regions replicated; failed: "
                'west: UnknownRegion: no Region named "west" exists',
            ),
            id="failure-named-while-others-move",
        ),
    ],
)
def test_ready(states: dict[Location, str], unknown_west: bool, expected: tuple[str, ...]) -> None:
    ready, reconciling, stalled = set_ready(record(states, unknown_west).summaries())
    assert (ready[1], ready[2], reconciling[1], stalled[1], ready[3]) == expected


def test_refused_removals_are_named() -> None:
    r = record({EAST_A: "Completed"})
    assert set_removal_refused(r)[1] == "False"
    r.refused["east"] = [Location("east", "c")]
    refused = set_removal_refused(r)
    assert refused[1:3] == ("True", reasons.REMOVAL_REFUSED)
    assert "east/c" in refused[3]


def test_status_round_trips_through_load_record_and_keeps_transition_times() -> None:
    r = record({EAST_A: "Completed", EAST_B: "Replicating", WEST_A: "Completed"})
    r.replica(EAST_A).digest = "sha256:1"
    r.replica(EAST_A).bytes_copied = 60
    first = imageversion_status(r, {}, 1, T0)
    assert list(first) == ["replicationStatus", "observedGeneration", "conditions"]
    assert first["replicationStatus"]["aggregatedState"] == "InProgress"
    east = first["replicationStatus"]["summary"][0]
    assert (east["region"], east["state"], east["progress"], east["bytesCopied"]) == (
        "east",
        "Replicating",
        70,
        60,
    )
    back = load_record(first)
    assert {loc: p.state for loc, p in back.replicas.items()} == {
        EAST_A: "Completed",
        EAST_B: "Replicating",
        WEST_A: "Completed",
    }
    assert back.replica(EAST_A).digest == "sha256:1"
    back.layouts = r.layouts
    later = imageversion_status(back, first, 1, T0 + timedelta(minutes=5))
    # Same states: the region lines' transition times stay; byte counters survive.
    assert (
        later["replicationStatus"]["summary"][0]["lastTransitionTime"] == east["lastTransitionTime"]
    )
    assert later["replicationStatus"]["summary"][0]["bytesCopied"] == 60


def test_a_region_no_longer_targeted_stays_visible_while_removed() -> None:
    r = record({EAST_A: "Completed", EAST_B: "Completed", WEST_A: "Completed"})
    r.replica(Location("north", "a")).state = "Removing"
    assert [s.region for s in r.summaries()] == ["east", "north", "west"]
    assert r.summaries()[1].state == "Removing"
