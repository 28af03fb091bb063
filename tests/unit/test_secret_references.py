"""Secrets stay in their namespace, and credentials go to their registry host only.

- Every `*SecretRef` of a namespaced kind refuses a namespace, twice (a CEL rule in
  the CRD and the pydantic model, with the same message); a Region's keeps it.
- The operator decides the namespace itself: an ImageVersion's own, whatever the
  reference says.
- A `.dockerconfigjson` entry is used only for its own registry host.
- The registry client gives a token realm the Basic credentials only on the
  registry's own host.

The API server's side of the CEL rule, and the whole path through the operator to a
hostile registry, are in tests/integration/test_secret_boundary.py.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from galleon.api.common import LocalSecretReference
from galleon.api.crd import KINDS, Kind, kind_named, render_all
from galleon.api.imageversion import ImageSource, ImageVersionSpec
from galleon.api.region import RegistryEndpoint
from galleon.controllers.imageversion.reconcile import spec_errors
from galleon.controllers.registries import SecretName, endpoint_access, source_access
from galleon.kube.credentials import (
    MAX_SECRET_VALUE_BYTES,
    CredentialsError,
    registry_credentials,
    registry_host,
    secret_value,
)
from galleon.oci.client import origin, realm_may_receive_credentials

REPO = Path(__file__).resolve().parents[2]
NO_NAMESPACE = "!has(self.namespace)"
CREDENTIALS_MESSAGE = (
    "an ImageVersion may only reference Secrets of its own namespace; "
    "remove source.credentialsSecretRef.namespace"
)
CA_MESSAGE = (
    "an ImageVersion may only reference Secrets of its own namespace; "
    "remove source.tls.caSecretRef.namespace"
)


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def example_spec(kind: str) -> dict[str, Any]:
    for path in sorted((REPO / "examples").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == kind:
                return copy.deepcopy(document["spec"])
    raise LookupError(kind)


def example_specs(kind: str) -> list[dict[str, Any]]:
    """The spec of examples/ for `kind`, and for the image builder's kinds also those of
    tests/data/builder_api.yaml's good objects (which use every kind of source)."""
    specs = []
    with contextlib.suppress(LookupError):
        specs.append(example_spec(kind))
    data = yaml.safe_load((REPO / "tests" / "data" / "builder_api.yaml").read_text())
    specs.extend(copy.deepcopy(d["spec"]) for d in data["good"] if d["kind"] == kind)
    return specs


def placements(node: Any, path: tuple[str, ...], value: Any) -> Iterator[Any]:
    """Copies of `node` with `value` at `path`, creating the objects on the way; a `[]`
    in `path` gives one copy per item of that list."""
    key, rest = path[0], path[1:]
    if key == "[]":
        for index, item in enumerate(node):
            for placed in placements(item, rest, value):
                yield [*node[:index], placed, *node[index + 1 :]]
    elif not rest:
        yield {**node, key: value}
    else:
        for placed in placements(node.get(key) or {}, rest, value):
            yield {**node, key: placed}


def accepted(kind: Kind, spec: dict[str, Any]) -> bool:
    try:
        kind.spec.model_validate(spec)
    except ValidationError:
        return False
    return True


