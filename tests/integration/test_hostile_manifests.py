"""A source registry that serves manifests galleon cannot use: the ImageVersion ends
Stalled, with the reason and a message that names what is wrong, at once and once.

Before the manifests were checked where they are read, a descriptor with a negative
or huge size (or none at all) made the operator post a `Resolved` Event, then fail to
write the status the API server refuses (sizeBytes below 0 or above int64), and do
both again on every retry; a manifest that was not JSON failed every pass with no
condition at all. The registry here is a small HTTP server of the test's own,
serving one bad manifest per repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Event

from galleon.kube.resources import ImageVersion, Region
from galleon.oci import RegistryClient
from galleon.oci import errors as oci_errors
from galleon_testkit.binaries import REPO_ROOT
from galleon_testkit.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.integration

IMAGE = "application/vnd.oci.image.manifest.v1+json"
DIGEST = "sha256:" + "ab" * 32
CONDITION_TIMEOUT = 60.0


def manifest(**changes: Any) -> bytes:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": IMAGE,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": DIGEST,
            "size": 2,
        },
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": DIGEST, "size": 8}
        ],
    }
    document.update(changes)
    return json.dumps(document).encode()


def layer(**fields: Any) -> list[dict[str, Any]]:
    return [{"mediaType": "application/vnd.oci.image.layer.v1.tar", **fields}]


# repository → (Content-Type, body, extra headers), reason, words of the message
SERVED: dict[str, tuple[tuple[str, bytes, dict[str, str]], str, str]] = {
    "html": (("text/html", b"<html>login</html>", {}), "ProtocolError", "is not JSON"),
    "list": ((IMAGE, b"[1, 2]", {}), "ProtocolError", "a JSON list, not an object"),
    "no-size": (
        (IMAGE, manifest(layers=layer(digest=DIGEST)), {}),
        "ProtocolError",
        "without size",
    ),
    "negative": (
        (IMAGE, manifest(layers=layer(digest=DIGEST, size=-5)), {}),
        "ProtocolError",
        "size -5 is not an integer",
    ),
    "huge": (
        (IMAGE, manifest(layers=layer(digest=DIGEST, size=2**64)), {}),
        "ProtocolError",
        "is not an integer from 0",
    ),
    "traversal": (
        (IMAGE, manifest(layers=layer(digest="sha256:../../../etc", size=1)), {}),
        "ProtocolError",
        "is not sha256:<64 hex>",
    ),
    "media-type": (
        ("text/plain", manifest(mediaType="text/plain"), {}),
        "ProtocolError",
        "media type 'text/plain'",
    ),
    "lying-digest": (
        (IMAGE, manifest(), {"Docker-Content-Digest": DIGEST}),
        "DigestMismatch",
        f"not {DIGEST}",
    ),
    "oversized": ((IMAGE, b" " * (5 << 20), {}), "ProtocolError", "more than 4194304"),
}


class HostileRegistry:
    """An HTTP server answering /v2/ and /v2/sources/<case>/manifests/1.0.0 with SERVED,
    and /v2/sources/endless/... with a body that never ends."""

    def __init__(self) -> None:
        registry = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:
                registry.requests += 1
                if self.path == "/v2/":
                    return self._send(200, "application/json", b"{}", {})
                case = self.path.split("/")[3] if self.path.count("/") >= 5 else ""
                if case == "endless":
                    self.send_response(200)
                    self.send_header("Content-Type", IMAGE)
                    self.end_headers()
                    with contextlib.suppress(OSError):
                        while True:
                            self.wfile.write(b" " * 65536)
                    return None
                if case not in SERVED:
                    return self._send(404, "application/json", b'{"errors": []}', {})
                (content_type, body, headers), _, _ = SERVED[case]
                return self._send(200, content_type, body, headers)

            do_HEAD = do_GET

            def _send(self, status: int, kind: str, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    with contextlib.suppress(OSError):
                        self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.requests = 0
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HostileRegistry:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile() -> Iterator[HostileRegistry]:
    with HostileRegistry() as registry:
        yield registry


def test_an_endless_manifest_is_cut_off(hostile: HostileRegistry) -> None:
    async def read() -> None:
        async with RegistryClient(f"http://{hostile.host}") as client:
            await client.get_manifest("sources/endless", "1.0.0")

    with pytest.raises(oci_errors.ProtocolError, match="more than 4194304 bytes"):
        asyncio.run(read())


def world(namespace: str, tag: str) -> list[dict[str, Any]]:
    """The examples' Region (renamed, registries on a closed port), Gallery and
    ImageDefinition, in this test's namespace."""
    documents = []
    for path in ("01-regions.yaml", "02-gallery.yaml", "03-imagedefinition.yaml"):
        documents += [d for d in yaml.safe_load_all((REPO_ROOT / "examples" / path).read_text())]
    region = documents[0]
    region["metadata"]["name"] = f"{tag}-home"
    for registry in region["spec"]["registries"]:
        registry["url"] = "http://127.0.0.1:1"
    gallery, definition = [d for d in documents if d["kind"] in ("Gallery", "ImageDefinition")]
    gallery["spec"]["location"] = region["metadata"]["name"]
    for document in (gallery, definition):
        document["metadata"]["namespace"] = namespace
    return [region, gallery, definition]


