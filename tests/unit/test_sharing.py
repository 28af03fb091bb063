"""Who may deploy a gallery's images (galleon.core.sharing), as tables of named cases."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from galleon.api.gallery import NamespaceSelector, SharingProfile
from galleon.core import reasons
from galleon.core.sharing import needs_labels, selector_matches, sharing

DEFINITION = {"spec": {"galleryName": "contoso"}}


def gallery(**profile: Any) -> dict[str, Any]:
    return {"spec": {"sharingProfile": profile}}


@pytest.mark.parametrize(
    ("consumer", "definition", "found_gallery", "labels", "allowed"),
    [
        pytest.param("a", None, None, {}, True, id="own-namespace-always"),
        pytest.param("b", DEFINITION, gallery(), {}, False, id="default-private"),
        pytest.param("b", DEFINITION, gallery(permissions="Private"), {}, False, id="private"),
        pytest.param(
            "b",
            DEFINITION,
            gallery(permissions="Namespaces", namespaces=["b"]),
            {},
            True,
            id="listed",
        ),
        pytest.param(
            "c",
            DEFINITION,
            gallery(permissions="Namespaces", namespaces=["b"]),
            {},
            False,
            id="not-listed",
        ),
        pytest.param(
            "c",
            DEFINITION,
            gallery(permissions="Namespaces", namespaceSelector={"matchLabels": {"team": "c"}}),
            {"team": "c"},
            True,
            id="selected-by-label",
        ),
        pytest.param(
            "c",
            DEFINITION,
            gallery(permissions="Namespaces", namespaceSelector={"matchLabels": {"team": "c"}}),
            {"team": "d"},
            False,
            id="label-does-not-match",
        ),
        pytest.param("z", DEFINITION, gallery(permissions="Cluster"), {}, True, id="community"),
        pytest.param("b", None, None, {}, False, id="missing-definition"),
        pytest.param("b", DEFINITION, None, {}, False, id="missing-gallery"),
    ],
)
def test_sharing(
    consumer: str,
    definition: dict[str, Any] | None,
    found_gallery: dict[str, Any] | None,
    labels: dict[str, str],
    allowed: bool,
) -> None:
    answer = sharing(consumer, "a", "ubuntu", definition, found_gallery, labels)
    assert answer.allowed is allowed
    assert answer.reason == (reasons.SHARED if allowed else reasons.IMAGE_NOT_SHARED)


def test_a_refusal_does_not_tell_missing_from_unshared() -> None:
    missing = sharing("b", "a", "ubuntu", None, None, {})
    private = sharing("b", "a", "ubuntu", DEFINITION, gallery(), {})
    assert missing == private
    assert "a/ubuntu" in missing.message and "namespace b" in missing.message
    assert "contoso" not in private.message  # nothing of namespace a leaks


@pytest.mark.parametrize(
    ("expressions", "labels", "matches"),
    [
        pytest.param([{"key": "t", "operator": "In", "values": ["x"]}], {"t": "x"}, True, id="in"),
        pytest.param([{"key": "t", "operator": "In", "values": ["x"]}], {}, False, id="in-absent"),
        pytest.param(
            [{"key": "t", "operator": "NotIn", "values": ["x"]}], {}, True, id="notin-absent"
        ),
        pytest.param(
            [{"key": "t", "operator": "NotIn", "values": ["x"]}], {"t": "x"}, False, id="notin"
        ),
        pytest.param([{"key": "t", "operator": "Exists"}], {"t": ""}, True, id="exists"),
        pytest.param([{"key": "t", "operator": "DoesNotExist"}], {"t": ""}, False, id="dne"),
    ],
)
def test_selector_expressions(
    expressions: list[dict[str, Any]], labels: dict[str, str], matches: bool
) -> None:
    selector = NamespaceSelector.model_validate({"matchExpressions": expressions})
    assert selector_matches(selector, labels) is matches


@pytest.mark.parametrize(
    "profile",
    [
        pytest.param({"permissions": "Private", "namespaces": ["b"]}, id="private-with-list"),
        pytest.param({"permissions": "Cluster", "namespaces": ["b"]}, id="cluster-with-list"),
        pytest.param({"permissions": "Namespaces"}, id="namespaces-without-any"),
    ],
)
def test_profiles_that_say_nothing_coherent_are_refused(profile: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError, match="namespaces"):
        SharingProfile.model_validate(profile)


def test_labels_are_read_only_when_a_selector_can_change_the_answer() -> None:
    listed = SharingProfile.model_validate({"permissions": "Namespaces", "namespaces": ["b"]})
    selected = SharingProfile.model_validate(
        {"permissions": "Namespaces", "namespaceSelector": {"matchLabels": {"t": "x"}}}
    )
    assert (needs_labels(listed), needs_labels(selected)) == (False, True)
