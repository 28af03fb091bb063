# mypy: disable-error-code="union-attr,index"
"""The image builder end to end: the real operator, the real apiserver (kwok nodes),
real registries. A base image is published as versions of definition `os`; an
ImageTemplate turns its latest version plus a File, an Archive (from a ConfigMap),
a Layer (another image) and config steps into versions of `os-hardened`, which
replicate and roll out to a ScaleSet following `latest`; a new base version
triggers the next build by itself; the same inputs publish nothing new; each bad
input fails its build with a clear message and publishes nothing.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import hashlib
import http.server
import io
import json
import os
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Event, Namespace, Node, Pod, Secret
from lightkube.types import PatchType

from galleon.kube.resources import Gallery, ImageBuild, ImageTemplate, ImageVersion, ScaleSet
from galleon.oci import RegistryClient, referrers
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.images import build_image, push_image
from galleon_testkit.realfleet import RealFleet
from galleon_testkit.realnode import TOLERATION, RealNode
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import stays_true, wait_for
from galleon_testkit.world import World

pytestmark = [
    pytest.mark.integration,
    pytest.mark.fleet(versions=("1.0.0", "1.0.1"), publish_to=("west",)),
]

TEMPLATE_LABEL = "galleon.dev/template"


def tar_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


APP_FILES = {"bin/app": b"#!/bin/sh\necho app\n", "share/README": b"the app\n"}


def definition(kube: Any, namespace: str, name: str) -> None:
    kube.apply(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageDefinition",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "galleryName": "gallery",
                    "identifier": {"publisher": "galleon", "offer": "test", "sku": name},
                    "osType": "Linux",
                },
            }
        ),
        force=True,
    )


def template(
    kube: Any, namespace: str, name: str, customize: list[dict[str, Any]], **spec: Any
) -> None:
    document = {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ImageTemplate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "source": spec.pop("source", {"imageVersion": {"imageDefinitionName": "os"}}),
            "customize": customize,
            "distribute": spec.pop("distribute"),
            **spec,
        },
    }
    kube.apply(codecs.from_dict(document), force=True)


def builds_of(kube: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    found = [
        b.to_dict() if hasattr(b, "to_dict") else dict(b)
        for b in kube.list(ImageBuild, namespace=namespace, labels={TEMPLATE_LABEL: name})
    ]
    return sorted(found, key=lambda b: (b["metadata"]["creationTimestamp"], b["metadata"]["name"]))


def wait_build(kube: Any, namespace: str, name: str, timeout: float = 120) -> dict[str, Any]:
    def ended() -> dict[str, Any]:
        obj = kube.get(ImageBuild, name, namespace=namespace)
        status = dict(obj.get("status") or {})
        return status if status.get("phase") in ("Succeeded", "Failed") else {}

    return wait_for(ended, timeout=timeout, description=f"build {name} to end")


def versions_of(kube: Any, namespace: str, definition_name: str) -> list[dict[str, Any]]:
    return [
        dict(v)
        for v in kube.list(ImageVersion, namespace=namespace)
        if v["spec"]["imageDefinitionName"] == definition_name
    ]


async def manifest_and_layers(
    registry: Registry, repository: str, digest: str
) -> tuple[dict[str, Any], list[bytes]]:
    async with RegistryClient(registry.url) as client:
        manifest = json.loads((await client.get_manifest(repository, digest)).data)
        blobs = []
        for layer in manifest["layers"]:
            response = await client.open_blob(repository, layer["digest"])
            try:
                blobs.append(await response.read())
            finally:
                response.release()
        config_response = await client.open_blob(repository, manifest["config"]["digest"])
        try:
            config = json.loads(await config_response.read())
        finally:
            config_response.release()
    manifest["_config"] = config
    return manifest, blobs


async def _provenance(registry: Registry, repository: str, digest: str) -> dict[str, Any]:
    """The build provenance referring to `repository@digest` in `registry`."""
    async with RegistryClient(registry.url) as client:
        found = await referrers.listed(client, repository, digest)
        [provenance] = [r for r in found if r.artifact_type == referrers.PROVENANCE_TYPE]
        artifact = json.loads((await client.get_manifest(repository, provenance.digest)).data)
        assert artifact["subject"]["digest"] == digest
        response = await client.open_blob(repository, artifact["layers"][0]["digest"])
        try:
            document = json.loads(await response.read())
        finally:
            response.release()
    document["_digest"] = provenance.digest
    return dict(document)


def listing(layer: bytes) -> list[str]:
    data = gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return [f"{m.name} {m.uid}:{m.gid} {oct(m.mode)}" for m in archive.getmembers()]


@pytest.fixture
def fleet(fleet: FleetHarness, kube: Client, namespace: str) -> Iterator[FleetHarness]:
    """The shared fleet (1.0.0 published to west) plus the hardened definition the
    templates publish into; templates are deleted before the fleet's teardown."""
    definition(kube, namespace, "os-hardened")
    yield fleet
    for s in list(kube.list(ScaleSet, namespace=namespace)):
        with contextlib.suppress(ApiError):
            kube.delete(ScaleSet, s.metadata.name, namespace=namespace)
    for t in list(kube.list(ImageTemplate, namespace=namespace)):
        with contextlib.suppress(ApiError):
            kube.delete(ImageTemplate, t.metadata.name, namespace=namespace)


