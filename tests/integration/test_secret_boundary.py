"""Secrets stay in their namespace, and credentials go to their own registry only.

The attack: a tenant who may create ImageVersions in its namespace points a source
at a registry it runs (here a small HTTP server on 127.0.0.1 that answers 401 and
records every Authorization header), names a Secret of the operator's namespace
(the regional push credentials), and waits for them to arrive. Or it names a Secret
of its own whose `.dockerconfigjson` holds credentials for another registry, or has
its registry send the client to a token realm, a redirect or an upload location on
another host.

What must hold, checked on the real API server and the real operator:
- the API server refuses a source Secret reference that names a namespace, with
  the message the model gives too;
- the operator reads a source's Secrets from the version's namespace only, uses a
  docker config entry only for its own host, and says why in the condition;
- no credential reaches a host it was not configured for: the hostile registry
  receives only the tenant's own credentials for that very host, and a token
  realm, redirect target or upload location on another host receives none.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret

from galleon.kube.resources import ImageVersion, Region
from galleon.oci import RegistryClient
from galleon.oci import errors as oci_errors
from galleon_testkit.registry import Registry
from galleon_testkit.waiting import wait_for
from galleon_testkit.world import World

pytestmark = pytest.mark.integration

PUSH_USER, PUSH_PASSWORD = "regional-push", "push-password-of-galleon-system"
TENANT_USER, TENANT_PASSWORD = "tenant", "tenant-own-password"
OTHER_HOST = "127.0.0.2"
"""Another loopback address: "another host" for the token realm and redirect tests."""
CONDITION_TIMEOUT = 60.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# A hostile HTTP server that records what it is sent ----------------------------------


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    authorization: str | None


Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Recorder:
    """An HTTP server on a loopback address answering with `respond(method, path,
    authorization)`, recording every request it gets."""

    respond: Callable[[Recorder, str, str, str | None], Answer]
    address: str = "127.0.0.1"
    seen: list[Seen] = field(default_factory=list)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def host(self) -> str:
        assert self._server is not None
        return f"{self.address}:{self._server.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> Recorder:
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                authorization = self.headers.get("Authorization")
                recorder.seen.append(Seen(self.command, self.path, authorization))
                status, headers, body = recorder.respond(
                    recorder, self.command, self.path, authorization
                )
                self.send_response(status)
                for name, value in {"Content-Length": str(len(body)), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *_: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer((self.address, 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def authorizations(self, path_part: str = "") -> list[str | None]:
        return [s.authorization for s in self.seen if path_part in s.path]


@contextlib.contextmanager
def recorder(
    respond: Callable[[Recorder, str, str, str | None], Answer], address: str = "127.0.0.1"
) -> Iterator[Recorder]:
    server = Recorder(respond, address).start()
    try:
        yield server
    finally:
        server.stop()


def basic_challenge(*_: Any) -> Answer:
    """Every request: 401, asking for Basic credentials."""
    return 401, {"WWW-Authenticate": 'Basic realm="hostile"'}, b'{"errors":[]}'


# Cluster helpers -------------------------------------------------------------------


def create_secret(
    kube: Client, namespace: str, name: str, data: dict[str, bytes], **kw: Any
) -> None:
    kube.create(
        Secret(
            metadata=ObjectMeta(name=name, namespace=namespace),
            data={k: base64.b64encode(v).decode() for k, v in data.items()},
            **kw,
        )
    )


def docker_config_secret(
    kube: Client, namespace: str, name: str, host: str, user: str, password: str
) -> None:
    config = {"auths": {host: {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}
    create_secret(
        kube,
        namespace,
        name,
        {".dockerconfigjson": json.dumps(config).encode()},
        type="kubernetes.io/dockerconfigjson",
    )


def image_version(name: str, version: str, source: dict[str, Any], region: str) -> Any:
    return codecs.from_dict(
        {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ImageVersion",
            "metadata": {"name": name},
            "spec": {
                "imageDefinitionName": "os",
                "version": version,
                "source": source,
                "publishingProfile": {"targetRegions": [{"name": region}]},
            },
        }
    )


def source_refused(world: World, name: str) -> dict[str, Any]:
    """The version's SourceResolved condition once it is False (waited for)."""

    def refused() -> dict[str, Any]:
        conditions = {c["type"]: c for c in world.status(name).get("conditions") or []}
        resolved = conditions.get("SourceResolved") or {}
        return resolved if resolved.get("status") == "False" else {}

    return wait_for(refused, timeout=CONDITION_TIMEOUT, description=f"{name} source refused")


