"""A ScaleSet's data-disk claims planned against what exists (galleon.core.claims)."""

from __future__ import annotations

from typing import Any

import pytest

from galleon.api.scaleset import ScaleSetSpec
from galleon.core import instances as inst
from galleon.core.claims import plan_claims

BODY = {"metadata": {"name": "web", "namespace": "team", "uid": "u-1"}}
OURS = inst.owner_reference(BODY)
THEIRS = {"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "u-9"}


def spec(
    capacity: int = 2, when_deleted: str = "Retain", when_scaled: str = "Retain"
) -> ScaleSetSpec:
    return ScaleSetSpec.model_validate(
        {
            "region": "eastus",
            "capacity": capacity,
            "imageReference": {"imageDefinitionName": "ubuntu"},
            "template": {"spec": {"containers": [{"name": "os"}]}},
            "dataDisks": [{"name": "data", "lun": 0, "diskSizeGB": 1}],
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": when_deleted,
                "whenScaled": when_scaled,
            },
        }
    )


def claim(
    index: Any, owners: list[dict[str, Any]] | None = None, deleting: bool = False
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": f"data-web-{index}",
        "labels": {inst.INDEX_LABEL: str(index)},
        "ownerReferences": owners or [],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-06-01T12:00:00Z"
    return {"metadata": meta}


@pytest.mark.parametrize(
    ("s", "claims", "pods", "create", "delete", "owners", "waiting"),
    [
        pytest.param(spec(), [], [], ["data-web-0", "data-web-1"], [], [], False, id="fresh"),
        pytest.param(spec(), [claim(0), claim(1)], [], [], [], [], False, id="all-present"),
        pytest.param(
            spec(capacity=1, when_scaled="Delete"),
            [claim(0), claim(1)],
            ["web-1"],
            [],
            [],
            [],
            True,
            id="scaled-in-disk-waits-for-its-pod",
        ),
        pytest.param(
            spec(capacity=1, when_scaled="Delete"),
            [claim(0), claim(1)],
            [],
            [],
            ["data-web-1"],
            [],
            False,
            id="scaled-in-disk-deleted-once-pod-gone",
        ),
        pytest.param(
            spec(capacity=1, when_scaled="Delete"),
            [claim(0), claim(1, deleting=True)],
            [],
            [],
            [],
            [],
            False,
            id="already-deleting-left-alone",
        ),
        pytest.param(
            spec(capacity=1),
            [claim(0), claim(1)],
            [],
            [],
            [],
            [],
            False,
            id="scaled-in-disk-retained",
        ),
        pytest.param(
            spec(when_deleted="Delete"),
            [claim(0, [THEIRS]), claim(1, [OURS])],
            [],
            [],
            [],
            [("data-web-0", [THEIRS, OURS])],
            False,
            id="when-deleted-delete-owns",
        ),
        pytest.param(
            spec(),
            [claim(0, [THEIRS, OURS]), claim(1)],
            [],
            [],
            [],
            [("data-web-0", [THEIRS])],
            False,
            id="retain-drops-only-our-owner",
        ),
        pytest.param(
            spec(capacity=1),
            [claim(0), claim("x")],
            [],
            [],
            [],
            [],
            False,
            id="unlabelled-claim-is-not-ours-to-decide",
        ),
    ],
)
def test_plan_claims(
    s: ScaleSetSpec,
    claims: list[dict[str, Any]],
    pods: list[str],
    create: list[str],
    delete: list[str],
    owners: list[tuple[str, list[dict[str, Any]]]],
    waiting: bool,
) -> None:
    plan = plan_claims(BODY, s, claims, pods)
    assert [m["metadata"]["name"] for m in plan.create] == create
    assert list(plan.delete) == delete
    assert [(n, list(r)) for n, r in plan.set_owners] == owners
    assert plan.waiting is waiting


def test_created_claims_are_owned_only_when_they_go_with_the_scaleset() -> None:
    owned = plan_claims(BODY, spec(when_deleted="Delete"), [], []).create[0]
    kept = plan_claims(BODY, spec(), [], []).create[0]
    assert owned["metadata"]["ownerReferences"] == [OURS]
    assert "ownerReferences" not in kept["metadata"]
