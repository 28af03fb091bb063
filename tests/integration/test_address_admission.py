"""Registry hosts that are literal addresses in a denied range are refused at admission.

`ImageVersion.spec.source.image` and `Region.spec.registries[].url` are created with
server-side dry run on the real kube-apiserver (the CEL rules of the generated CRDs,
`galleon.api.registry_hosts.cel_rules`), and the same values are parsed by the models
(`registry_hosts.refusal`): both must refuse exactly the denied hosts, with the
message of the expected rule, and admit loopback, private and DNS hosts.

Nothing connects anywhere: dry run persists nothing, and no operator runs here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from pydantic import ValidationError

from galleon.api import registry_hosts
from galleon.api.imageversion import ImageSource
from galleon.api.region import URL_MESSAGE, RegistryEndpoint
from galleon.api.registry_hosts import (
    GRAMMAR,
    LINK_LOCAL,
    NOT_CANONICAL,
    NOT_PLAIN_IPV6,
    UNSPECIFIED,
)
from galleon_testkit.binaries import REPO_ROOT
from galleon_testkit.cluster_fixtures import short_name

pytestmark = pytest.mark.integration

REFUSED = "refused"
"""Refused by both, with a message that may differ: the API server's URL parser (Go)
and the model's (urllib) disagree on whether it is a URL at all."""

ADDRESSES = [
    # Link-local, the metadata services.
    pytest.param("169.254.169.254", LINK_LOCAL, id="metadata"),
    pytest.param("169.254.169.254:80", LINK_LOCAL, id="metadata-port"),
    pytest.param("169.254.0.1", LINK_LOCAL, id="link-local-v4"),
    pytest.param("[fe80::1]", LINK_LOCAL, id="link-local-v6"),
    pytest.param("[FE80::1]:5000", LINK_LOCAL, id="link-local-v6-upper"),
    pytest.param("[febf:ffff::1]", LINK_LOCAL, id="link-local-v6-top"),
    pytest.param("[fd00:ec2::254]", LINK_LOCAL, id="aws-metadata-v6"),
    pytest.param("[fd00:ec2::254]:5000", LINK_LOCAL, id="aws-metadata-v6-port"),
    pytest.param("[fd00:0ec2:0:0:0:0:0:0254]", LINK_LOCAL, id="aws-metadata-v6-long"),
    # Unspecified.
    pytest.param("0.0.0.0", UNSPECIFIED, id="unspecified-v4"),
    pytest.param("0.0.0.0:5000", UNSPECIFIED, id="unspecified-v4-port"),
    pytest.param("0.1.2.3", UNSPECIFIED, id="this-network"),
    pytest.param("[::]", UNSPECIFIED, id="unspecified-v6"),
    pytest.param("[0:0:0:0:0:0:0:0]:5000", UNSPECIFIED, id="unspecified-v6-long"),
    # IPv4 in IPv6 clothing.
    pytest.param("[::ffff:169.254.169.254]", NOT_PLAIN_IPV6, id="mapped-metadata"),
    pytest.param("[::ffff:a9fe:a9fe]", NOT_PLAIN_IPV6, id="mapped-metadata-hex"),
    pytest.param("[0:0:0:0:0:ffff:169.254.169.254]", NOT_PLAIN_IPV6, id="mapped-metadata-long"),
    pytest.param("[::ffff:0.0.0.0]:5000", NOT_PLAIN_IPV6, id="mapped-unspecified"),
    pytest.param("[::ffff:127.0.0.1]", NOT_PLAIN_IPV6, id="mapped-loopback"),
    # Numbers some resolvers read as addresses.
    pytest.param("2852039166", NOT_CANONICAL, id="decimal"),
    pytest.param("0xa9fea9fe", NOT_CANONICAL, id="hex"),
    pytest.param("0XA9FEA9FE:5000", NOT_CANONICAL, id="hex-upper"),
    pytest.param("169.254.43518", NOT_CANONICAL, id="three-parts"),
    pytest.param("0251.0376.0251.0376", NOT_CANONICAL, id="octal"),
    pytest.param("0xa9.0xfe.0xa9.0xfe", NOT_CANONICAL, id="hex-parts"),
    pytest.param("169.254.169.254.", NOT_CANONICAL, id="trailing-dot"),
    pytest.param("127.1", NOT_CANONICAL, id="short-loopback"),
    pytest.param("010.0.0.5", NOT_CANONICAL, id="leading-zero"),
    pytest.param("0", NOT_CANONICAL, id="zero"),
    pytest.param("0x:5000", NOT_CANONICAL, id="empty-hex"),
    pytest.param("1.2.3.4.5", NOT_CANONICAL, id="five-parts"),
    # Allowed at admission (the operator's address policy decides when connecting).
    pytest.param("127.0.0.1:5000", None, id="loopback"),
    pytest.param("10.0.0.5", None, id="private"),
    pytest.param("192.168.1.10:443", None, id="private-port"),
    pytest.param("[::1]:5000", None, id="loopback-v6"),
    pytest.param("[2001:db8::1]", None, id="global-v6"),
    pytest.param("[fd00::1]:5000", None, id="unique-local-v6"),
    pytest.param("1.2.3.4", None, id="public"),
    pytest.param("registry.example.com", None, id="dns"),
    pytest.param("registry.example.com:5000", None, id="dns-port"),
    pytest.param("localhost:5000", None, id="localhost"),
    pytest.param("my_registry:5000", None, id="underscore"),
    pytest.param("dead.beef", None, id="hex-letters-name"),
    pytest.param("1e100.net", None, id="digits-name"),
    pytest.param("169.254.169.254.nip.io", None, id="name-of-an-address"),
    pytest.param("xn--bcher-kva.example", None, id="punycode"),
]

