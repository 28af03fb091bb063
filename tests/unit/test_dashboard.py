"""The dashboard's pure page model, and its server as a browser meets it: read only,
answering on its own address only, the state as JSON and as a stream of changes.

The server runs on 127.0.0.1 with a `Store` filled by the test instead of by
watches (the watches against a real API server are in
tests/integration/test_dashboard.py).
"""

from __future__ import annotations

import asyncio
import doctest
import importlib
import json
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from galleon.cli.dashboard import model
from galleon.cli.dashboard.model import Observed, page
from galleon.cli.dashboard.server import allowed_hosts, content_policy, make_app, page_text
from galleon.cli.dashboard.watches import Store


@pytest.mark.parametrize(
    "module",
    ["galleon.cli.dashboard.model", "galleon.cli.dashboard.server"],
)
def test_docstring_examples(module: str) -> None:
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def meta(name: str, namespace: str = "team", **extra: Any) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, **extra}


def version(name: str, number: str, definition: str = "os", **status: Any) -> dict[str, Any]:
    return {
        "metadata": meta(name),
        "spec": {
            "imageDefinitionName": definition,
            "version": number,
            "publishingProfile": {"targetRegions": [{"name": "east"}, {"name": "west"}]},
        },
        "status": status,
    }


def pod(index: int, number: str, ready: bool = True, **meta_extra: Any) -> dict[str, Any]:
    return {
        "metadata": meta(
            f"web-{index}",
            labels={
                "galleon.dev/scaleset": "web",
                "galleon.dev/index": str(index),
                "galleon.dev/version": number,
            },
            **meta_extra,
        ),
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


# -- the page model -------------------------------------------------------------------------


def test_versions_are_grouped_by_definition_and_gallery_newest_first() -> None:
    document = page(
        Observed(
            scope="namespace team",
            galleries=[{"metadata": meta("gallery"), "spec": {"location": "eastus2"}}],
            definitions=[{"metadata": meta("os"), "spec": {"galleryName": "gallery"}}],
            versions=[
                version(
                    "os-1-0-0",
                    "1.0.0",
                    replicationStatus={
                        "aggregatedState": "Replicating",
                        "summary": [
                            {
                                "region": "east",
                                "state": "Completed",
                                "progress": 100,
                                "completedReplicas": 2,
                                "desiredReplicas": 2,
                            },
                            {"region": "west", "state": "Replicating", "progress": 40},
                        ],
                    },
                ),
                version("os-1-0-10", "1.0.10"),
            ],
            synced=True,
        )
    )
    (gallery,) = document["galleries"]
    assert gallery["name"] == "gallery" and gallery["found"] and gallery["location"] == "eastus2"
    (definition,) = gallery["definitions"]
    assert definition["regions"] == ["east", "west"]
    assert [v["version"] for v in definition["versions"]] == ["1.0.10", "1.0.0"]
    newest, older = definition["versions"]
    assert newest["cells"]["east"]["state"] == "Pending"  # targeted, nothing reported yet
    assert older["cells"]["east"] | {"details": None} == {
        "state": "Completed",
        "progress": 100,
        "replicas": "2/2",
        "bytesCopied": 0,
        "bytesTotal": 0,
        "details": None,
    }
    assert older["cells"]["west"]["progress"] == 40


@pytest.mark.parametrize(
    ("definitions", "versions", "expected"),
    [
        pytest.param(
            [{"metadata": meta("os"), "spec": {"galleryName": "missing"}}],
            [],
            [("missing", False, [("os", True)])],
            id="definition-whose-gallery-is-not-there",
        ),
        pytest.param(
            [],
            [version("os-1", "1.0.0", definition="lost")],
            [(None, False, [("lost", False)])],
            id="versions-whose-definition-is-not-there",
        ),
        pytest.param(
            [
                {"metadata": meta("os", "a"), "spec": {"galleryName": "g"}},
                {"metadata": meta("os", "b"), "spec": {"galleryName": "g"}},
            ],
            [],
            [("g", False, [("os", True)]), ("g", False, [("os", True)])],
            id="same-names-in-two-namespaces-stay-apart",
        ),
    ],
)
def test_what_is_missing_still_shows(
    definitions: list[dict[str, Any]], versions: list[dict[str, Any]], expected: list[Any]
) -> None:
    shown = model.galleries([], definitions, versions)
    assert [
        (g["name"], g["found"], [(d["name"], d["found"]) for d in g["definitions"]]) for g in shown
    ] == expected


@pytest.mark.parametrize(
    ("pod_document", "health"),
    [
        pytest.param(pod(0, "1.0.0"), "Healthy", id="ready"),
        pytest.param(pod(0, "1.0.0", ready=False), "NotReady", id="not-ready"),
        pytest.param(
            pod(0, "1.0.0", deletionTimestamp="2026-12-03T05:00:00Z"),
            "Terminating",
            id="being-deleted",
        ),
        pytest.param(
            {**pod(0, "1.0.0", ready=False), "status": {"phase": "Failed"}},
            "Failed",
            id="failed",
        ),
    ],
)
def test_instance_health(pod_document: dict[str, Any], health: str) -> None:
    assert model.instance(pod_document)["health"] == health


def test_a_scaleset_shows_its_own_instances_in_index_order_and_recent_events() -> None:
    scaleset = {
        "metadata": meta("web", generation=2),
        "spec": {"capacity": 3, "region": "east"},
        "status": {
            "observedGeneration": 1,
            "rollingUpgrade": {
                "fromVersion": "1.0.0",
                "toVersion": "1.0.2",
                "currentBatch": 2,
                "totalBatches": 3,
                "runningStatus": {"code": "RollingForward"},
                "progress": {"successfulInstanceCount": 1},
            },
        },
    }
    other = {**pod(7, "9.9.9"), "metadata": meta("api-7", labels={"galleon.dev/scaleset": "api"})}
    events = [
        {
            "metadata": meta(f"e{i}"),
            "involvedObject": {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ScaleSet",
                "name": "web",
                "namespace": "team",
            },
            "reason": "BatchStarted",
            "message": f"batch {i}",
            "lastTimestamp": f"2026-12-03T05:{i:02d}:00Z",
        }
        for i in range(model.EVENTS_PER_OBJECT + 3)
    ]
    document = page(
        Observed(
            scope="namespace team",
            scalesets=[scaleset],
            pods=[pod(2, "1.0.0"), pod(10, "1.0.2"), pod(1, "1.0.2", ready=False), other],
            events=events,
        )
    )
    (view,) = document["scalesets"]
    assert [(i["index"], i["version"], i["health"]) for i in view["instances"]] == [
        (1, "1.0.2", "NotReady"),
        (2, "1.0.0", "Healthy"),
        (10, "1.0.2", "Healthy"),
    ]
    assert view["upgrade"]["code"] == "RollingForward" and view["upgrade"]["successful"] == 1
    assert not view["generationObserved"]
    assert len(view["events"]) == model.EVENTS_PER_OBJECT
    assert view["events"][0]["message"] == f"batch {model.EVENTS_PER_OBJECT + 2}"  # newest first


def test_a_status_not_written_yet_is_no_failure() -> None:
    view = model.scaleset({"metadata": meta("web"), "status": {"rollingUpgrade": "garbage"}}, [])
    assert view["upgrade"] is None and view["history"] == [] and view["conditions"] == []


# -- the server ---------------------------------------------------------------------------


def test_the_page_allows_only_its_own_inline_script_and_style() -> None:
    policy = content_policy(page_text())
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert policy.count("'sha256-") == 2  # one script, one style
    assert "unsafe" not in policy


@pytest.fixture
async def served() -> Any:
    store = Store("namespace team")
    for source in store.sources:
        store.replace(source.field, [])
    server = TestServer(make_app(store, lambda: allowed_hosts("127.0.0.1", server.port or 0)))
    client = TestClient(server)
    await client.start_server()
    yield store, client
    await client.close()


async def test_every_method_but_get_and_head_is_refused(served: Any) -> None:
    _, client = served
    for path in ("/", "/api/state", "/api/stream", "/nowhere"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = await client.request(method, path, data=b"{}")
            assert response.status == 405, (method, path)
            assert response.headers["Allow"] == "GET,HEAD"
    response = await client.get("/")
    assert response.status == 200 and "text/html" in response.headers["Content-Type"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "script-src 'sha256-" in response.headers["Content-Security-Policy"]


async def test_another_host_name_is_refused(served: Any) -> None:
    _, client = served
    response = await client.get("/api/state", headers={"Host": "attacker.example:80"})
    assert response.status == 403
    response = await client.get("/api/state", headers={"Host": f"localhost:{client.port}"})
    assert response.status == 200


async def test_the_stream_sends_the_state_then_each_change(served: Any) -> None:
    store, client = served
    response = await client.get("/api/stream")
    assert response.headers["Content-Type"] == "text/event-stream"

    async def next_state() -> dict[str, Any]:
        async with asyncio.timeout(10):
            while True:
                line = (await response.content.readline()).decode()
                if line.startswith("data: "):
                    return dict(json.loads(line[len("data: ") :]))

    first = await next_state()
    assert first["synced"] and first["scalesets"] == []
    store.put("scalesets", {"metadata": meta("web"), "spec": {"capacity": 1}})
    second = await next_state()
    assert [s["name"] for s in second["scalesets"]] == ["web"]
    state = await (await client.get("/api/state")).json()
    assert [s["name"] for s in state["scalesets"]] == ["web"]
    response.close()
