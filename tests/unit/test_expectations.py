"""Expectations are met or cleared by what is observed (a LIST, the pod cache's
deliveries), never by a timer."""

from __future__ import annotations

from galleon.core.expectations import Expectations


def test_a_create_is_pending_until_a_list_sent_after_it_is_observed() -> None:
    expectations = Expectations()
    expectations.created(0, "1.0.2-h", "u0", at=100.0)
    expectations.created(1, "1.0.2-h", "u1", at=105.0)
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
    expectations.created(4, "1.0.2-h", "u4", at=50.0)
    expectations.observe(listed_at=50.001)
    assert not expectations.pending(4, "1.0.2-h")


def test_a_create_seen_by_the_cache_is_met_even_if_the_pod_has_gone_since() -> None:
    # The cache delivered the pod and then its deletion before the next pass: the pod
    # is not in the pass's view, but its UID was seen, so it may be created again.
    expectations = Expectations()
    expectations.created(2, "1.0.2-h", "u2", at=50.0)
    expectations.observe(listed_at=10.0, seen={"other"})
    assert expectations.pending(2, "1.0.2-h")
    expectations.observe(listed_at=10.0, seen={"u2"})
    assert not expectations.pending(2, "1.0.2-h")


def test_an_expectation_is_for_one_revision() -> None:
    expectations = Expectations()
    expectations.created(2, "1.0.0-h", "u2", at=10.0)
    assert expectations.pending(2, "1.0.0-h")
    assert not expectations.pending(2, "1.0.2-h")  # a rollback or a new target is not held


def test_a_delete_is_pending_until_the_pod_is_seen_deleting_or_gone() -> None:
    expectations = Expectations()
    expectations.deleted(0, "a", at=20.0)
    expectations.deleted(1, "b", at=20.0)
    expectations.deleted(2, "c", at=20.0)
    expectations.observe(listed_at=10.0, pods={0: ("a", False), 1: ("b", True), 2: ("c2", False)})
    assert expectations.deleting(0, "a")  # the cache has not delivered the delete yet
    assert not expectations.deleting(1, "b")  # seen terminating
    assert not expectations.deleting(2, "c")  # gone, and a new pod in its place
    assert not expectations.deleting(0, "a2")  # another pod at that index is not held
    expectations.observe(listed_at=10.0, pods={})
    assert not expectations.deleting(0, "a")  # gone
    assert len(expectations) == 0


def test_a_list_sent_after_a_delete_decides_it() -> None:
    expectations = Expectations()
    expectations.deleted(0, "a", at=20.0)
    expectations.observe(listed_at=21.0, pods={0: ("a", False)})
    assert not expectations.deleting(0, "a")
