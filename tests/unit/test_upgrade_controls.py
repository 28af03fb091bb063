"""The start and cancel annotations: a time with a zone is a control; anything else is
no control, and `Controls.refused` says why (annotations are never checked at
admission, so this is the only word the user gets)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from galleon.core import instances as inst
from galleon.core.upgrade_trigger import Controls


@pytest.mark.parametrize(
    ("value", "start_at", "words"),
    [
        pytest.param("2026-03-01T12:00:00Z", datetime(2026, 3, 1, 12, tzinfo=UTC), None, id="utc"),
        pytest.param(
            "2026-03-01T13:00:00+01:00", datetime(2026, 3, 1, 12, tzinfo=UTC), None, id="offset"
        ),
        pytest.param("2026-03-01T12:00:00", None, "has no time zone", id="zone-less"),
        pytest.param("9999-12-31T23:59:59-01:00", None, "outside the years", id="overflows"),
        pytest.param("now", None, "not an RFC 3339 time", id="not-a-time"),
    ],
)
def test_start_annotation(value: str, start_at: datetime | None, words: str | None) -> None:
    controls = Controls.from_annotations({inst.START_ANNOTATION: value})
    assert controls.start_at == start_at
    if words is None:
        assert controls.refused == ()
    else:
        (refusal,) = controls.refused
        assert refusal.startswith(f"{inst.START_ANNOTATION} ignored: ")
        assert words in refusal


def test_both_annotations_are_reported_and_absent_ones_are_not() -> None:
    assert Controls.from_annotations({}).refused == ()
    controls = Controls.from_annotations(
        {inst.START_ANNOTATION: "2026-03-01", inst.CANCEL_ANNOTATION: "2026-03-01T12:00:00"}
    )
    assert (controls.start_at, controls.cancel_at) == (None, None)
    assert [r.split(" ")[0] for r in controls.refused] == [
        inst.START_ANNOTATION,
        inst.CANCEL_ANNOTATION,
    ]


def test_a_running_upgrade_compares_a_zoned_cancel_without_type_error() -> None:
    # The TypeError of issue 11: a naive time compared with an aware one. Every time
    # Controls holds is aware, so the comparison the trigger makes always works.
    controls = Controls.from_annotations({inst.CANCEL_ANNOTATION: "2026-03-01T12:00:00+05:30"})
    assert controls.cancel_at is not None
    assert controls.cancel_at < datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_the_intent_carries_the_refusals_for_the_status() -> None:
    from galleon.api.scaleset import ScaleSetSpec
    from galleon.core.upgrade_trigger import RecordedUpgrade, upgrade_intent

    spec = ScaleSetSpec.model_validate(
        {
            "region": "r",
            "capacity": 1,
            "imageReference": {"imageDefinitionName": "d"},
            "template": {"spec": {"containers": [{"name": "os", "image": "x"}]}},
        }
    )
    controls = Controls.from_annotations({inst.CANCEL_ANNOTATION: "tomorrow"})
    intent = upgrade_intent(
        spec, [], None, RecordedUpgrade(), controls, datetime(2026, 3, 1, tzinfo=UTC)
    )
    assert intent.refused_controls == controls.refused != ()