def test_a_template_builds_publishes_and_rolls_out_and_rebuilds_when_the_base_changes(
    fleet: FleetHarness, kube: Any, namespace: str, tmp_path: Path
) -> None:
    world = fleet.world
    # The application image CI built: its one layer goes on top.
    app_image = build_image(tmp_path / "app", size=64 << 10, layers=1, seed=77)
    asyncio.run(_push(world.source, "apps/web", app_image, "2.3.0"))
    kube.create(
        ConfigMap(
            metadata=ObjectMeta(name="app-files", namespace=namespace),
            data={"motd": "hardened by galleon\n"},
            binaryData={"app.tar": base64.b64encode(tar_of(APP_FILES)).decode()},
        )
    )
    template(
        kube,
        namespace,
        "hardened",
        [
            {
                "name": "motd",
                "type": "File",
                "file": {
                    "destination": "/etc/motd",
                    "content": {"configMapKeyRef": {"name": "app-files", "key": "motd"}},
                },
            },
            {
                "name": "policy",
                "type": "File",
                "file": {
                    "destination": "/etc/app/policy.json",
                    "mode": 0o600,
                    "owner": {"uid": 1000, "gid": 1000},
                    "content": {"inline": '{"strict": true}'},
                },
            },
            {
                "name": "app",
                "type": "Archive",
                "archive": {
                    "destination": "/opt/app",
                    "source": {"configMapKeyRef": {"name": "app-files", "key": "app.tar"}},
                },
            },
            {
                "name": "web",
                "type": "Layer",
                "layer": {
                    "image": {"image": f"{world.source.host}/apps/web:2.3.0", "plainHTTP": True}
                },
            },
            {
                "name": "env",
                "type": "Environment",
                "environment": [{"name": "APP_MODE", "value": "production"}],
            },
            {"name": "labels", "type": "Labels", "labels": {"org.example.team": "platform"}},
            {"name": "cmd", "type": "Cmd", "cmd": ["--serve"]},
        ],
        distribute={
            "imageDefinitionName": "os-hardened",
            "publishingProfile": {
                "targetRegions": [
                    {"name": fleet.west},
                    {"name": fleet.east, "regionalReplicaCount": 2},
                ]
            },
        },
        triggers={"sourceImageUpdate": True},
        validate={"podReady": {}, "timeout": "PT2M"},
    )

    # The template's first build: from os 1.0.0 to os-hardened 1.0.0.
    first = wait_for(
        lambda: builds_of(kube, namespace, "hardened"), timeout=30, description="a first build"
    )[0]
    assert first["spec"]["reason"] == "Created"
    status = wait_build(kube, namespace, first["metadata"]["name"])
    assert status["phase"] == "Succeeded", status
    assert status["imageVersion"]["version"] == "1.0.0"
    assert status["sourceDigest"] == fleet.digest("1.0.0")
    assert [s["phase"] for s in status["steps"]] == ["Succeeded"] * 7
    assert {i["name"] for i in status["inputs"]} == {"source", "motd", "policy", "app", "web"}
    # Validated on a node of the home region (west's kwok nodes); its Pod is gone.
    [check] = status["validation"]
    assert check["name"] == "podReady" and check["phase"] == "Succeeded", check
    assert (
        kube.get(Node, check["node"]).metadata.labels["topology.kubernetes.io/region"]
        == "westcentralus"
    )
    wait_for(
        lambda: (
            not list(
                kube.list(
                    Pod,
                    namespace=namespace,
                    labels={"galleon.dev/build": first["metadata"]["name"]},
                )
            )
        ),
        timeout=30,
        description="the validation Pod deleted",
    )
    motd_input = next(i for i in status["inputs"] if i["name"] == "motd")
    assert motd_input["digest"] == "sha256:" + hashlib.sha256(b"hardened by galleon\n").hexdigest()
    version_name = status["imageVersion"]["name"]
    version = kube.get(ImageVersion, version_name, namespace=namespace)
    annotations = version.metadata.annotations
    assert annotations["galleon.dev/built-by"] == first["metadata"]["name"]
    assert annotations["galleon.dev/built-from-source"] == fleet.digest("1.0.0")
    assert version["spec"]["source"]["image"] == status["stagingImage"]
    assert "__staging@" in status["stagingImage"]
    assert not version.metadata.ownerReferences  # history pruning never deletes a version

    # It replicates like any other version; the copy holds exactly what was asked.
    completed = world.wait_state(version_name, "Completed", timeout=120)
    assert completed["sourceDigest"] == status["outputDigest"]
    east_registry = world.regions[fleet.east][0]
    manifest, blobs = asyncio.run(
        manifest_and_layers(east_registry, completed["repository"], status["outputDigest"])
    )
    base_layers = len(fleet.images["1.0.0"].layers)
    app_layers = len(app_image.layers)
    assert len(blobs) == base_layers + 3 + app_layers
    assert [layer["digest"] for layer in manifest["layers"][:base_layers]] == [
        b.digest for b in fleet.images["1.0.0"].layers
    ]
    new = [listing(b) for b in blobs[base_layers : base_layers + 3]]
    assert new[0] == ["etc 0:0 0o755", "etc/motd 0:0 0o644"]
    assert new[1] == ["etc 0:0 0o755", "etc/app 0:0 0o755", "etc/app/policy.json 1000:1000 0o600"]
    assert [line.split()[0] for line in new[2]] == [
        "opt",
        "opt/app",
        "opt/app/bin",
        "opt/app/bin/app",
        "opt/app/share",
        "opt/app/share/README",
    ]
    assert [layer["digest"] for layer in manifest["layers"][base_layers + 3 :]] == [
        b.digest for b in app_image.layers
    ]
    # The provenance is a referrer of the image, copied with it (the fallback tag:
    # distribution 2.x has no referrers API).
    provenance = asyncio.run(
        _provenance(east_registry, completed["repository"], status["outputDigest"])
    )
    assert provenance["build"] == {
        "name": first["metadata"]["name"],
        "namespace": namespace,
        "template": "hardened",
        "generation": 1,
    }
    assert provenance["source"]["digest"] == fleet.digest("1.0.0")
    assert provenance["inputs"] == status["inputs"]
    assert provenance["output"] == {"digest": status["outputDigest"]}
    assert annotations["galleon.dev/provenance"] == provenance["_digest"]
    config = manifest["_config"]["config"]
    assert "APP_MODE=production" in config["Env"]
    assert config["Labels"]["org.example.team"] == "platform"
    assert config["Cmd"] == ["--serve"]

    # A ScaleSet following os-hardened's latest runs it.
    fleet.scaleset(
        "web", 2, imageReference={"imageDefinitionName": "os-hardened", "version": "latest"}
    )
    fleet.wait_fleet("web", "1.0.0", 2, timeout=120)

    # A new base version: the template builds again by itself, publishes 1.0.1, and
    # the fleet is upgraded to it.
    fleet.publish("1.0.1", [fleet.west])
    second = wait_for(
        lambda: next(
            (
                b
                for b in builds_of(kube, namespace, "hardened")
                if b["spec"]["reason"] == "SourceImageUpdate"
            ),
            None,
        ),
        timeout=90,
        description="a build triggered by the new base version",
    )
    status2 = wait_build(kube, namespace, second["metadata"]["name"])
    assert status2["phase"] == "Succeeded", status2
    assert status2["sourceDigest"] == fleet.digest("1.0.1")
    assert status2["imageVersion"]["version"] == "1.0.1"
    assert status2["outputDigest"] != status["outputDigest"]
    fleet.wait_fleet("web", "1.0.1", 2, timeout=180)

    # Built again from the same inputs: the same digest, and nothing new published.
    kube.create(
        ImageBuild(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageBuild",
                "metadata": {
                    "name": "hardened-again",
                    "namespace": namespace,
                    "labels": {TEMPLATE_LABEL: "hardened"},
                },
                "spec": {"templateName": "hardened"},
            }
        )
    )
    status3 = wait_build(kube, namespace, "hardened-again")
    assert status3["phase"] == "Succeeded", status3
    assert status3["outputDigest"] == status2["outputDigest"]
    assert "unchanged" in status3["message"]
    assert sorted(v["spec"]["version"] for v in versions_of(kube, namespace, "os-hardened")) == [
        "1.0.0",
        "1.0.1",
    ]
    wait_for(
        lambda: (
            (kube.get(ImageTemplate, "hardened", namespace=namespace).get("status") or {}).get(
                "latestOutputDigest"
            )
            == status2["outputDigest"]
        ),
        timeout=30,
        description="the template's status to show the latest output",
    )