@pytest.fixture
def world(kube: Client, namespace: str, registry_factory: Callable[[int], list[Registry]]) -> Any:
    made = World(kube, namespace, registry_factory(2))
    home = made.region("home", made.rest[:1])
    made.parents(home)
    yield made
    made.cleanup()


@pytest.fixture
def operator_namespace(second_namespace: str) -> str:
    """A second namespace playing galleon-system: it holds the regional push Secrets."""
    return second_namespace


# (a) Admission -----------------------------------------------------------------------

REFUSED_SOURCES = [
    pytest.param(
        {"credentialsSecretRef": {"name": "push", "namespace": "galleon-system"}},
        "remove source.credentialsSecretRef.namespace",
        id="credentials-of-another-namespace",
    ),
    pytest.param(
        {"credentialsSecretRef": {"name": "push", "namespace": ""}},
        "remove source.credentialsSecretRef.namespace",
        id="credentials-empty-namespace",
    ),
    pytest.param(
        {"tls": {"caSecretRef": {"name": "ca", "namespace": "galleon-system"}}},
        "remove source.tls.caSecretRef.namespace",
        id="ca-of-another-namespace",
    ),
]


@pytest.mark.parametrize(("source", "remedy"), REFUSED_SOURCES)
def test_the_api_server_refuses_a_source_secret_of_another_namespace(
    kube: Client, namespace: str, source: dict[str, Any], remedy: str
) -> None:
    document = image_version("os-1-0-0", "1.0.0", {"image": "reg.example.com/os:1", **source}, "x")
    with pytest.raises(ApiError) as refused:
        kube.create(document, namespace=namespace)
    assert refused.value.status.code == 422, refused.value.status
    message = refused.value.status.message or ""
    assert "an ImageVersion may only reference Secrets of its own namespace" in message, message
    assert remedy in message, message
    assert list(kube.list(ImageVersion, namespace=namespace)) == []


@pytest.mark.parametrize(
    "credentials",
    [
        pytest.param({"name": "pull"}, id="no-namespace"),
        # null is "not set" for the API server's has() as for the model (and the
        # operator reads the version's own namespace whatever the reference says).
        pytest.param({"name": "pull", "namespace": None}, id="null-namespace"),
    ],
)
def test_the_api_server_accepts_a_source_secret_of_the_versions_namespace(
    kube: Client, namespace: str, credentials: dict[str, Any]
) -> None:
    source = {
        "image": "reg.example.com/os:1",
        "credentialsSecretRef": credentials,
        "tls": {"caSecretRef": {"name": "ca"}},
    }
    created = kube.create(image_version("os-1-0-0", "1.0.0", source, "x"), namespace=namespace)
    assert created.spec["source"]["credentialsSecretRef"]["name"] == "pull"
    assert not created.spec["source"]["credentialsSecretRef"].get("namespace")


def test_a_region_may_still_name_the_namespace_of_its_secrets(kube: Client, namespace: str) -> None:
    name = f"{namespace}-region"[:63]
    region = codecs.from_dict(
        {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "Region",
            "metadata": {"name": name},
            "spec": {
                "registries": [
                    {
                        "name": "a",
                        "url": "https://reg.example.com",
                        "credentialsSecretRef": {"name": "push", "namespace": namespace},
                        "tls": {"caSecretRef": {"name": "ca", "namespace": namespace}},
                    }
                ]
            },
        }
    )
    try:
        created = kube.create(region)
        endpoint = created.spec["registries"][0]
        assert endpoint["credentialsSecretRef"]["namespace"] == namespace
    finally:
        with contextlib.suppress(ApiError):
            kube.delete(Region, name)


# (b) The operator, against a hostile source registry -------------------------------


