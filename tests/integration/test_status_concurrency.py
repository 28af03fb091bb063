"""An ImageVersion's status has more than one writer: the replication pass
(`StatusWriter`) and the deletion path (DeletionHeld). Against the real apiserver,
another writer changes the status between two writes of a pass; what it wrote must
survive, and a version being deleted stops the pass's writes.

No operator runs here: the test drives `StatusWriter` as a pass does, and plays the
other writer with the admin client, writing as `deletion.delete_version` does (a
merge patch of the conditions, without a resourceVersion).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from galleon.controllers.imageversion.status_writer import StatusWriter, VersionDeleting
from galleon.core import reasons
from galleon.core.conditions import kstatus, merged
from galleon.core.imageversion_status import load_record
from galleon.kube import client as galleon_client
from galleon.kube.resources import ImageVersion

pytestmark = pytest.mark.integration
HOLD = "galleon.test/hold"
"""A finalizer of the test's own, so a deleted version stays (deleting) until it is removed."""


def create_version(kube: Client, namespace: str, name: str = "os-1-0-0") -> dict[str, Any]:
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageVersion",
                "metadata": {"name": name, "namespace": namespace, "finalizers": [HOLD]},
                "spec": {
                    "imageDefinitionName": "os",
                    "version": "1.0.0",
                    "source": {"image": "registry.example.com/os:1.0.0"},
                    "publishingProfile": {"targetRegions": [{"name": "eastus2"}]},
                },
            }
        )
    )
    return read(kube, namespace, name)


def read(kube: Client, namespace: str, name: str = "os-1-0-0") -> dict[str, Any]:
    return kube.get(ImageVersion, name, namespace=namespace).to_dict()  # type: ignore[no-any-return]


def conditions(kube: Client, namespace: str) -> dict[str, dict[str, Any]]:
    return {
        c["type"]: c for c in (read(kube, namespace).get("status") or {}).get("conditions") or []
    }


def other_writer(kube: Client, namespace: str, type_: str, reason: str, message: str) -> None:
    """What `deletion.delete_version` does: read, merge one condition, patch (no
    resourceVersion)."""
    body = read(kube, namespace)
    status = body.get("status") or {}
    update = [(type_, "True", reason, message)]
    now = datetime.now(UTC)
    patch = {"conditions": merged(status, body["metadata"].get("generation"), update, now)}
    kube.patch(
        ImageVersion.Status,
        "os-1-0-0",
        {"status": patch},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )


@contextlib.contextmanager
def released(kube: Client, namespace: str) -> Iterator[None]:
    """Remove the test's finalizer at the end, so the namespace can go."""
    try:
        yield
    finally:
        with contextlib.suppress(ApiError):
            kube.patch(
                ImageVersion,
                "os-1-0-0",
                {"metadata": {"finalizers": None}},
                namespace=namespace,
                patch_type=PatchType.MERGE,
            )


async def _run(coroutine: Any) -> Any:
    try:
        return await coroutine
    finally:
        await galleon_client.close()


def run(coroutine: Any) -> Any:
    return asyncio.run(_run(coroutine))


def test_a_condition_written_by_another_writer_between_two_writes_survives(
    kube: Client, namespace: str, operator_client: None
) -> None:
    with released(kube, namespace):
        body = create_version(kube, namespace)
        writer = StatusWriter(body, status_interval=0)

        async def pass_() -> None:
            await writer.set_conditions(
                kstatus(False, reasons.PROGRESSING, "replication starts", progressing=True)
            )
            # The deletion path holds the deletion while the pass runs on.
            other_writer(kube, namespace, reasons.DELETION_HELD, reasons.IN_USE, "held: web")
            await writer.flush(load_record({}), force=True)
            # Any other condition too, before a write of the other kind.
            other_writer(kube, namespace, "Audited", "Checked", "by an auditor")
            await writer.set_conditions(kstatus(False, reasons.INVALID_SPEC, "bad", stalled=True))

        run(pass_())
        found = conditions(kube, namespace)
        assert found[reasons.DELETION_HELD]["status"] == "True"
        assert found[reasons.DELETION_HELD]["message"] == "held: web"
        assert found["Audited"]["reason"] == "Checked"
        # ...and what the pass wrote is there as well, computed over the fresh status.
        assert found[reasons.READY]["reason"] == reasons.INVALID_SPEC
        assert found[reasons.STALLED]["status"] == "True"
        status = read(kube, namespace)["status"]
        assert status["replicationStatus"]["aggregatedState"] == "Unknown"
        assert writer.status["conditions"] == status["conditions"]


def test_a_version_being_deleted_stops_the_pass_and_keeps_deletion_held(
    kube: Client, namespace: str, operator_client: None
) -> None:
    with released(kube, namespace):
        body = create_version(kube, namespace)
        writer = StatusWriter(body, status_interval=0)
        kube.delete(ImageVersion, "os-1-0-0", namespace=namespace)  # stays: the finalizer
        other_writer(kube, namespace, reasons.DELETION_HELD, reasons.IN_USE, "held: web")

        with pytest.raises(VersionDeleting, match="being deleted"):
            run(writer.flush(load_record({}), force=True))
        found = conditions(kube, namespace)
        assert list(found) == [reasons.DELETION_HELD]  # nothing of the pass's written
        assert read(kube, namespace)["metadata"].get("deletionTimestamp")


def test_each_write_carries_the_resource_version_the_last_one_returned(
    kube: Client, namespace: str, operator_client: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = []
    really_get = galleon_client.get_or_none

    async def counted_get(*args: Any) -> Any:
        reads.append(args)
        return await really_get(*args)

    monkeypatch.setattr(galleon_client, "get_or_none", counted_get)
    with released(kube, namespace):
        body = create_version(kube, namespace)
        writer = StatusWriter(body, status_interval=0)
        assert writer.resource_version == body["metadata"]["resourceVersion"]
        seen = []

        async def pass_() -> None:
            for step in range(3):
                message = f"step {step}"  # a change each time: a no-op keeps the version
                await writer.set_conditions(kstatus(False, reasons.PROGRESSING, message))
                seen.append(writer.resource_version)

        run(pass_())
        # Nobody else wrote: no conflict, so no re-read, and each write moved it on.
        assert reads == []
        assert seen[-1] == read(kube, namespace)["metadata"]["resourceVersion"]
        assert len(set(seen)) == 3 and body["metadata"]["resourceVersion"] not in seen
