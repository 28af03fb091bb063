"""`kubectl galleon status` fails at once on a Stalled object, whatever its kind
(`galleon.cli.outcome.stalled` and `decide`): kstatus reads Stalled=True as failed,
since it does not resolve by itself."""

from __future__ import annotations

from typing import Any

import pytest

from galleon.cli.kinds import KINDS, KindView
from galleon.cli.outcome import EXIT_FAILED, Outcome, decide, stalled


def obj(
    *conditions: dict[str, Any], generation: int = 2, observed: int | None = 2, **status: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {"conditions": list(conditions), **status}
    if observed is not None:
        found["observedGeneration"] = observed
    return {"metadata": {"generation": generation}, "spec": {}, "status": found}


def stalled_condition(status: str = "True", gen: int | None = 2, **extra: Any) -> dict[str, Any]:
    found = {
        "type": "Stalled",
        "status": status,
        "reason": "RegionNotFound",
        "message": "Region mars does not exist",
        **extra,
    }
    if gen is not None:
        found["observedGeneration"] = gen
    return found


FAILED = Outcome("failed", "stalled (RegionNotFound): Region mars does not exist")


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(obj(stalled_condition()), FAILED, id="stalled-for-this-generation"),
        pytest.param(
            obj(stalled_condition(gen=None)), FAILED, id="no-condition-generation-uses-the-status"
        ),
        pytest.param(
            obj(stalled_condition(message="")),
            Outcome("failed", "stalled (RegionNotFound)"),
            id="without-a-message",
        ),
        pytest.param(obj(stalled_condition(gen=1)), None, id="said-of-an-older-generation"),
        pytest.param(
            obj(stalled_condition(), observed=1), None, id="status-not-yet-for-this-generation"
        ),
        pytest.param(obj(stalled_condition(), observed=None), None, id="no-status-yet"),
        pytest.param(obj(stalled_condition("False")), None, id="not-stalled"),
        pytest.param(obj(), None, id="no-stalled-condition"),
    ],
)
def test_stalled(given: dict[str, Any], expected: Outcome | None) -> None:
    assert stalled(given) == expected


@pytest.mark.parametrize(
    ("kind_says", "expected"),
    [
        pytest.param(Outcome("waiting", "replicating"), FAILED, id="waiting-ends-at-once"),
        pytest.param(Outcome("done", "ready"), FAILED, id="stalled-wins-over-done"),
        pytest.param(
            Outcome("failed", "the upgrade faulted (X)"),
            Outcome("failed", "the upgrade faulted (X)"),
            id="the-kinds-own-failure-is-more-precise",
        ),
    ],
)
def test_decide(kind_says: Outcome, expected: Outcome) -> None:
    assert decide(obj(stalled_condition()), lambda _: kind_says) == expected
    assert decide(obj(stalled_condition("False")), lambda _: kind_says) == kind_says


@pytest.mark.parametrize("view", KINDS, ids=[view.kind.label for view in KINDS])
def test_every_kind_fails_when_stalled(view: KindView) -> None:
    # What the operator writes for a ScaleSet whose Region is missing, or an
    # ImageVersion whose version another one publishes: nothing else in the status.
    outcome = decide(obj(stalled_condition()), view.outcome)
    assert outcome == FAILED and outcome.exit_code == EXIT_FAILED