IMAGES = [
    pytest.param(" 169.254.169.254/x:1", GRAMMAR, id="leading-space"),
    pytest.param("169.254.169.254#/x:1", GRAMMAR, id="fragment"),
    pytest.param("169.254.169.254?/x:1", GRAMMAR, id="query"),
    pytest.param("user@169.254.169.254/x:1", GRAMMAR, id="userinfo"),
    pytest.param("[169.254.169.254]/x:1", NOT_PLAIN_IPV6, id="v4-in-brackets"),
    pytest.param("[fe80::1%25eth0]:5000/x:1", GRAMMAR, id="zone"),
    pytest.param("[fe80::1/x:1", GRAMMAR, id="unclosed-bracket"),
    pytest.param("fd00:ec2::254/x:1", GRAMMAR, id="unbracketed-v6"),
    pytest.param("169.254.169.254:x/x:1", GRAMMAR, id="port-not-a-number"),
    pytest.param(
        "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/x:1",
        GRAMMAR,
        id="full-width-digits",
    ),
    # No "/": not a reference, so no host to judge (the operator says it is invalid).
    pytest.param("169.254.169.254", None, id="no-slash"),
    pytest.param("busybox", None, id="no-host"),
]

URLS = [
    pytest.param("https://user@169.254.169.254/", LINK_LOCAL, id="userinfo"),
    pytest.param("http://reg.example.com@169.254.169.254:80/", LINK_LOCAL, id="name-as-userinfo"),
    # Go's URL parser (the API server's) takes no fragment: "not a URL" there.
    pytest.param("http://169.254.169.254#@reg.example.com/", REFUSED, id="fragment"),
    pytest.param("http://169.254.169.254?@reg.example.com/", LINK_LOCAL, id="query"),
    pytest.param("http://[fd00:ec2::254]:5000/v2", LINK_LOCAL, id="path"),
    pytest.param("http://0xa9fea9fe", NOT_CANONICAL, id="no-path"),
    pytest.param("http://[fe80::1%25eth0]:5000", REFUSED, id="zone"),
    pytest.param("http://[169.254.169.254]/", REFUSED, id="v4-in-brackets"),
    pytest.param(
        "http://\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14/",
        REFUSED,
        id="full-width-digits",
    ),
    pytest.param("http://reg.example.com/v2?next=http://169.254.169.254/", None, id="in-query"),
]


