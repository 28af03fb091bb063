"""The image builder (galleon.oci.build) against real distribution registries.

A generated base image is pushed to a registry on loopback; steps are built on top of
it into another repository (or registry), and what the registry then holds is read
back the way a runtime would: the manifest, the config, each new layer downloaded,
checked against its digest, gunzipped and listed by GNU tar. The registry's access
log says which blobs crossed the wire: no base layer is ever downloaded or uploaded
when a mount or a HEAD does.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from galleon.core import layers
from galleon.core.layers import (
    Archive,
    BuildRefused,
    Cmd,
    Entry,
    Entrypoint,
    Environment,
    File,
    Labels,
    Layer,
    User,
    WorkingDir,
)
from galleon.oci import RegistryClient
from galleon.oci.build import BuildResult, build_image
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.images import TestImage, push_image, push_index
from galleon_testkit.images import build_image as generated
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for

pytestmark = pytest.mark.integration

SOURCE = "sources/os"
BUILT = "built/os"
APP_TAR = layers.tar_bytes(
    [
        Entry("bin2/tool", "file", 0o755, 0, 0, content=b"#!/bin/sh\necho tool\n"),
        Entry("bin2/run", "symlink", 0o777, link="tool"),
        Entry("share/README", "file", 0o644, 1000, 1000, content=b"read me\n"),
    ]
)
STEPS = [
    File("/etc/motd", b"built by galleon\n"),
    File("/etc/app/config.yaml", b"key: value\n", mode=0o600, uid=1000, gid=1000),
    Archive("/opt/app", APP_TAR),
    Environment.of({"APP_MODE": "production", "PATH": "/opt/app/bin2:/usr/bin"}),
    Labels.of({"org.example.team": "os"}),
    Entrypoint(("/opt/app/bin2/run",)),
    Cmd(("--serve",)),
    WorkingDir("/opt/app"),
    User("1000:1000"),
]
NEW_LAYERS = {
    "/etc/motd": [
        "drwxr-xr-x 0/0 etc/",
        "-rw-r--r-- 0/0 etc/motd",
    ],
    "/etc/app/config.yaml": [
        "drwxr-xr-x 0/0 etc/",
        "drwxr-xr-x 0/0 etc/app/",
        "-rw------- 1000/1000 etc/app/config.yaml",
    ],
    "/opt/app": [
        "drwxr-xr-x 0/0 opt/",
        "drwxr-xr-x 0/0 opt/app/",
        "drwxr-xr-x 0/0 opt/app/bin2/",
        "lrwxrwxrwx 0/0 opt/app/bin2/run -> tool",
        "-rwxr-xr-x 0/0 opt/app/bin2/tool",
        "drwxr-xr-x 0/0 opt/app/share/",
        "-rw-r--r-- 1000/1000 opt/app/share/README",
    ],
}
"""Each new layer as GNU tar lists it (mode, numeric owner, name)."""


def base_image(tmp_path: Path, seed: int = 1, layers_: int = 3) -> TestImage:
    return generated(tmp_path / f"image-{seed}", size=3 << 20, layers=layers_, seed=seed)


async def push(registry: Registry, repository: str, image: TestImage) -> str:
    async with RegistryClient(registry.url) as client:
        return await push_image(client, repository, image, ["1.0.0"])


async def build(
    source: Registry,
    destination: Registry,
    digest: str,
    tag: str,
    steps: list[Any] = STEPS,
    repository: str = BUILT,
    registries: dict[str, Registry] | None = None,
    **options: Any,
) -> BuildResult:
    clients = {name: RegistryClient(r.url) for name, r in (registries or {}).items()}
    async with RegistryClient(source.url) as from_, RegistryClient(destination.url) as to:
        try:
            return await build_image(
                from_, SOURCE, digest, steps, to, repository, tag, registries=clients, **options
            )
        finally:
            for client in clients.values():
                await client.close()


async def blob(registry: Registry, repository: str, digest: str) -> bytes:
    async with RegistryClient(registry.url) as client:
        response = await client.open_blob(repository, digest)
        try:
            data = await response.read()
        finally:
            response.release()
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


async def pushed(registry: Registry, reference: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The manifest and config at BUILT:reference."""
    async with RegistryClient(registry.url) as client:
        manifest = json.loads((await client.get_manifest(BUILT, reference)).data)
    config = json.loads(await blob(registry, BUILT, manifest["config"]["digest"]))
    return manifest, config


