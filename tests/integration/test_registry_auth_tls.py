"""Registries behind basic auth and TLS (a private CA), as in production: the Region
check and replication use the credentials and CA Secrets; a missing credential is
a clear, permanent failure of that registry or region only.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret

from galleon.kube.resources import Region
from galleon.oci import RegistryClient
from galleon_testkit.images import build_image, push_image
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration
USER, PASSWORD = "galleon", "s3cret-pass"


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[Registry]:
    registry = Registry(tmp_path / "secured", credentials=(USER, PASSWORD), tls=True).start()
    yield registry
    registry.stop()


def _secret(kube: Client, namespace: str, name: str, data: dict[str, bytes]) -> None:
    kube.create(
        Secret(
            metadata=ObjectMeta(name=name, namespace=namespace),
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
        )
    )


def _region(kube: Client, name: str, endpoint: dict[str, Any]) -> None:
    kube.apply(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "Region",
                "metadata": {"name": name},
                "spec": {"registries": [endpoint]},
            }
        ),
        force=True,
    )


def _registries(kube: Client, name: str) -> list[dict[str, Any]]:
    return list((kube.get(Region, name).get("status") or {}).get("registries") or [])


def test_region_checks_use_credentials_and_the_ca(
    kube: Client, namespace: str, secured: Registry, operator_factory: Any
) -> None:
    assert secured.ca_cert is not None
    _secret(kube, namespace, "creds", {"username": USER.encode(), "password": PASSWORD.encode()})
    _secret(kube, namespace, "ca", {"ca.crt": secured.ca_cert.read_bytes()})
    operator_factory(namespaces=[namespace], extra=[f"--operator-namespace={namespace}"])
    good, anonymous, untrusted = (f"{namespace}-{n}"[:63] for n in ("good", "anon", "untrusted"))
    try:
        _region(
            kube,
            good,
            {
                "name": "a",
                "url": secured.url,
                "credentialsSecretRef": {"name": "creds"},
                "tls": {"caSecretRef": {"name": "ca"}},
            },
        )
        _region(
            kube,
            anonymous,
            {"name": "a", "url": secured.url, "tls": {"caSecretRef": {"name": "ca"}}},
        )
        _region(
            kube,
            untrusted,
            {"name": "a", "url": secured.url, "credentialsSecretRef": {"name": "creds"}},
        )
        ok = wait_for(lambda: _registries(kube, good), timeout=30, description="good checked")
        assert ok[0]["reachable"] is True, ok
        refused = wait_for(lambda: _registries(kube, anonymous), timeout=30, description="anon")
        assert refused[0]["reachable"] is False and "401" in refused[0]["message"], refused
        bad_tls = wait_for(lambda: _registries(kube, untrusted), timeout=30, description="tls")
        assert bad_tls[0]["reachable"] is False
        assert "certificate" in bad_tls[0]["message"].lower(), bad_tls
    finally:
        for name in (good, anonymous, untrusted):
            with contextlib.suppress(ApiError):
                kube.delete(Region, name)


def test_replication_into_and_from_secured_registries(
    kube: Client,
    namespace: str,
    secured: Registry,
    registry_factory: Any,
    operator_factory: Any,
    tmp_path: Path,
) -> None:
    assert secured.ca_cert is not None
    _secret(kube, namespace, "creds", {"username": USER.encode(), "password": PASSWORD.encode()})
    _secret(kube, namespace, "ca", {"ca.crt": secured.ca_cert.read_bytes()})
    operator_factory(namespaces=[namespace], extra=[f"--operator-namespace={namespace}"])
    world = World(kube, namespace, registry_factory(2))
    image = build_image(tmp_path / "img", size=2 << 20, layers=2, seed=5)

    async def push() -> None:
        async with RegistryClient(
            secured.url, username=USER, password=PASSWORD, ca_file=str(secured.ca_cert)
        ) as client:
            await push_image(client, "sources/os", image, ["1.0.0"])

    asyncio.run(push())
    home = world.region("home", world.rest[:1])
    world.parents(home)
    try:
        # Source behind auth and TLS; the version's Secrets are in its namespace.
        source = {
            "image": f"{secured.host}/sources/os:1.0.0",
            "credentialsSecretRef": {"name": "creds"},
            "tls": {"caSecretRef": {"name": "ca"}},
        }
        kube.apply(
            codecs.from_dict(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageVersion",
                    "metadata": {"name": "os-1-0-0", "namespace": namespace},
                    "spec": {
                        "imageDefinitionName": "os",
                        "version": "1.0.0",
                        "source": source,
                        "publishingProfile": {"targetRegions": [{"name": home}]},
                    },
                }
            ),
            force=True,
        )
        status = world.wait_state("os-1-0-0", "Completed", timeout=60)
        assert status["sourceDigest"] == image.manifest.digest

        # The same source without credentials: refused at once, permanently.
        unauthenticated = {k: v for k, v in source.items() if k != "credentialsSecretRef"}
        kube.apply(
            codecs.from_dict(
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageVersion",
                    "metadata": {"name": "os-1-0-1", "namespace": namespace},
                    "spec": {
                        "imageDefinitionName": "os",
                        "version": "1.0.1",
                        "source": unauthenticated,
                        "publishingProfile": {"targetRegions": [{"name": home}]},
                    },
                }
            ),
            force=True,
        )

        def refused() -> dict[str, Any]:
            conditions = {c["type"]: c for c in world.status("os-1-0-1").get("conditions") or []}
            stalled = conditions.get("Stalled") or {}
            return conditions if stalled.get("status") == "True" else {}

        conditions = wait_for(refused, timeout=60, description="unauthorized source refused")
        assert conditions["SourceResolved"]["reason"] == "Unauthorized", conditions
    finally:
        world.cleanup()