def version(namespace: str, case: str, host: str, region: str) -> dict[str, Any]:
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ImageVersion",
        "metadata": {"name": f"v-{case}", "namespace": namespace},
        "spec": {
            "imageDefinitionName": "ubuntu-server",
            "version": f"1.0.{sorted(SERVED).index(case)}",
            "source": {"image": f"{host}/sources/{case}:1.0.0", "plainHTTP": True},
            "publishingProfile": {"targetRegions": [{"name": region}]},
        },
    }


def conditions(obj: Any) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (dict(obj).get("status") or {}).get("conditions") or []}


def test_bad_manifests_end_stalled_with_the_reason_once(
    kube: Client, namespace: str, hostile: HostileRegistry, operator: Any
) -> None:
    tag = "h" + hashlib.sha256(namespace.encode()).hexdigest()[:6]
    parents = world(namespace, tag)
    region = parents[0]["metadata"]["name"]
    try:
        for document in parents:
            kube.create(codecs.from_dict(document))
        for case in SERVED:
            kube.create(codecs.from_dict(version(namespace, case, hostile.host, region)))

        def stalled() -> dict[str, dict[str, Any]]:
            found = {}
            for obj in kube.list(ImageVersion, namespace=namespace):
                stall = conditions(obj).get("Stalled") or {}
                if stall.get("status") == "True":
                    found[obj.metadata.name] = conditions(obj)
            return found if len(found) == len(SERVED) else {}

        try:
            seen = wait_for(stalled, timeout=CONDITION_TIMEOUT, description="every version Stalled")
        except WaitTimeout as timeout:
            states = {
                o.metadata.name: conditions(o).get("Ready")
                for o in kube.list(ImageVersion, namespace=namespace)
            }
            raise AssertionError(f"{timeout}; Ready conditions: {states}") from None
        for case, (_, reason, words) in SERVED.items():
            ready = seen[f"v-{case}"]["Ready"]
            assert (ready["status"], ready["reason"]) == ("False", reason), (case, ready)
            assert words in ready["message"], (case, ready["message"])
            assert f"sources/{case}" in ready["message"], (case, ready["message"])
            status = dict(kube.get(ImageVersion, f"v-{case}", namespace=namespace))["status"]
            assert "sizeBytes" not in status and "sourceDigest" not in status, (case, status)
        events = [
            e
            for e in kube.list(Event, namespace=namespace)
            if e.involvedObject.kind == "ImageVersion"
        ]
        resolved = [e.involvedObject.name for e in events if e.reason == "Resolved"]
        assert not resolved, f"a bad source was announced as resolved: {resolved}"
        for case, (_, reason, _) in SERVED.items():
            posted = sum(
                e.count or 1
                for e in events
                if e.involvedObject.name == f"v-{case}" and e.reason == reason
            )
            assert posted == 1, f"v-{case}: {posted} {reason} Events"
    finally:
        with contextlib.suppress(ApiError):
            kube.delete(Region, region)