def secret_refs(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """(path below spec, schema node) of every `*SecretRef` of a schema."""
    for key, child in (node.get("properties") or {}).items():
        if key.endswith("SecretRef"):
            yield (*path, key), child
        yield from secret_refs(child, (*path, key))
    if "items" in node:
        yield from secret_refs(node["items"], (*path, "[]"))


def spec_schema(kind: Kind) -> dict[str, Any]:
    crd = render_all()[f"galleon.dev_{kind.plural}.yaml"]
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return dict(schema["properties"]["spec"])


NAMED_BY_KEY = {
    "ImageTemplate": "one model holds a template's image sources (source.image and every "
    "Layer step's image), so its messages name the reference by its key alone",
}
"""Kinds whose `*SecretRef` messages name the reference by its key, not its whole path."""

NAMESPACED_REFS = [
    pytest.param(kind, path, node, id=f"{kind.kind}.{'.'.join(path)}")
    for kind in KINDS
    if kind.scope == "Namespaced"
    for path, node in secret_refs(spec_schema(kind))
]


# The API: admission rule and model, the same words ------------------------------------


def test_the_namespaced_secret_references_are_the_ones_we_know() -> None:
    """A new `*SecretRef` in a namespaced kind is checked by the two tests below; this
    one makes sure the walk finds them at all."""
    assert {param.id for param in NAMESPACED_REFS} == {
        "ImageVersion.source.credentialsSecretRef",
        "ImageVersion.source.tls.caSecretRef",
        "ImageTemplate.source.image.credentialsSecretRef",
        "ImageTemplate.source.image.tls.caSecretRef",
        "ImageTemplate.customize.[].layer.image.credentialsSecretRef",
        "ImageTemplate.customize.[].layer.image.tls.caSecretRef",
    }


@pytest.mark.parametrize(("kind", "path", "node"), NAMESPACED_REFS)
def test_every_secret_reference_of_a_namespaced_kind_refuses_a_namespace(
    kind: Kind, path: tuple[str, ...], node: dict[str, Any]
) -> None:
    # Still in the schema, so the API server refuses it instead of pruning it silently.
    assert "namespace" in node["properties"]
    rules = {rule["rule"]: rule["message"] for rule in node["x-kubernetes-validations"]}
    message = rules[NO_NAMESPACE]
    named = path[-1] if kind.kind in NAMED_BY_KEY else ".".join(path)
    assert message == (
        f"an {kind.kind} may only reference Secrets of its own namespace; remove {named}.namespace"
    )

    # The model refuses it with the same words, in an example that is accepted
    # without the namespace (for a list, the first item where the reference fits).
    foreign = {"name": "push", "namespace": "galleon-system"}
    local = {"name": "push"}
    spec = next(
        (
            with_namespace
            for example in example_specs(kind.kind)
            for with_namespace, without in zip(
                placements(example, path, foreign), placements(example, path, local), strict=True
            )
            if accepted(kind, without)
        ),
        None,
    )
    assert spec is not None, f"no example of {kind.kind} takes {named} without a namespace"
    with pytest.raises(ValidationError) as refused:
        kind.spec.model_validate(spec)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        pytest.param(
            {"credentialsSecretRef": {"name": "push", "namespace": "galleon-system"}},
            CREDENTIALS_MESSAGE,
            id="credentials-in-another-namespace",
        ),
        pytest.param(
            {"credentialsSecretRef": {"name": "push", "namespace": ""}},
            CREDENTIALS_MESSAGE,
            id="credentials-empty-namespace",
        ),
        pytest.param(
            {"tls": {"caSecretRef": {"name": "ca", "namespace": "galleon-system"}}},
            CA_MESSAGE,
            id="ca-in-another-namespace",
        ),
        pytest.param({"credentialsSecretRef": {"name": "pull"}}, None, id="credentials-local"),
        pytest.param(
            {"credentialsSecretRef": {"name": "pull", "namespace": None}},
            None,
            id="credentials-null-namespace-is-absent",
        ),
        pytest.param({"tls": {"caSecretRef": {"name": "ca"}}}, None, id="ca-local"),
    ],
)
def test_image_source_secret_references(source: dict[str, Any], message: str | None) -> None:
    document = {"image": "reg.example.com/base/os:1.0.0", **source}
    if message is None:
        ImageSource.model_validate(document)
        return
    with pytest.raises(ValidationError) as refused:
        ImageSource.model_validate(document)
    assert message in str(refused.value)