def gnu_tar_listing(layer: bytes) -> list[str]:
    """`tar -tv --numeric-owner` of a gzip layer, as "mode uid/gid name[ -> target]";
    every entry dated 1970-01-01 00:00 (mtime 0)."""
    listed = subprocess.run(
        ["tar", "-tvz", "--numeric-owner", "-f", "-"],
        input=layer,
        capture_output=True,
        check=True,
        env={"TZ": "UTC", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    ).stdout.decode()
    lines = []
    for line in listed.splitlines():
        mode, owner, _size, day, time_, name = line.split(None, 5)
        assert (day, time_) == ("1970-01-01", "00:00"), line
        lines.append(f"{mode} {owner} {name}")
    return lines


def served(registry: Registry, method: str, digest: str, under: str = "/v2/") -> list[str]:
    """Paths (decoded) of `method` requests naming `digest` in the registry's access
    log, of paths starting with `under` (the test's own pushes are under /v2/sources/)."""
    return [
        unquote(entry.path)
        for entry in registry.requests()
        if entry.method == method and digest in unquote(entry.path) and entry.path.startswith(under)
    ]


def wait_logged(registry: Registry, tag: str) -> None:
    """The access log has reached the build's last request (the tag's PUT)."""
    wait_for(
        lambda: any(
            e.method == "PUT" and e.path.endswith(f"/manifests/{tag}") for e in registry.requests()
        ),
        timeout=10,
        description=f"the PUT of tag {tag} in {registry.host}'s access log",
    )


# -- the tests ------------------------------------------------------------------------------


async def test_a_build_is_reproducible_and_never_moves_a_base_layer(
    registry_factory: Callable[..., list[Registry]], tmp_path: Path
) -> None:
    (registry,) = registry_factory(1, access_log=True)
    image = base_image(tmp_path)
    digest = await push(registry, SOURCE, image)

    first = await build(registry, registry, digest, "custom-1")
    again = await build(registry, registry, digest, "custom-2")
    elsewhere = await build(registry, registry, digest, "custom", repository="built/other")

    assert first.digest == again.digest == elsewhere.digest
    assert first.config_digest == again.config_digest
    # The first build mounted every base layer and uploaded only its own blobs.
    assert [layer.how for layer in first.base] == ["mounted"] * 3
    new = [layer for step in first.steps for layer in step.layers]
    assert [layer.how for layer in new] == ["uploaded"] * 3 and first.config.how == "uploaded"
    assert first.bytes_mounted == sum(layer.size for layer in image.layers)
    assert first.bytes_uploaded == sum(layer.size for layer in new) + first.config.size
    assert first.bytes_copied == 0
    # The second found everything there.
    assert again.bytes_uploaded == again.bytes_mounted == again.bytes_copied == 0
    assert again.bytes_skipped == again.size == first.size
    assert [step.description for step in first.steps] == [layers.describe(s) for s in STEPS]
    assert all(step.seconds >= 0 for step in first.steps)

    wait_logged(registry, "custom")
    for layer in image.layers:
        assert served(registry, "GET", layer.digest) == [], "a base layer was downloaded"
        assert served(registry, "PUT", layer.digest, "/v2/built/") == [], "base layer uploaded"
        mounts = served(registry, "POST", layer.digest)
        assert len(mounts) == 2 and all(f"from={SOURCE}" in path for path in mounts)
    for layer in new:  # once a repository: a blob of another repository is not HEAD-visible
        puts = served(registry, "PUT", layer.digest, "/v2/built/")
        assert [path.startswith(f"/v2/{BUILT}/") for path in puts] == [True, False]


async def test_the_pushed_layers_hold_exactly_the_files_asked_for(
    registry: Registry, tmp_path: Path
) -> None:
    image = base_image(tmp_path)
    digest = await push(registry, SOURCE, image)
    result = await build(registry, registry, digest, "custom")
    manifest, config = await pushed(registry, "custom")

    assert [layer["digest"] for layer in manifest["layers"][:3]] == [
        layer.digest for layer in image.layers
    ]
    new = manifest["layers"][3:]
    assert [layer["digest"] for layer in new] == [
        layer.digest for step in result.steps for layer in step.layers
    ]
    assert {layer["mediaType"] for layer in new} == {layers.LAYER_GZIP}
    for path, layer, diff_id in zip(NEW_LAYERS, new, config["rootfs"]["diff_ids"][3:], strict=True):
        data = await blob(registry, BUILT, layer["digest"])
        assert data[:10] == layers.GZIP_HEADER and len(data) == layer["size"]
        assert "sha256:" + hashlib.sha256(gzip.decompress(data)).hexdigest() == diff_id
        assert gnu_tar_listing(data) == NEW_LAYERS[path], path
    motd = await blob(registry, BUILT, new[0]["digest"])
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(motd))) as archive:
        extracted = archive.extractfile("etc/motd")
        assert extracted is not None and extracted.read() == b"built by galleon\n"