def example(kind: str) -> dict[str, Any]:
    for path in sorted(Path(REPO_ROOT / "examples").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == kind:
                return copy.deepcopy(document)
    raise AssertionError(f"no {kind} in examples/")


def refusal_message(kube: Client, document: dict[str, Any]) -> str | None:
    """The API server's refusal of a dry-run create of `document`, None if admitted."""
    try:
        kube.create(codecs.from_dict(document), dry_run=True)
    except ApiError as error:
        assert error.status.code == 422, error.status.message
        return error.status.message or ""
    return None


def judge_image(kube: Client, namespace: str, image: str) -> tuple[str | None, bool]:
    """(the API server's refusal, whether the model refuses) of a source image."""
    document = example("ImageVersion")
    document["metadata"]["namespace"] = namespace
    document["spec"]["source"]["image"] = image
    try:
        ImageSource.model_validate(document["spec"]["source"])
    except ValidationError:
        return refusal_message(kube, document), True
    return refusal_message(kube, document), False


def judge_url(kube: Client, name: str, url: str) -> tuple[str | None, bool]:
    """(the API server's refusal, whether the model refuses) of a registry URL."""
    document = example("Region")
    document["metadata"]["name"] = name
    document["spec"]["registries"] = [{"name": "a", "url": url}]
    try:
        RegistryEndpoint.model_validate({"name": "a", "url": url})
    except ValidationError:
        return refusal_message(kube, document), True
    return refusal_message(kube, document), False


def assert_judged(refused: str | None, model_refuses: bool, rule: str | None, subject: str) -> None:
    if rule is None:
        assert refused is None, refused
        assert not model_refuses
        return
    assert refused is not None, f"admitted, expected {rule}"
    assert model_refuses
    if rule != REFUSED:
        assert registry_hosts.messages(subject)[rule] in refused, refused


@pytest.mark.parametrize(("authority", "rule"), ADDRESSES)
def test_a_source_host_is_judged_alike_at_admission_and_by_the_model(
    kube: Client, namespace: str, authority: str, rule: str | None
) -> None:
    image = f"{authority}/sources/os:1.0.0"
    assert registry_hosts.refusal(authority) == rule
    assert_judged(*judge_image(kube, namespace, image), rule, registry_hosts.IMAGE_SUBJECT)


@pytest.mark.parametrize(("authority", "rule"), ADDRESSES)
def test_a_registry_host_is_judged_alike_at_admission_and_by_the_model(
    kube: Client, request: pytest.FixtureRequest, authority: str, rule: str | None
) -> None:
    url = f"http://{authority}/"
    assert registry_hosts.refusal(registry_hosts.url_authority(url)) == rule
    name = short_name(request.node.nodeid, "addr")
    assert_judged(*judge_url(kube, name, url), rule, registry_hosts.URL_SUBJECT)


@pytest.mark.parametrize(("image", "rule"), IMAGES)
def test_a_source_image_whose_host_hides_an_address_is_refused(
    kube: Client, namespace: str, image: str, rule: str | None
) -> None:
    assert_judged(*judge_image(kube, namespace, image), rule, registry_hosts.IMAGE_SUBJECT)


@pytest.mark.parametrize(("url", "rule"), URLS)
def test_a_registry_url_whose_host_hides_an_address_is_refused(
    kube: Client, request: pytest.FixtureRequest, url: str, rule: str | None
) -> None:
    name = short_name(request.node.nodeid, "addr")
    assert_judged(*judge_url(kube, name, url), rule, registry_hosts.URL_SUBJECT)


def test_a_url_that_is_no_url_gets_only_the_url_message(
    kube: Client, request: pytest.FixtureRequest
) -> None:
    """The host rules apply only to what the URL rule admits, so "not a URL" stays the
    one reason given for a URL that is not one."""
    refused, model_refuses = judge_url(kube, short_name(request.node.nodeid), "ftp://0.0.0.0")
    assert model_refuses and refused is not None
    assert URL_MESSAGE in refused
    assert registry_hosts.URL_SUBJECT not in refused, refused