def test_a_hostile_source_registry_never_receives_credentials_not_meant_for_it(
    kube: Client, namespace: str, operator_namespace: str, world: World, operator_factory: Any
) -> None:
    home = next(iter(world.regions))
    with recorder(basic_challenge) as hostile:
        # The prize: the regional push credentials, in the operator's namespace, both as
        # keys and as a docker config entry for the hostile host itself.
        create_secret(
            kube,
            operator_namespace,
            "push",
            {"username": PUSH_USER.encode(), "password": PUSH_PASSWORD.encode()},
        )
        docker_config_secret(
            kube, operator_namespace, "push-config", hostile.host, PUSH_USER, PUSH_PASSWORD
        )
        # The tenant's own Secrets: one for another registry, one for the hostile one.
        docker_config_secret(
            kube, namespace, "pull-other-host", "registry.example.com", TENANT_USER, "x"
        )
        docker_config_secret(
            kube, namespace, "pull-own", hostile.host, TENANT_USER, TENANT_PASSWORD
        )
        operator_factory(
            namespaces=[namespace], extra=[f"--operator-namespace={operator_namespace}"]
        )

        def source(repository: str, secret: str | None) -> dict[str, Any]:
            ref = {"credentialsSecretRef": {"name": secret}} if secret else {}
            return {"image": f"{hostile.host}/{repository}:1", "plainHTTP": True, **ref}

        cases = {
            # name: (version, repository, Secret named, words the condition must say)
            "by-name": ("1.0.0", "sources/by-name", "push", f"Secret {namespace}/push not found"),
            "by-config-name": (
                "1.0.1",
                "sources/by-config-name",
                "push-config",
                f"Secret {namespace}/push-config not found",
            ),
            "other-host": (
                "1.0.2",
                "sources/other-host",
                "pull-other-host",
                f"Secret {namespace}/pull-other-host has no .dockerconfigjson entry for host "
                f"{hostile.host} (entries: registry.example.com)",
            ),
            "anonymous": ("1.0.3", "sources/anonymous", None, "401"),
            "own": ("1.0.4", "sources/own", "pull-own", "401"),
        }
        for name, (version, repository, secret, _) in cases.items():
            kube.apply(
                image_version(name, version, source(repository, secret), home),
                namespace=namespace,
                force=True,
            )
        conditions = {name: source_refused(world, name) for name in cases}

        # Nothing was sent for the versions whose Secret is not theirs to use.
        for repository in ("by-name", "by-config-name", "other-host"):
            assert hostile.authorizations(f"/{repository}/") == [], hostile.seen
        # The anonymous version reached the registry and sent nothing.
        assert hostile.authorizations("/anonymous/"), "the hostile registry was never asked"
        assert set(hostile.authorizations("/anonymous/")) == {None}
        # The control: the tenant's own credentials for this very host do arrive...
        assert basic(TENANT_USER, TENANT_PASSWORD) in hostile.authorizations("/own/")
        # ...and they are the only credentials the hostile registry ever saw.
        assert {a for a in hostile.authorizations() if a} == {basic(TENANT_USER, TENANT_PASSWORD)}
        assert all(PUSH_PASSWORD not in str(s) for s in hostile.seen)
        # Each version says why.
        for name, (_, _, _, words) in cases.items():
            assert conditions[name]["reason"] == "Unauthorized", conditions[name]
            assert words in conditions[name]["message"], conditions[name]


# (c) Token realms, redirects and upload locations on another host --------------------


def bearer_registry(realm_for: Callable[[str], str]) -> Callable[..., Answer]:
    """A registry that sends every client to `realm_for(path)` for a token, and refuses
    every token (so nothing is ever read: only what is sent matters)."""

    def respond(_: Recorder, method: str, path: str, authorization: str | None) -> Answer:
        if path.startswith("/token"):
            return 200, {"Content-Type": "application/json"}, b'{"token": "t0ken"}'
        realm = realm_for(path)
        challenge = f'Bearer realm="{realm}",service="hostile",scope="repository:x:pull"'
        return 401, {"WWW-Authenticate": challenge}, b'{"errors":[]}'

    return respond


def token_server(_: Recorder, method: str, path: str, authorization: str | None) -> Answer:
    return 200, {"Content-Type": "application/json"}, b'{"token": "anonymous-t0ken"}'