def test_a_region_may_still_name_the_namespace_of_its_secrets() -> None:
    region = kind_named("Region")
    endpoint = spec_schema(region)["properties"]["registries"]["items"]
    for path, node in secret_refs(endpoint):
        rules = [rule["rule"] for rule in node.get("x-kubernetes-validations") or []]
        assert NO_NAMESPACE not in rules, path
    RegistryEndpoint.model_validate(
        {
            "name": "a",
            "url": "https://reg.example.com",
            "credentialsSecretRef": {"name": "push", "namespace": "registry-secrets"},
            "tls": {"caSecretRef": {"name": "ca", "namespace": "registry-secrets"}},
        }
    )


def test_a_stored_spec_with_a_namespace_reads_as_the_admission_refusal() -> None:
    """What the operator writes in the condition of an ImageVersion stored before the rule."""
    spec = example_spec("ImageVersion")
    spec["source"]["credentialsSecretRef"] = {"name": "push", "namespace": "galleon-system"}
    with pytest.raises(ValidationError) as refused:
        ImageVersionSpec.model_validate(spec)
    assert spec_errors(refused.value) == f"spec.source.credentialsSecretRef: {CREDENTIALS_MESSAGE}"


# Which namespace the operator reads ------------------------------------------------


def test_a_source_secret_is_read_from_the_versions_namespace_whatever_the_reference_says() -> None:
    # model_construct skips validation: a reference that got past every check.
    source = ImageSource.model_construct(
        image="evil.example/x:1",
        credentials_secret_ref=LocalSecretReference.model_construct(
            name="push", namespace="galleon-system"
        ),
        plain_http=False,
        tls=None,
    )
    access = source_access(source, "tenant-a")
    assert access.credentials == SecretName("tenant-a", "push")


def test_a_region_secret_is_read_where_the_region_says_else_the_operators_namespace() -> None:
    endpoint = RegistryEndpoint.model_validate(
        {
            "name": "a",
            "url": "https://reg.example.com",
            "credentialsSecretRef": {"name": "push", "namespace": "registry-secrets"},
            "tls": {"caSecretRef": {"name": "ca"}},
        }
    )
    access = endpoint_access(endpoint, "galleon-system")
    assert access.credentials == SecretName("registry-secrets", "push")
    assert access.ca == SecretName("galleon-system", "ca")


# Docker config entries: for their own host only ---------------------------------------


def docker_config(auths: dict[str, Any]) -> dict[str, str]:
    return {".dockerconfigjson": b64(json.dumps({"auths": auths}))}


def auth(user: str, password: str) -> dict[str, str]:
    return {"auth": b64(f"{user}:{password}")}


HOST_CASES = [
    pytest.param({"reg.example.com": auth("u", "p")}, "reg.example.com", ("u", "p"), id="exact"),
    pytest.param(
        {"https://reg.example.com/v1/": auth("u", "p")},
        "reg.example.com",
        ("u", "p"),
        id="scheme-and-path",
    ),
    pytest.param(
        {"http://reg.example.com/": auth("u", "p")},
        "reg.example.com",
        ("u", "p"),
        id="http-and-trailing-slash",
    ),
    pytest.param(
        {"Reg.Example.COM:5000": auth("u", "p")},
        "reg.example.com:5000",
        ("u", "p"),
        id="case-insensitive-with-port",
    ),
    pytest.param(
        {"https://index.docker.io/v1/": auth("u", "p")},
        "registry-1.docker.io",
        ("u", "p"),
        id="docker-hub-classic-key",
    ),
    pytest.param(
        {"docker.io": auth("u", "p")}, "index.docker.io", ("u", "p"), id="docker-hub-short-key"
    ),
    pytest.param(
        {"other.example.com": auth("x", "y"), "reg.example.com": auth("u", "p")},
        "reg.example.com",
        ("u", "p"),
        id="the-matching-one-of-two",
    ),
    pytest.param(
        {"https://reg.example.com": auth("x", "y"), "reg.example.com": auth("u", "p")},
        "reg.example.com",
        ("u", "p"),
        id="exact-key-before-equivalent-spelling",
    ),
    pytest.param(
        {"reg.example.com": {"username": "u", "password": "p"}},
        "reg.example.com",
        ("u", "p"),
        id="username-and-password-fields",
    ),
    pytest.param(
        {"reg.example.com": auth("u", "p:with:colons")},
        "reg.example.com",
        ("u", "p:with:colons"),
        id="password-with-colons",
    ),
]