async def _push(registry: Registry, repository: str, image: Any, tag: str) -> str:
    async with RegistryClient(registry.url) as client:
        return await push_image(client, repository, image, [tag])


class Files:
    """A static file server on 127.0.0.1 (a download source of the test's own)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        served = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = served.get(self.path.split("?")[0])
                with contextlib.suppress(OSError):  # a client that stops reading
                    self.send_response(200 if body is not None else 404)
                    self.send_header("Content-Length", str(len(body or b"")))
                    self.end_headers()
                    self.wfile.write(body or b"")

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Files:
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_each_bad_input_fails_its_build_clearly_and_publishes_nothing(
    fleet: FleetHarness, kube: Any, namespace: str
) -> None:
    tool = b"#!/bin/sh\necho tool\n"
    good_sum = hashlib.sha256(tool).hexdigest()
    huge = os.urandom((64 << 20) + 1)  # one byte past the operator's --build-max-step-mib
    with Files({"/tool.sh": tool, "/huge.bin": huge}) as files:
        cases = {
            "too-big": (
                {
                    "url": {
                        "url": f"{files.url}/huge.bin",
                        "sha256Checksum": hashlib.sha256(huge).hexdigest(),
                    }
                },
                "DownloadFailed",
                f"is {(64 << 20) + 1} bytes, more than {64 << 20}",
            ),
            "no-configmap": (
                {"configMapKeyRef": {"name": "missing", "key": "motd"}},
                "InputNotFound",
                f"ConfigMap {namespace}/missing not found",
            ),
            "bad-checksum": (
                {"url": {"url": f"{files.url}/tool.sh?sig=secret", "sha256Checksum": "0" * 64}},
                "ChecksumMismatch",
                f"sha256 is {good_sum}",
            ),
            "no-download": (
                {"url": {"url": f"{files.url}/nothing.sh", "sha256Checksum": good_sum}},
                "DownloadFailed",
                "404",
            ),
        }
        missing_image = f"{fleet.world.source.host}/nothing/here:1.0"
        cases["no-source"] = (
            {"inline": "x"},
            "SourceNotFound",
            "nothing/here",
        )
        for name, (content, _, _) in cases.items():
            definition(kube, namespace, f"os-{name}")
            source = (
                {"image": {"image": missing_image, "plainHTTP": True}}
                if name == "no-source"
                else {"imageVersion": {"imageDefinitionName": "os"}}
            )
            template(
                kube,
                namespace,
                name,
                [
                    {
                        "name": "step",
                        "type": "File",
                        "file": {"destination": "/usr/local/bin/tool", "content": content},
                    }
                ],
                distribute={
                    "imageDefinitionName": f"os-{name}",
                    "publishingProfile": {"targetRegions": [{"name": fleet.west}]},
                },
                source=source,
            )
        for name, (_, reason, words) in cases.items():
            build = wait_for(
                lambda name=name: builds_of(kube, namespace, name),
                timeout=30,
                description=f"the build of {name}",
            )[0]
            status = wait_build(kube, namespace, build["metadata"]["name"])
            assert status["phase"] == "Failed", (name, status)
            ready = next(c for c in status["conditions"] if c["type"] == "Ready")
            assert ready["status"] == "False" and ready["reason"] == reason, (name, ready)
            assert words in status["message"], (name, status["message"])
            assert "sig=secret" not in json.dumps(status)
            expected_step = "Skipped" if name == "no-source" else "Failed"
            assert status["steps"][0]["phase"] == expected_step, (name, status["steps"])
            assert versions_of(kube, namespace, f"os-{name}") == []

            def failed_events(build_name: str = build["metadata"]["name"]) -> list[str]:
                return [
                    e.message
                    for e in kube.list(
                        Event, namespace=namespace, fields={"involvedObject.name": build_name}
                    )
                    if e.reason == "BuildFailed"
                ]

            # kopf posts Events in the background: the status may be seen first.
            events = wait_for(failed_events, timeout=30, description=f"{name}'s BuildFailed")
            assert len(events) == 1, events
            wait_for(
                lambda name=name: next(
                    (
                        c
                        for c in (
                            kube.get(ImageTemplate, name, namespace=namespace).get("status") or {}
                        ).get("conditions", [])
                        if c["type"] == "Ready" and c["reason"] == "BuildFailed"
                    ),
                    None,
                ),
                timeout=30,
                description=f"template {name} Ready False BuildFailed",
            )


@pytest.fixture
def consumer_namespace(kube: Client, namespace: str) -> Iterator[str]:
    name = f"{namespace}-use"[:63]
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    for t in list(kube.list(ImageTemplate, namespace=name)):
        with contextlib.suppress(ApiError):
            kube.delete(ImageTemplate, t.metadata.name, namespace=name)
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


def test_a_template_builds_from_another_namespace_only_once_its_gallery_shares_it(
    control_plane: Any,
    kube: Any,
    namespace: str,
    consumer_namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator_factory: Any,
    chart_identity: Path,
    tmp_path: Path,
) -> None:
    """The operator runs as the chart's ServiceAccount (its RBAC is the chart's)."""
    operator_factory(namespaces=[namespace, consumer_namespace], kubeconfig=chart_identity)
    world = World(kube, namespace, registry_factory(4))
    publisher = FleetHarness.with_versions(
        world, tmp_path, control_plane.client, versions=("1.0.0",)
    )
    try:
        publisher.publish("1.0.0", [publisher.west])
        for document in (
            {
                "kind": "Gallery",
                "metadata": {"name": "gallery"},
                "spec": {"location": publisher.west},
            },
            {
                "kind": "ImageDefinition",
                "metadata": {"name": "web-os"},
                "spec": {
                    "galleryName": "gallery",
                    "identifier": {"publisher": "web", "offer": "test", "sku": "os"},
                    "osType": "Linux",
                },
            },
        ):
            document["apiVersion"] = "galleon.dev/v1alpha1"
            kube.apply(codecs.from_dict(document), namespace=consumer_namespace, force=True)
        template(
            kube,
            consumer_namespace,
            "web-os",
            [
                {
                    "name": "motd",
                    "type": "File",
                    "file": {"destination": "/etc/motd", "content": {"inline": "web\n"}},
                }
            ],
            source={"imageVersion": {"imageDefinitionName": "os", "namespace": namespace}},
            distribute={
                "imageDefinitionName": "web-os",
                "publishingProfile": {"targetRegions": [{"name": publisher.west}]},
            },
        )
        first = wait_for(
            lambda: builds_of(kube, consumer_namespace, "web-os"), timeout=30, description="a build"
        )[0]
        refused = wait_build(kube, consumer_namespace, first["metadata"]["name"])
        assert refused["phase"] == "Failed"
        ready = next(c for c in refused["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "ImageNotShared", ready
        assert f"does not share it with namespace {consumer_namespace}" in refused["message"]
        assert "sourceDigest" not in refused
        assert versions_of(kube, consumer_namespace, "web-os") == []

        kube.patch(
            Gallery,
            "gallery",
            {
                "spec": {
                    "sharingProfile": {
                        "permissions": "Namespaces",
                        "namespaces": [consumer_namespace],
                    }
                }
            },
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
        kube.create(
            ImageBuild(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageBuild",
                    "metadata": {
                        "name": "web-os-shared",
                        "namespace": consumer_namespace,
                        "labels": {TEMPLATE_LABEL: "web-os"},
                    },
                    "spec": {"templateName": "web-os"},
                }
            )
        )
        built = wait_build(kube, consumer_namespace, "web-os-shared")
        assert built["phase"] == "Succeeded", built
        assert built["sourceDigest"] == publisher.digest("1.0.0")
        version = built["imageVersion"]["name"]
        consumer_world = World(kube, consumer_namespace, [world.source])
        done = consumer_world.wait_state(version, "Completed", timeout=120)
        assert done["sourceDigest"] == built["outputDigest"]
        assert done["repository"].startswith(f"galleon/{consumer_namespace}/gallery/web-os")
    finally:
        world.cleanup()


@pytest.mark.realnode
def test_validation_runs_the_built_image_on_a_real_node_and_a_failing_check_publishes_nothing(
    kube: Any,
    namespace: str,
    registry_factory: Callable[..., list[Registry]],
    real_volumes: RealNode,
    operator: Any,
    tmp_path: Path,
) -> None:
    fleet = RealFleet(kube, namespace, registry_factory(3, access_log=True), real_volumes, tmp_path)
    try:
        fleet.publish("1.0.0")
        motd = [
            {
                "name": "motd",
                "type": "File",
                "file": {"destination": "/etc/motd", "content": {"inline": "checked by galleon\n"}},
            }
        ]
        for name, validate in (
            (
                "checked",
                {
                    "podReady": {"readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}}},
                    "command": ["/bin/sh", "-c", "grep -q 'checked by galleon' /etc/motd"],
                    "timeout": "PT3M",
                    "tolerations": [TOLERATION],
                },
            ),
            (
                "broken",
                {
                    "command": ["/bin/sh", "-c", "echo the motd is wrong >&2; exit 3"],
                    "timeout": "PT3M",
                    "tolerations": [TOLERATION],
                },
            ),
        ):
            definition(kube, namespace, f"os-{name}")
            template(
                kube,
                namespace,
                name,
                motd,
                distribute={
                    "imageDefinitionName": f"os-{name}",
                    "publishingProfile": {"targetRegions": [{"name": fleet.region}]},
                },
                validate=validate,
            )
        checked = wait_build(
            kube,
            namespace,
            wait_for(
                lambda: builds_of(kube, namespace, "checked"), timeout=30, description="a build"
            )[0]["metadata"]["name"],
            timeout=300,
        )
        assert checked["phase"] == "Succeeded", checked
        assert [(c["name"], c["phase"]) for c in checked["validation"]] == [
            ("podReady", "Succeeded"),
            ("command", "Succeeded"),
        ]
        assert {c["node"] for c in checked["validation"]} == {real_volumes.name}
        assert "exited 0" in checked["validation"][1]["message"]
        assert [v["spec"]["version"] for v in versions_of(kube, namespace, "os-checked")] == [
            "1.0.0"
        ]

        broken = wait_build(
            kube,
            namespace,
            wait_for(
                lambda: builds_of(kube, namespace, "broken"), timeout=30, description="a build"
            )[0]["metadata"]["name"],
            timeout=300,
        )
        assert broken["phase"] == "Failed", broken
        ready = next(c for c in broken["conditions"] if c["type"] == "Ready")
        assert ready["reason"] == "ValidationFailed", ready
        [check] = broken["validation"]
        assert check["phase"] == "Failed" and "exited 3" in check["message"], check
        assert "the motd is wrong" in check["output"]
        assert "the motd is wrong" in broken["message"]
        assert versions_of(kube, namespace, "os-broken") == []
        wait_for(
            lambda: (
                not list(
                    kube.list(Pod, namespace=namespace, labels={"galleon.dev/check": "command"})
                )
            ),
            timeout=30,
            description="the validation Pods deleted",
        )
    finally:
        for t in list(kube.list(ImageTemplate, namespace=namespace)):
            with contextlib.suppress(ApiError):
                kube.delete(ImageTemplate, t.metadata.name, namespace=namespace)
        fleet.cleanup()


class GatedFiles(Files):
    """`Files` whose answers wait until `open()` (a download that is slow to come)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.gate = threading.Event()
        self.asked = threading.Event()
        served, gate, asked = files, self.gate, self.asked

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                asked.set()
                gate.wait(timeout=180)
                body = served.get(self.path.split("?")[0]) or b""
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def open(self) -> None:
        self.gate.set()

    def __exit__(self, *_: Any) -> None:
        self.gate.set()
        super().__exit__()