def test_a_token_realm_on_another_host_never_receives_the_basic_credentials(
    kube: Client, namespace: str, world: World, operator_factory: Any
) -> None:
    home = next(iter(world.regions))
    with recorder(token_server, address=OTHER_HOST) as realm:
        near: list[str] = []  # the registry's own URL, known once it listens

        def realm_for(path: str) -> str:
            return f"{realm.url}/token" if "/far/" in path else f"{near[0]}/token"

        with recorder(bearer_registry(realm_for)) as registry:
            near.append(registry.url)
            create_secret(
                kube,
                namespace,
                "pull",
                {"username": TENANT_USER.encode(), "password": TENANT_PASSWORD.encode()},
            )
            operator_factory(namespaces=[namespace])
            for name, version in (("far", "1.0.0"), ("near", "1.0.1")):
                source = {
                    "image": f"{registry.host}/sources/{name}:1",
                    "plainHTTP": True,
                    "credentialsSecretRef": {"name": "pull"},
                }
                kube.apply(
                    image_version(name, version, source, home), namespace=namespace, force=True
                )
            far = source_refused(world, "far")
            near_condition = source_refused(world, "near")

            # The realm on another host was asked for a token, without credentials.
            assert realm.seen, "the client never asked the other host's realm"
            assert set(realm.authorizations()) == {None}, realm.seen
            # The control: the realm on the registry's own host did get them.
            assert basic(TENANT_USER, TENANT_PASSWORD) in registry.authorizations("/token")
            # And the registry itself only ever saw tokens, never Basic credentials.
            v2 = [a for a in registry.authorizations("/v2/") if a]
            assert v2 and all(a.startswith("Bearer ") for a in v2), registry.seen
            # The version says why its credentials were not used.
            assert far["reason"] == "Unauthorized", far
            assert (
                f"credentials were not sent to token realm host {OTHER_HOST}" in far["message"]
            ), far
            assert near_condition["reason"] == "Unauthorized", near_condition


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_redirect_to_another_host_carries_no_credentials() -> None:
    """A registry asking for Basic, then redirecting the manifest to another host that
    asks for credentials too: that host gets none, and its 401 is not answered."""
    with recorder(basic_challenge, address=OTHER_HOST) as elsewhere:

        def respond(_: Recorder, method: str, path: str, authorization: str | None) -> Answer:
            if authorization != basic(TENANT_USER, TENANT_PASSWORD):
                return basic_challenge()
            return 307, {"Location": f"{elsewhere.url}/stolen{path}"}, b""

        with recorder(respond) as registry:

            async def read() -> None:
                async with RegistryClient(
                    registry.url, username=TENANT_USER, password=TENANT_PASSWORD
                ) as client:
                    await client.get_manifest("sources/os", "1.0.0")

            with pytest.raises(oci_errors.Unauthorized, match="another host"):
                run(read())
    assert basic(TENANT_USER, TENANT_PASSWORD) in registry.authorizations()
    assert elsewhere.seen, "the redirect was not followed"
    assert set(elsewhere.authorizations()) == {None}, elsewhere.seen


def test_an_upload_location_on_another_host_carries_no_credentials() -> None:
    """A registry (a destination) answering an upload with a Location on another host:
    the blob goes there without the registry's credentials or token."""
    with recorder(basic_challenge, address=OTHER_HOST) as elsewhere:

        def respond(_: Recorder, method: str, path: str, authorization: str | None) -> Answer:
            if authorization != basic(PUSH_USER, PUSH_PASSWORD):
                return basic_challenge()
            return 202, {"Location": f"{elsewhere.url}/uploads/1"}, b""

        with recorder(respond) as registry:

            async def upload() -> None:
                async with RegistryClient(
                    registry.url, username=PUSH_USER, password=PUSH_PASSWORD
                ) as client:
                    await client.upload_blob("galleon/os", "sha256:" + "0" * 64, 4, b"blob")

            with pytest.raises(oci_errors.Unauthorized):
                run(upload())
    assert basic(PUSH_USER, PUSH_PASSWORD) in registry.authorizations()
    assert elsewhere.seen, "the upload location was not used"
    assert set(elsewhere.authorizations()) == {None}, elsewhere.seen
