"""The bound on `StatusWriter`'s conflict retries. What a conflict does (re-read,
recompute over the fresh status, stop on deletion) is tested against the real
apiserver in tests/integration/test_status_concurrency.py; an API server that
answers 409 to every write cannot be made there, so this one is played."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from galleon.controllers.imageversion import status_writer
from galleon.controllers.imageversion.status_writer import MAX_WRITE_ATTEMPTS, StatusWriter
from galleon.core import reasons
from galleon.core.conditions import kstatus
from galleon.kube import client as kube


class AlwaysChanged:
    """An object some other writer changes between every read and write."""

    def __init__(self) -> None:
        self.sent: list[str | None] = []
        self.version = 10

    async def patch_status(self, *_: Any, resource_version: str | None = None) -> str:
        self.sent.append(resource_version)
        raise kube.Conflict("changed")

    async def get_or_none(self, *_: Any) -> Any:
        self.version += 1
        body = {"metadata": {"resourceVersion": str(self.version)}, "status": {}}
        return type("Found", (), {"to_dict": lambda _self: body})()


def test_conflicts_are_retried_a_bounded_number_of_times(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = AlwaysChanged()
    monkeypatch.setattr(status_writer.kube, "patch_status", fake.patch_status)
    monkeypatch.setattr(status_writer.kube, "get_or_none", fake.get_or_none)
    body = {"metadata": {"namespace": "a", "name": "v", "resourceVersion": "10"}, "spec": {}}
    writer = StatusWriter(body, status_interval=0)
    with pytest.raises(kube.Conflict):
        asyncio.run(writer.set_conditions(kstatus(True, reasons.RECONCILED, "ok")))
    # Each attempt carried the resourceVersion of the read before it.
    assert fake.sent == [str(v) for v in range(10, 10 + MAX_WRITE_ATTEMPTS)]
    assert writer.status == {}  # nothing was written