def test_an_operator_killed_mid_build_resumes_it_and_publishes_once(
    fleet: FleetHarness, kube: Any, namespace: str, operator: Any, operator_factory: Any
) -> None:
    tool = b"#!/bin/sh\necho tool\n"
    with GatedFiles({"/tool.sh": tool}) as files:
        definition(kube, namespace, "os-resumed")
        template(
            kube,
            namespace,
            "resumed",
            [
                {
                    "name": "tool",
                    "type": "File",
                    "file": {
                        "destination": "/usr/local/bin/tool",
                        "mode": 0o755,
                        "content": {
                            "url": {
                                "url": f"{files.url}/tool.sh",
                                "sha256Checksum": hashlib.sha256(tool).hexdigest(),
                            }
                        },
                    },
                }
            ],
            distribute={
                "imageDefinitionName": "os-resumed",
                "publishingProfile": {"targetRegions": [{"name": fleet.west}]},
            },
        )
        assert files.asked.wait(timeout=60), "the build never asked for its download"
        [build] = builds_of(kube, namespace, "resumed")
        name = build["metadata"]["name"]
        before = kube.get(ImageBuild, name, namespace=namespace)["status"]
        assert before["phase"] == "Resolving"
        operator.kill()  # mid-build: its download is in flight
        operator_factory(namespaces=[namespace])
        files.open()
        status = wait_build(kube, namespace, name)
    assert status["phase"] == "Succeeded", status
    assert status["startTime"] == before["startTime"]  # the timeout counts from the first start
    versions = versions_of(kube, namespace, "os-resumed")
    assert [v["spec"]["version"] for v in versions] == ["1.0.0"]
    assert versions[0]["metadata"]["annotations"]["galleon.dev/built-by"] == name
    assert len(builds_of(kube, namespace, "resumed")) == 1  # no second build either
    started = [
        e
        for e in kube.list(Event, namespace=namespace, fields={"involvedObject.name": name})
        if e.reason == "BuildStarted"
    ]
    assert len(started) == 1, [e.message for e in started]


