"""Registry hosts refused by the models: the Python half of the admission rules.

`galleon.api.registry_hosts.refusal` judges the `host[:port]` of a source image or a
registry URL; the models call it. The API server's half (the CEL rules of the CRDs),
judged on the same values, is tests/integration/test_address_admission.py.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from galleon.api import registry_hosts
from galleon.api.imageversion import ImageSource
from galleon.api.region import RegistryEndpoint
from galleon.api.registry_hosts import (
    GRAMMAR,
    LINK_LOCAL,
    NOT_CANONICAL,
    NOT_PLAIN_IPV6,
    RULES,
    UNSPECIFIED,
    image_authority,
    refusal,
    url_authority,
)


@pytest.mark.parametrize(
    ("authority", "rule"),
    [
        pytest.param("169.254.169.254", LINK_LOCAL, id="metadata"),
        pytest.param("169.254.169.254:80", LINK_LOCAL, id="metadata-port"),
        pytest.param("[fe80::1]:5000", LINK_LOCAL, id="link-local-v6"),
        pytest.param("[fd00:ec2::254]", LINK_LOCAL, id="aws-metadata-v6"),
        pytest.param("[FD00:0EC2::0254]", LINK_LOCAL, id="aws-metadata-v6-spelled-out"),
        pytest.param("0.0.0.0", UNSPECIFIED, id="unspecified"),
        pytest.param("0.255.255.255:1", UNSPECIFIED, id="this-network"),
        pytest.param("[::]:5000", UNSPECIFIED, id="unspecified-v6"),
        pytest.param("[::ffff:169.254.169.254]", NOT_PLAIN_IPV6, id="mapped"),
        pytest.param("[::ffff:a9fe:a9fe]", NOT_PLAIN_IPV6, id="mapped-hex"),
        pytest.param("[::ffff:127.0.0.1]", NOT_PLAIN_IPV6, id="mapped-loopback"),
        pytest.param("[10.0.0.5]", NOT_PLAIN_IPV6, id="v4-in-brackets"),
        pytest.param("2852039166", NOT_CANONICAL, id="decimal"),
        pytest.param("0xa9fea9fe", NOT_CANONICAL, id="hex"),
        pytest.param("169.254.43518", NOT_CANONICAL, id="three-parts"),
        pytest.param("0251.0376.0251.0376", NOT_CANONICAL, id="octal"),
        pytest.param("169.254.169.254.", NOT_CANONICAL, id="trailing-dot"),
        pytest.param("127.1:5000", NOT_CANONICAL, id="short-loopback"),
        pytest.param("169.254.169.254#", GRAMMAR, id="fragment"),
        pytest.param("[fe80::1%eth0]", GRAMMAR, id="zone"),
        pytest.param("fe80::1", GRAMMAR, id="unbracketed-v6"),
        pytest.param("reg.example.com:https", GRAMMAR, id="named-port"),
        pytest.param(
            "\uff11\uff16\uff19.\uff12\uff15\uff14.\uff11\uff16\uff19.\uff12\uff15\uff14",
            GRAMMAR,
            id="full-width",
        ),
        pytest.param("", GRAMMAR, id="empty"),
        pytest.param("127.0.0.1:5000", None, id="loopback"),
        pytest.param("[::1]:5000", None, id="loopback-v6"),
        pytest.param("10.0.0.5", None, id="private"),
        pytest.param("[fd00::1]", None, id="unique-local-v6"),
        pytest.param("registry.example.com:5000", None, id="dns"),
        pytest.param("dead.beef", None, id="hex-letters-name"),
        pytest.param("169.254.169.254.nip.io", None, id="name-resolved-later"),
    ],
)
def test_each_host_is_judged_by_its_rule(authority: str, rule: str | None) -> None:
    assert refusal(authority) == rule


@pytest.mark.parametrize(
    ("image", "authority"),
    [
        pytest.param("127.0.0.1:5101/sources/os:1.0.0", "127.0.0.1:5101", id="port"),
        pytest.param("[fd00:ec2::254]:5000/x@sha256:" + "0" * 64, "[fd00:ec2::254]:5000", id="v6"),
        pytest.param(" 10.0.0.5/x", " 10.0.0.5", id="space-kept-so-refused"),
        pytest.param("busybox", None, id="no-slash"),
    ],
)
def test_the_host_of_an_image_is_before_the_first_slash(image: str, authority: str) -> None:
    assert image_authority(image) == authority


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        pytest.param("https://reg.example.com", "reg.example.com", id="plain"),
        pytest.param("http://[::1]:5000/v2/", "[::1]:5000", id="v6"),
        pytest.param("http://a@b@169.254.169.254:80/", "169.254.169.254:80", id="last-at"),
        pytest.param("http://reg.example.com?x=@169.254.169.254", "reg.example.com", id="query"),
        pytest.param("http://reg.example.com#@169.254.169.254", "reg.example.com", id="fragment"),
        pytest.param("ftp://169.254.169.254", "", id="not-http"),
    ],
)
def test_the_host_of_a_url_is_after_the_user_information(url: str, authority: str) -> None:
    assert url_authority(url) == authority


@given(st.integers(min_value=0, max_value=2**16 - 1))
def test_every_link_local_address_is_refused_however_written(offset: int) -> None:
    v4 = ipaddress.IPv4Address("169.254.0.0") + offset
    v6 = ipaddress.IPv6Address("fe80::") + offset * 2**100
    assert refusal(str(v4)) == LINK_LOCAL
    assert refusal(f"[{v6}]") == refusal(f"[{v6.exploded}]:443") == LINK_LOCAL
    assert refusal(f"[::ffff:{v4}]") == NOT_PLAIN_IPV6
    assert refusal(str(int(v4))) == refusal(hex(int(v4))) == NOT_CANONICAL


@given(st.integers(min_value=0, max_value=2**24 - 1))
def test_private_and_loopback_addresses_are_left_to_the_address_policy(offset: int) -> None:
    for network in ("10.0.0.0", "127.0.0.0"):
        address = ipaddress.IPv4Address(network) + offset
        assert refusal(f"{address}:5000") is None
        # ...but only written canonically: "10.1" or "167772161" is refused.
        assert refusal(str(int(address))) == NOT_CANONICAL


def test_the_models_refuse_with_the_message_that_names_the_field() -> None:
    with pytest.raises(ValidationError, match=r"source\.image's registry host must not be"):
        ImageSource(image="169.254.169.254/latest/meta-data:1")
    with pytest.raises(ValidationError, match=r"url's host must not be a number"):
        RegistryEndpoint(name="a", url="http://2852039166")
    assert ImageSource(image="127.0.0.1:5000/x:1").image == "127.0.0.1:5000/x:1"
    assert RegistryEndpoint(name="a", url="http://[::1]:5000").url == "http://[::1]:5000"


def test_there_is_one_cel_rule_per_message_in_the_order_of_the_rules() -> None:
    for authority, applies, subject in (
        (
            registry_hosts.IMAGE_AUTHORITY,
            registry_hosts.IMAGE_APPLIES,
            registry_hosts.IMAGE_SUBJECT,
        ),
        (registry_hosts.URL_AUTHORITY, registry_hosts.URL_APPLIES, registry_hosts.URL_SUBJECT),
    ):
        rules = registry_hosts.cel_rules(authority, applies, subject)
        words = registry_hosts.messages(subject)
        assert [rule["message"] for rule in rules] == [words[name] for name in RULES]
        assert all(rule["rule"].startswith(f"!{applies} || ") for rule in rules)
        assert all(subject in rule["message"] for rule in rules)
