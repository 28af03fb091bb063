"""Expectations are met or cleared by what a LIST shows, never by a timer."""

from __future__ import annotations

from galleon.core.expectations import Expectations


def test_a_create_is_pending_until_a_list_sent_after_it_is_observed() -> None:
    expectations = Expectations()
    expectations.created(0, "1.0.2-h", at=100.0)
    expectations.created(1, "1.0.2-h", at=105.0)
    expectations.observe(listed_at=103.0)
    # The LIST sent at 103 shows (or shows the deletion of) pod 0, not pod 1 yet.
    assert not expectations.pending(0, "1.0.2-h")
    assert expectations.pending(1, "1.0.2-h")
    assert len(expectations) == 1


def test_an_observed_deletion_allows_the_re_create_at_once() -> None:
    # kwok, an eviction or a person deleted the pod right after its create: the next
    # pass's LIST does not show it, and the pod is created again in that same pass,
    # however little time has passed.
    expectations = Expectations()
    expectations.created(4, "1.0.2-h", at=50.0)
    expectations.observe(listed_at=50.001)
    assert not expectations.pending(4, "1.0.2-h")


def test_an_expectation_is_for_one_revision() -> None:
    expectations = Expectations()
    expectations.created(2, "1.0.0-h", at=10.0)
    assert expectations.pending(2, "1.0.0-h")
    assert not expectations.pending(2, "1.0.2-h")  # a rollback or a new target is not held