def test_failing_builds_suspend_the_source_trigger_and_history_is_bounded(
    control_plane: Any,
    kube: Any,
    namespace: str,
    registry_factory: Callable[[int], list[Registry]],
    operator: Any,
    tmp_path: Path,
) -> None:
    world = World(kube, namespace, registry_factory(4))
    versions = ("1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4")
    fleet = FleetHarness.with_versions(world, tmp_path, control_plane.client, versions=versions)
    try:
        fleet.publish("1.0.0", [fleet.west])
        definition(kube, namespace, "os-flaky")
        template(
            kube,
            namespace,
            "flaky",
            [
                {
                    "name": "motd",
                    "type": "File",
                    "file": {
                        "destination": "/etc/motd",
                        "content": {"secretKeyRef": {"name": "motd", "key": "text"}},
                    },
                }
            ],
            distribute={
                "imageDefinitionName": "os-flaky",
                "publishingProfile": {"targetRegions": [{"name": fleet.west}]},
            },
            triggers={"sourceImageUpdate": True},
            historyLimit=2,
        )

        def finished() -> list[dict[str, Any]]:
            return [
                b
                for b in builds_of(kube, namespace, "flaky")
                if (b.get("status") or {}).get("phase") in ("Succeeded", "Failed")
            ]

        def template_status() -> dict[str, Any]:
            return dict(kube.get(ImageTemplate, "flaky", namespace=namespace).get("status") or {})

        # The Secret is missing: the first build and two triggered by new base
        # versions fail; then the trigger is off.
        for count, version in enumerate(("", "1.0.1", "1.0.2"), start=1):
            if version:
                fleet.publish(version, [fleet.west])
            wait_for(
                lambda count=count: template_status().get("failedBuildsInARow") == count,
                timeout=90,
                description=f"{count} failed builds in a row",
            )
        suspended = wait_for(
            lambda: next(
                (
                    c
                    for c in template_status().get("conditions", [])
                    if c["type"] == "TriggersSuspended" and c["status"] == "True"
                ),
                None,
            ),
            timeout=30,
            description="the source trigger suspended",
        )
        assert suspended["reason"] == "FailedBuildsInARow", suspended
        assert "3 builds failed in a row" in suspended["message"]
        # History: at most historyLimit finished builds are kept.
        wait_for(lambda: len(finished()) == 2, timeout=30, description="two builds kept")
        names = {b["metadata"]["name"] for b in builds_of(kube, namespace, "flaky")}
        fleet.publish("1.0.3", [fleet.west])
        # Two template passes and more: no new build while suspended.
        stays_true(
            lambda: {b["metadata"]["name"] for b in builds_of(kube, namespace, "flaky")} == names,
            duration=35,
            description="no build while the trigger is suspended",
        )

        # The Secret appears; a manual build succeeds and switches the trigger on again,
        # and the next base version is built by itself.
        kube.create(
            Secret(
                metadata=ObjectMeta(name="motd", namespace=namespace),
                stringData={"text": "from a secret\n"},
            )
        )
        kube.create(
            ImageBuild(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageBuild",
                    "metadata": {
                        "name": "flaky-fixed",
                        "namespace": namespace,
                        "labels": {TEMPLATE_LABEL: "flaky"},
                    },
                    "spec": {"templateName": "flaky"},
                }
            )
        )
        fixed = wait_build(kube, namespace, "flaky-fixed")
        assert fixed["phase"] == "Succeeded", fixed
        assert fixed["sourceDigest"] == fleet.digest("1.0.3")
        wait_for(
            lambda: any(
                c["type"] == "TriggersSuspended" and c["status"] == "False"
                for c in template_status().get("conditions", [])
            ),
            timeout=30,
            description="the source trigger on again",
        )
        fleet.publish("1.0.4", [fleet.west])
        wait_for(
            lambda: any(
                (b.get("status") or {}).get("sourceDigest") == fleet.digest("1.0.4")
                and b["status"].get("phase") == "Succeeded"
                for b in builds_of(kube, namespace, "flaky")
            ),
            timeout=120,
            description="1.0.4 built by the trigger",
        )
        # The template prunes on its next pass.
        wait_for(lambda: len(finished()) <= 2, timeout=30, description="history pruned to two")
        assert sorted(v["spec"]["version"] for v in versions_of(kube, namespace, "os-flaky")) == [
            "1.0.0",
            "1.0.1",
        ]
    finally:
        for t in list(kube.list(ImageTemplate, namespace=namespace)):
            with contextlib.suppress(ApiError):
                kube.delete(ImageTemplate, t.metadata.name, namespace=namespace)
        world.cleanup()