@pytest.mark.parametrize(("auths", "host", "expected"), HOST_CASES)
def test_docker_config_entry_for_the_registry_host(
    auths: dict[str, Any], host: str, expected: tuple[str, str]
) -> None:
    assert registry_credentials(docker_config(auths), host, "ns/pull") == expected


PASSWORD = "hunter2-not-for-you"
NO_MATCH_CASES = [
    pytest.param(
        {"reg.example.com": auth("u", PASSWORD)},
        "evil.example:5000",
        "entries: reg.example.com",
        id="single-entry-of-another-host-is-not-a-fallback",
    ),
    pytest.param(
        {"reg.example.com:5000": auth("u", PASSWORD)},
        "reg.example.com",
        "entries: reg.example.com:5000",
        id="port-must-match",
    ),
    pytest.param(
        {"reg.example.com": auth("u", PASSWORD)},
        "reg.example.com:5000",
        "entries: reg.example.com)",
        id="no-port-is-not-any-port",
    ),
    pytest.param(
        {"reg.example.com": auth("u", PASSWORD)},
        "reg.example.com.evil.io",
        "for host reg.example.com.evil.io",
        id="suffix-is-another-host",
    ),
    pytest.param(
        {"https://evil.io/reg.example.com": auth("u", PASSWORD)},
        "reg.example.com",
        "entries: evil.io",
        id="path-is-not-a-host",
    ),
    pytest.param({}, "reg.example.com", "entries: none", id="no-entries"),
    pytest.param(
        {f"r{i:02}.example.com": auth("u", PASSWORD) for i in range(12)},
        "reg.example.com",
        "r09.example.com, and 2 more",
        id="many-entries-listed-bounded",
    ),
]


@pytest.mark.parametrize(("auths", "host", "words"), NO_MATCH_CASES)
def test_no_docker_config_entry_for_the_host(auths: dict[str, Any], host: str, words: str) -> None:
    with pytest.raises(CredentialsError) as refused:
        registry_credentials(docker_config(auths), host, "ns/pull")
    message = str(refused.value)
    assert message.startswith(
        f"Secret ns/pull has no .dockerconfigjson entry for host {registry_host(host)} ("
    )
    assert words in message
    assert PASSWORD not in message and b64(f"u:{PASSWORD}") not in message


