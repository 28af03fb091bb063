"""`loop.kopf_settled`: a new object's first pass waits for kopf's own writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import pytest

from galleon.controllers.loop import kopf_settled

FINALIZER, ANNOTATION = "galleon.dev/finalizer", "galleon.dev/last-handled-configuration"


class Stopped:
    """kopf's daemon stop flag as a daemon sees it: true once set, `wait` awaitable."""

    def __init__(self) -> None:
        self.event = asyncio.Event()

    def __bool__(self) -> bool:
        return self.event.is_set()

    async def wait(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), timeout)
        return self.event.is_set()


def settle(meta: dict[str, Any], change: Any = None, *, timeout: float = 5.0) -> bool:
    async def scenario() -> bool:
        stopped = Stopped()
        if change is not None:
            asyncio.get_running_loop().call_later(0.05, change, meta, stopped)
        return await kopf_settled(
            meta,
            stopped,
            logging.getLogger("test"),
            finalizer=FINALIZER,
            annotation=ANNOTATION,
            timeout=timeout,
        )

    return asyncio.run(scenario())


def test_an_object_kopf_has_written_does_not_wait() -> None:
    assert settle({"finalizers": [FINALIZER], "annotations": {ANNOTATION: "{}"}}, timeout=0)


def test_the_wait_ends_when_kopf_second_write_is_seen() -> None:
    def kopf_writes(meta: dict[str, Any], _: Stopped) -> None:
        meta["annotations"] = {ANNOTATION: "{}"}

    assert settle({"finalizers": [FINALIZER]}, kopf_writes)


def test_the_finalizer_alone_is_not_enough_and_the_timeout_goes_on_saying_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        assert settle({"finalizers": [FINALIZER]}, timeout=0.1)
    assert "not on the object yet" in caplog.text


def test_a_deletion_ends_the_wait() -> None:
    def deleted(meta: dict[str, Any], _: Stopped) -> None:
        meta["deletionTimestamp"] = "2026-12-07T00:00:00Z"

    assert settle({}, deleted)


def test_a_stopped_daemon_ends_the_wait_unsettled() -> None:
    def stop(_: dict[str, Any], stopped: Stopped) -> None:
        stopped.event.set()

    assert not settle({}, stop, timeout=30)