async def test_the_config_edits_are_in_the_pushed_config(
    registry: Registry, tmp_path: Path
) -> None:
    image = base_image(tmp_path)
    digest = await push(registry, SOURCE, image)
    await build(registry, registry, digest, "custom")
    manifest, config = await pushed(registry, "custom")
    base_config = json.loads(image.config.path.read_bytes())

    settings = config["config"]
    assert settings["Env"] == ["APP_MODE=production", "PATH=/opt/app/bin2:/usr/bin"]
    assert settings["Labels"] == {"galleon.test/seed": "1", "org.example.team": "os"}
    assert (settings["Entrypoint"], settings["Cmd"]) == (["/opt/app/bin2/run"], ["--serve"])
    assert (settings["WorkingDir"], settings["User"]) == ("/opt/app", "1000:1000")
    assert config["created"] == layers.EPOCH
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    ids = config["rootfs"]["diff_ids"]
    assert ids[:3] == base_config["rootfs"]["diff_ids"] and len(ids) == len(manifest["layers"])
    history = config["history"]
    assert len(history) == 3 + len(STEPS)
    assert sum(not entry.get("empty_layer") for entry in history) == len(ids)
    assert [entry["created_by"] for entry in history[3:]] == [layers.describe(s) for s in STEPS]
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"] == {"org.opencontainers.image.base.digest": digest}


async def test_a_layer_step_brings_another_images_files_from_this_and_another_registry(
    registry_factory: Callable[..., list[Registry]], tmp_path: Path
) -> None:
    main, other = registry_factory(2, access_log=True)
    base = base_image(tmp_path, seed=1)
    tools = base_image(tmp_path, seed=7, layers_=2)
    extra = base_image(tmp_path, seed=9, layers_=1)
    digest = await push(main, SOURCE, base)
    tools_digest = await push(main, "sources/tools", tools)
    extra_digest = await push(other, "vendor/extra", extra)

    steps = [
        Layer("sources/tools", tools_digest),
        File("/etc/motd", b"hi\n"),
        Layer("vendor/extra", extra_digest, registry=other.host),
    ]
    result = await build(main, main, digest, "layered", steps=steps, registries={other.host: other})
    manifest, config = await pushed(main, "layered")

    expected = [*base.layers, *tools.layers, None, *extra.layers]
    assert len(manifest["layers"]) == len(expected)
    for pushed_layer, source_layer in zip(manifest["layers"], expected, strict=True):
        if source_layer is not None:
            assert pushed_layer["digest"] == source_layer.digest
    tools_ids = json.loads(tools.config.path.read_bytes())["rootfs"]["diff_ids"]
    extra_ids = json.loads(extra.config.path.read_bytes())["rootfs"]["diff_ids"]
    assert config["rootfs"]["diff_ids"][3:5] == tools_ids
    assert config["rootfs"]["diff_ids"][6:] == extra_ids
    assert [layer.how for layer in result.steps[0].layers] == ["mounted", "mounted"]
    assert [layer.how for layer in result.steps[2].layers] == ["copied"]
    assert result.bytes_copied == extra.layers[0].size

    wait_logged(main, "layered")
    for layer in tools.layers:
        assert served(main, "GET", layer.digest) == []
        assert served(main, "PUT", layer.digest, "/v2/built/") == []
    # The layer from another registry was streamed across once: read there, written here.
    assert len(served(other, "GET", extra.layers[0].digest)) == 1
    assert len(served(main, "PUT", extra.layers[0].digest, "/v2/built/")) == 1

    # The other image's files, read back from the built repository.
    for index, seed in ((3, 7000), (4, 7001), (6, 9000)):
        data = await blob(main, BUILT, manifest["layers"][index]["digest"])
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            assert archive.getnames() == [f"galleon/layer-{seed}.bin"]


async def test_a_build_across_registries_streams_the_base_once_and_gives_the_same_digest(
    registry_factory: Callable[..., list[Registry]], tmp_path: Path
) -> None:
    source, destination = registry_factory(2)
    image = base_image(tmp_path)
    digest = await push(source, SOURCE, image)
    await push(destination, SOURCE, image)  # for the same-registry build to compare with

    across = await build(source, destination, digest, "across")
    again = await build(source, destination, digest, "again")
    within = await build(destination, destination, digest, "within", repository="built/within")

    assert across.digest == again.digest == within.digest
    assert [layer.how for layer in across.base] == ["copied"] * 3
    assert across.bytes_copied == sum(layer.size for layer in image.layers)
    assert [layer.how for layer in again.base] == ["skipped"] * 3 and again.bytes_copied == 0
    assert [layer.how for layer in within.base] == ["mounted"] * 3