BAD_SECRET_CASES = [
    pytest.param({".dockerconfigjson": b64("{not json")}, "is not valid JSON", id="malformed-json"),
    pytest.param(
        {".dockerconfigjson": b64(json.dumps(["auths"]))}, "has no auths object", id="not-object"
    ),
    pytest.param(
        {".dockerconfigjson": b64(json.dumps({"auths": []}))},
        "has no auths object",
        id="auths-not-object",
    ),
    pytest.param({".dockerconfigjson": "%%%"}, "is not valid base64", id="value-not-base64"),
    pytest.param({".dockerconfigjson": b64(b"\xff\xfe")}, "is not valid JSON", id="value-not-utf8"),
    pytest.param(
        {".dockerconfigjson": "A" * (4 * (MAX_SECRET_VALUE_BYTES // 3 + 1) + 4)},
        f"larger than {MAX_SECRET_VALUE_BYTES} bytes",
        id="value-over-1MiB",
    ),
    pytest.param(
        docker_config({"reg.example.com": {"auth": "%%%"}}),
        "auth is not valid base64",
        id="entry-auth-not-base64",
    ),
    pytest.param(
        docker_config({"reg.example.com": {"auth": b64("no-colon")}}),
        "auth is not username:password",
        id="entry-auth-without-colon",
    ),
    pytest.param(
        docker_config({"reg.example.com": {"identitytoken": "t"}}),
        "has neither username/password nor auth",
        id="entry-without-credentials",
    ),
    pytest.param(
        docker_config({"reg.example.com": "u:p"}), "is not an object", id="entry-not-object"
    ),
    pytest.param({"token": b64("t")}, "neither username/password keys", id="no-known-keys"),
    pytest.param(
        {"username": b64(b"\xff"), "password": b64("p")}, "is not UTF-8", id="username-not-utf8"
    ),
]


@pytest.mark.parametrize(("data", "words"), BAD_SECRET_CASES)
def test_unusable_secrets_are_refused_clearly(data: dict[str, str], words: str) -> None:
    with pytest.raises(CredentialsError) as refused:
        registry_credentials(data, "reg.example.com", "ns/pull")
    assert str(refused.value).startswith("Secret ns/pull ")
    assert words in str(refused.value)


def test_username_and_password_keys_are_the_credentials_of_the_named_registry() -> None:
    data = {"username": b64("u"), "password": b64("p"), **docker_config({"x.io": auth("a", "b")})}
    assert registry_credentials(data, "reg.example.com", "ns/pull") == ("u", "p")


def test_a_value_of_exactly_1_mib_is_read() -> None:
    value = b"x" * MAX_SECRET_VALUE_BYTES
    assert secret_value({"ca.crt": b64(value)}, "ca.crt", "ns/ca") == value
    with pytest.raises(CredentialsError, match="larger than"):
        secret_value({"ca.crt": b64(value + b"xxxx")}, "ca.crt", "ns/ca")


# Token realms: Basic credentials on the registry's own host only ----------------------

REALM_CASES = [
    pytest.param("https://reg.example.com/token", "https://reg.example.com", True, id="same-host"),
    pytest.param(
        "https://REG.example.com:443/token", "https://reg.example.com", True, id="default-port"
    ),
    pytest.param(
        "http://127.0.0.1:5000/token", "http://127.0.0.1:5000", True, id="plain-http-registry"
    ),
    pytest.param(
        "https://127.0.0.1:5000/token", "http://127.0.0.1:5000", True, id="upgrade-to-https"
    ),
    pytest.param("https://evil.example/token", "https://reg.example.com", False, id="other-host"),
    pytest.param(
        "https://reg.example.com:8443/token", "https://reg.example.com", False, id="other-port"
    ),
    pytest.param(
        "http://reg.example.com/token", "https://reg.example.com", False, id="downgrade-to-http"
    ),
    pytest.param(
        "https://reg.example.com.evil.io/t", "https://reg.example.com", False, id="suffix-host"
    ),
    pytest.param(
        "https://reg.example.com@evil.io/t", "https://reg.example.com", False, id="userinfo-trick"
    ),
    pytest.param("ftp://reg.example.com/t", "https://reg.example.com", False, id="not-http"),
    pytest.param("/token", "https://reg.example.com", False, id="relative-realm"),
    pytest.param(
        "https://auth.docker.io/token", "https://registry-1.docker.io", True, id="docker-hub"
    ),
    pytest.param(
        "https://auth.docker.io/token", "https://reg.example.com", False, id="docker-hub-only"
    ),
]


@pytest.mark.parametrize(("realm", "base_url", "allowed"), REALM_CASES)
def test_which_token_realms_receive_basic_credentials(
    realm: str, base_url: str, allowed: bool
) -> None:
    assert realm_may_receive_credentials(realm, base_url) is allowed


def test_an_unparsable_port_matches_no_origin() -> None:
    assert origin("https://reg.example.com:bad/")[1:] == ("", -1)
