"""Version ordering and the "latest" rule: named cases, then properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galleon.core.versions import (
    InvalidVersion,
    RegionFacts,
    VersionFacts,
    is_newer,
    latest_by_region,
    latest_in_region,
    latest_overall,
    parse_version,
    resolve,
    version_key,
)

DONE = RegionFacts(completed=True)
BUSY = RegionFacts(completed=False)
EXCLUDED_HERE = RegionFacts(completed=True, excluded_from_latest=True)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("1.0", id="two-parts"),
        pytest.param("1.0.0.0", id="four-parts"),
        pytest.param("01.0.0", id="leading-zero"),
        pytest.param("1.0.0-rc.1", id="prerelease"),
        pytest.param("1.0.0+build", id="build-metadata"),
        pytest.param("v1.0.0", id="v-prefix"),
        pytest.param("", id="empty"),
        pytest.param("a.b.c", id="letters"),
    ],
)
def test_invalid_versions_are_refused(text: str) -> None:
    with pytest.raises(InvalidVersion, match=r"MAJOR\.MINOR\.PATCH"):
        parse_version(text)


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        pytest.param("1.9.9", "1.10.0", id="minor-numeric-not-lexical"),
        pytest.param("1.0.9", "1.0.10", id="patch-numeric"),
        pytest.param("9.99.99", "10.0.0", id="major-wins"),
        pytest.param("0.0.0", "0.0.1", id="zeroes"),
    ],
)
def test_ordering(older: str, newer: str) -> None:
    assert version_key(older) < version_key(newer)
    assert is_newer(newer, older) and not is_newer(older, newer)


@pytest.mark.parametrize(
    ("versions", "region", "expected"),
    [
        pytest.param([], "eastus2", None, id="no-versions"),
        pytest.param(
            [VersionFacts("1.0.0", regions={"eastus2": BUSY})],
            "eastus2",
            None,
            id="only-version-still-replicating",
        ),
        pytest.param(
            [
                VersionFacts("1.0.0", regions={"eastus2": DONE}),
                VersionFacts("1.0.2", regions={"westus": DONE}),
            ],
            "eastus2",
            "1.0.0",
            id="newer-version-only-in-another-region",
        ),
        pytest.param(
            [
                VersionFacts("1.0.0", regions={"eastus2": DONE}),
                VersionFacts("1.0.2", regions={"eastus2": DONE}),
            ],
            "eastus2",
            "1.0.2",
            id="newer-version-replicated",
        ),
        pytest.param(
            [
                VersionFacts("1.0.0", regions={"eastus2": DONE}),
                VersionFacts("1.0.2", excluded_from_latest=True, regions={"eastus2": DONE}),
            ],
            "eastus2",
            "1.0.0",
            id="newer-version-excluded-globally",
        ),
        pytest.param(
            [
                VersionFacts("1.0.0", regions={"eastus2": DONE}),
                VersionFacts("1.0.2", regions={"eastus2": EXCLUDED_HERE}),
            ],
            "eastus2",
            "1.0.0",
            id="newer-version-excluded-in-region",
        ),
        pytest.param(
            [
                VersionFacts("1.0.0", regions={"eastus2": DONE}),
                VersionFacts("1.0.2", deleting=True, regions={"eastus2": DONE}),
            ],
            "eastus2",
            "1.0.0",
            id="newer-version-being-deleted",
        ),
        pytest.param(
            [
                VersionFacts("1.10.0", regions={"eastus2": DONE}),
                VersionFacts("1.9.0", regions={"eastus2": DONE}),
            ],
            "eastus2",
            "1.10.0",
            id="numeric-ordering",
        ),
    ],
)
def test_latest_in_region(versions: list[VersionFacts], region: str, expected: str | None) -> None:
    assert latest_in_region(versions, region) == expected


def test_latest_overall_ignores_replication_but_not_exclusion() -> None:
    versions = [
        VersionFacts("1.0.0", regions={"eastus2": DONE}),
        VersionFacts("1.0.2", regions={"eastus2": BUSY}),
        VersionFacts("2.0.0", excluded_from_latest=True),
    ]
    assert latest_overall(versions) == "1.0.2"
    assert latest_by_region(versions) == {"eastus2": "1.0.0"}


@pytest.mark.parametrize(
    ("requested", "expected_target", "expected_waiting", "expected_reason"),
    [
        pytest.param("latest", "1.0.0", "1.0.2", "LatestResolved", id="latest-with-newer-coming"),
        pytest.param("1.0.0", "1.0.0", None, "VersionPinned", id="pinned-available"),
        pytest.param("1.0.2", None, "1.0.2", "VersionNotReplicated", id="pinned-not-replicated"),
        pytest.param("3.0.0", None, None, "VersionNotFound", id="pinned-missing"),
    ],
)
def test_resolve(
    requested: str, expected_target: str | None, expected_waiting: str | None, expected_reason: str
) -> None:
    versions = [
        VersionFacts("1.0.0", regions={"eastus2": DONE}),
        VersionFacts("1.0.2", regions={"eastus2": BUSY, "westus": DONE}),
    ]
    resolution = resolve(versions, "eastus2", requested)
    assert (resolution.target, resolution.waiting_for_replication, resolution.reason) == (
        expected_target,
        expected_waiting,
        expected_reason,
    )


def test_resolve_pinned_version_excluded_from_latest_is_still_usable() -> None:
    versions = [VersionFacts("1.0.0", excluded_from_latest=True, regions={"eastus2": DONE})]
    assert resolve(versions, "eastus2", "1.0.0").target == "1.0.0"
    assert resolve(versions, "eastus2", "latest").target is None


# Properties ----------------------------------------------------------------------------

numbers = st.integers(min_value=0, max_value=10_000)
version_texts = st.builds(lambda a, b, c: f"{a}.{b}.{c}", numbers, numbers, numbers)
REGIONS = ("westcentralus", "southcentralus", "eastus2")
region_facts = st.builds(RegionFacts, completed=st.booleans(), excluded_from_latest=st.booleans())
facts_lists = st.lists(
    st.builds(
        VersionFacts,
        version=version_texts,
        excluded_from_latest=st.booleans(),
        deleting=st.booleans(),
        regions=st.dictionaries(st.sampled_from(REGIONS), region_facts),
    ),
    max_size=12,
    unique_by=lambda facts: facts.version,
)


@given(st.lists(version_texts, min_size=1))
def test_ordering_matches_integer_tuples(texts: list[str]) -> None:
    ordered = sorted(texts, key=version_key)
    as_tuples = [tuple(int(part) for part in text.split(".")) for text in ordered]
    assert as_tuples == sorted(as_tuples)


@given(version_texts)
def test_parse_round_trips(text: str) -> None:
    assert str(parse_version(text)) == text


@given(facts_lists, st.sampled_from(REGIONS))
def test_latest_in_region_is_the_highest_eligible(
    versions: list[VersionFacts], region: str
) -> None:
    latest = latest_in_region(versions, region)
    eligible = [v.version for v in versions if v.eligible_in(region)]
    if not eligible:
        assert latest is None
        return
    assert latest in eligible
    assert all(version_key(latest) >= version_key(other) for other in eligible)
    chosen = next(v for v in versions if v.version == latest)
    assert chosen.regions[region].completed
    assert not chosen.excluded_from_latest and not chosen.regions[region].excluded_from_latest
    assert not chosen.deleting


@given(facts_lists, st.sampled_from(REGIONS))
def test_latest_in_region_never_exceeds_latest_overall(
    versions: list[VersionFacts], region: str
) -> None:
    regional, overall = latest_in_region(versions, region), latest_overall(versions)
    if regional is not None:
        assert overall is not None and version_key(regional) <= version_key(overall)


@given(facts_lists, st.sampled_from(REGIONS))
def test_latest_does_not_depend_on_order(versions: list[VersionFacts], region: str) -> None:
    assert latest_in_region(versions, region) == latest_in_region(versions[::-1], region)


@given(facts_lists, st.sampled_from(REGIONS))
def test_completing_replication_never_moves_latest_backwards(
    versions: list[VersionFacts], region: str
) -> None:
    before = latest_in_region(versions, region)
    completed = [
        VersionFacts(
            v.version,
            v.excluded_from_latest,
            v.deleting,
            {r: RegionFacts(True, f.excluded_from_latest) for r, f in v.regions.items()},
        )
        for v in versions
    ]
    after = latest_in_region(completed, region)
    if before is not None:
        assert after is not None and version_key(after) >= version_key(before)


@given(facts_lists, st.sampled_from(REGIONS))
def test_resolved_latest_waiting_version_is_newer(
    versions: list[VersionFacts], region: str
) -> None:
    resolution = resolve(versions, region, "latest")
    assert resolution.target == latest_in_region(versions, region)
    if resolution.waiting_for_replication is not None:
        assert is_newer(resolution.waiting_for_replication, resolution.target)
