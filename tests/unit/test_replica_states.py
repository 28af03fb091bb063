"""The replica state table: every move the controller makes is allowed, the
impossible ones raise (galleon.core.replica_states)."""

from __future__ import annotations

from typing import Any

import pytest

from galleon.core.replica_states import TRANSITIONS, IllegalTransition, transition
from galleon.core.replication import Location, ReplicaProgress


@pytest.mark.parametrize(
    ("current", "new"),
    [
        pytest.param("Queued", "Replicating", id="copy-starts"),
        pytest.param("Replicating", "Completed", id="copy-done"),
        pytest.param("Replicating", "Failed", id="permanent-error"),
        pytest.param("Replicating", "Replicating", id="transient-error-retries"),
        pytest.param("Failed", "Replicating", id="failed-retried"),
        pytest.param("Completed", "Queued", id="copy-vanished"),
        pytest.param("Completed", "Removing", id="no-longer-wanted"),
        pytest.param("Removing", "Failed", id="removal-failed"),
        pytest.param("Removing", "Queued", id="wanted-again"),
    ],
)
def test_allowed(current: Any, new: Any) -> None:
    assert transition(current, new) == new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        pytest.param("Removing", "Completed", id="removed-is-not-complete"),
        pytest.param("Queued", "Completed", id="nothing-copied-yet"),
        pytest.param("Failed", "Completed", id="failure-is-not-success"),
        pytest.param("Completed", "Replicating", id="complete-requeued-first"),
        pytest.param("Completed", "Failed", id="complete-cannot-fail"),
    ],
)
def test_illegal(current: Any, new: Any) -> None:
    with pytest.raises(IllegalTransition, match=f"from {current} to {new}"):
        transition(current, new)


def test_every_state_has_a_row_and_only_known_targets() -> None:
    states = set(TRANSITIONS)
    assert states == {"Queued", "Replicating", "Completed", "Failed", "Removing"}
    assert all(targets <= states for targets in TRANSITIONS.values())


def test_progress_moves_through_the_table() -> None:
    replica = ReplicaProgress(Location("east", "a"))
    replica.move("Replicating", "retrying: Unavailable")
    replica.move("Replicating")
    assert replica.message == "retrying: Unavailable"  # kept unless a new one is given
    replica.move("Completed", "")
    with pytest.raises(IllegalTransition):
        replica.move("Failed")
    assert replica.state == "Completed"