async def test_compression_none_pushes_plain_tar_layers(registry: Registry, tmp_path: Path) -> None:
    image = base_image(tmp_path)
    digest = await push(registry, SOURCE, image)
    gzipped = await build(registry, registry, digest, "gzip")
    plain = await build(registry, registry, digest, "plain", compression="none")
    again = await build(registry, registry, digest, "plain-again", compression="none")

    assert plain.digest == again.digest != gzipped.digest
    manifest, config = await pushed(registry, "plain")
    for layer, diff_id in zip(
        manifest["layers"][3:], config["rootfs"]["diff_ids"][3:], strict=True
    ):
        assert layer["mediaType"] == layers.LAYER_TAR and layer["digest"] == diff_id
    _, gzipped_config = await pushed(registry, "gzip")
    assert gzipped_config["rootfs"] == config["rootfs"]  # the same tars, compressed or not


async def test_an_index_base_is_refused_with_its_platforms_and_nothing_is_pushed(
    registry: Registry, tmp_path: Path
) -> None:
    amd64 = generated(tmp_path / "amd64", size=1 << 20, layers=1, seed=3)
    arm64 = generated(tmp_path / "arm64", size=1 << 20, layers=1, seed=4, architecture="arm64")
    async with RegistryClient(registry.url) as client:
        index = await push_index(client, SOURCE, [amd64, arm64], ["multi"])

    with pytest.raises(BuildRefused, match="is an index of 2 images") as refused:
        await build(registry, registry, index.digest, "custom")
    message = str(refused.value)
    assert "linux/amd64 " + amd64.manifest.digest[:19] in message
    assert "linux/arm64 " + arm64.manifest.digest[:19] in message
    async with RegistryClient(registry.url) as client:
        assert not await client.has_manifest(BUILT, "custom")


async def test_a_layer_of_another_platform_is_refused(registry: Registry, tmp_path: Path) -> None:
    image = base_image(tmp_path)
    arm64 = generated(tmp_path / "arm64", size=1 << 20, layers=1, seed=4, architecture="arm64")
    digest = await push(registry, SOURCE, image)
    arm64_digest = await push(registry, "sources/arm", arm64)
    with pytest.raises(BuildRefused, match=r"step 1 .* for linux/arm64, the base is linux/amd64"):
        await build(
            registry, registry, digest, "custom", steps=[Layer("sources/arm", arm64_digest)]
        )


async def test_a_refused_step_names_itself_and_pushes_no_manifest(
    registry: Registry, tmp_path: Path
) -> None:
    digest = await push(registry, SOURCE, base_image(tmp_path))
    evil = Archive("/opt/app", layers.tar_bytes([Entry("x", "symlink", 0o777, link="../../etc")]))
    with pytest.raises(BuildRefused, match=r"step 2: Archive /opt/app: symlink .* leads out"):
        await build(registry, registry, digest, "custom", steps=[File("/etc/motd", b""), evil])
    async with RegistryClient(registry.url) as client:
        assert not await client.has_manifest(BUILT, "custom")


async def test_skopeo_reads_and_copies_the_built_image(registry: Registry, tmp_path: Path) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        unavailable("skopeo is not installed (apt-get install skopeo)")
    assert skopeo is not None
    digest = await push(registry, SOURCE, base_image(tmp_path))
    result = await build(registry, registry, digest, "custom")
    reference = f"docker://{registry.host}/{BUILT}:custom"
    inspected = json.loads(
        subprocess.run(
            [skopeo, "inspect", "--tls-verify=false", reference],
            capture_output=True,
            check=True,
        ).stdout
    )
    assert inspected["Digest"] == result.digest
    assert inspected["Architecture"] == "amd64" and len(inspected["Layers"]) == 6
    # A copy verifies every blob against its digest, as a pull does (and keeps them all).
    layout = f"oci:{tmp_path / 'layout'}:custom"
    subprocess.run(
        [skopeo, "copy", "--preserve-digests", "--src-tls-verify=false", reference, layout],
        capture_output=True,
        check=True,
    )
    index = json.loads((tmp_path / "layout" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == result.digest
