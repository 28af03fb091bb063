"""Registry hosts refused at admission: literal addresses galleon never connects to.

A tenant names a source registry in `ImageVersion.spec.source.image`
(`host[:port]/repository...`) and a cluster administrator names regional
registries in `Region.spec.registries[].url` (`http(s)://host[:port]/...`). The host
part of either (the *authority*, `host[:port]`) is refused when it is:

- not a plain host: a DNS name (ASCII letters, digits, `-`, `_`, `.`), an IPv4
  address, or an IPv6 address in brackets, then an optional `:port`. Anything else
  (a `#`, `?`, `%`, space or non-ASCII character, a zone) could make the client
  connect somewhere the rules below never saw;
- a number that is not a canonical IPv4 address (`2852039166`, `0xa9fea9fe`,
  `169.254.43518`, `0251.0376.0251.0376`, `169.254.169.254.`): some resolvers
  read such names as addresses;
- between brackets, anything but a plain IPv6 address (an IPv4-mapped one,
  `::ffff:169.254.169.254`, must be written as the IPv4 address);
- link-local (169.254.0.0/16, fe80::/10: the clouds' metadata services) or AWS's
  IPv6 metadata address fd00:ec2::254;
- unspecified (0.0.0.0/8, ::): connecting there reaches the connecting machine.

Loopback and private addresses are allowed here (tests and local setups use
127.0.0.1 registries); the operator's address policy decides about them, and about
what DNS names resolve to, when it connects.

Rules of this module:
- Each rule is written twice, as a CEL rule (`cel_rules`, run by the API server) and
  in Python (`refusal`, run when the models parse an object), with the same message;
  tests/integration/test_address_admission.py checks that both judge alike.
- CEL prices a string it cannot bound (such as `url(...).getHostname()`) at the
  request size, far over budget, so the authority is cut out of the bounded field
  with `find` (whose result is no longer than its input); CRD rules have no
  `cel.bind`, so `[value].all(name, ...)` names it once.
- An IP address is what the API server's `isIP()` accepts: no zone, no IPv4-mapped
  IPv6 address, no leading zeros (`is_ip_literal`).
"""

from __future__ import annotations

import ipaddress
import re

from galleon.api.common import cel

AUTHORITY_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(:[0-9]*)?$"
"""A plain host, then an optional port (RE2 and Python's `re.fullmatch` alike)."""
NUMERIC_PATTERN = r"^(0[xX][0-9A-Fa-f]*|[0-9]+)(\.(0[xX][0-9A-Fa-f]*|[0-9]+))*\.?$"
"""Dot-separated decimal, octal or 0x-hex numbers: what inet_aton and URL parsers may
read as an IPv4 address (1 to 4 parts, a trailing dot)."""
AWS_METADATA_IPV6 = "fd00:ec2::254"

IMAGE_SUBJECT = "source.image's registry host"
URL_SUBJECT = "url's host"

GRAMMAR = "grammar"
NOT_CANONICAL = "not-canonical"
NOT_PLAIN_IPV6 = "not-plain-ipv6"
LINK_LOCAL = "link-local"
UNSPECIFIED = "unspecified"
RULES = (GRAMMAR, NOT_CANONICAL, NOT_PLAIN_IPV6, LINK_LOCAL, UNSPECIFIED)
"""The rules, in the order CEL lists them and `refusal` tries them."""


def messages(subject: str) -> dict[str, str]:
    """The message of each rule, about `subject` (which names the field).

    >>> messages(IMAGE_SUBJECT)[LINK_LOCAL][:61]
    "source.image's registry host must not be a link-local address"
    """
    return {
        GRAMMAR: (
            f"{subject} must be a DNS name (ASCII letters, digits, '-', '_' and '.'; an "
            "internationalized name in its xn-- form), an IPv4 address or an IPv6 address "
            "in brackets without a zone, then an optional ':port', e.g. "
            "'registry.example.com:5000' or '[2001:db8::1]:5000'"
        ),
        NOT_CANONICAL: (
            f"{subject} must not be a number that is not a canonical IPv4 address, such as "
            "'2852039166', '0xa9fea9fe', '169.254.43518' or '0251.0376.0251.0376' (some "
            "resolvers read it as an address): write an IPv4 address as four decimal "
            "numbers from 0 to 255 without leading zeros, e.g. '10.0.0.5'"
        ),
        NOT_PLAIN_IPV6: (
            f"{subject} must be an IPv6 address when in brackets, and not an IPv4-mapped "
            "one ('::ffff:a.b.c.d'): write an IPv4 address without brackets, e.g. '10.0.0.5'"
        ),
        LINK_LOCAL: (
            f"{subject} must not be a link-local address (169.254.0.0/16, fe80::/10) such "
            "as the cloud metadata service '169.254.169.254', nor AWS's metadata address "
            f"'{AWS_METADATA_IPV6}': galleon never connects there"
        ),
        UNSPECIFIED: (
            f"{subject} must not be an unspecified address (0.0.0.0/8, '::'), which "
            "reaches the connecting machine itself: galleon never connects there"
        ),
    }


# The authority of each field, in Python and as a CEL expression of `self`.

IMAGE_APPLIES = "self.contains('/')"
"""CEL: the image names a host (without a `/` it is no reference; the operator says so)."""
IMAGE_AUTHORITY = "self.find('^[^/]*')"
URL_APPLIES = "(self.matches('^https?://') && isURL(self))"
"""CEL: the URL is one the URL rule admits (else that rule alone says why)."""
URL_AUTHORITY = "self.find('^https?://[^/?#]*').find('[^/@]*$')"
"""CEL: after `scheme://` and any `userinfo@`, up to the path, query or fragment."""


def image_authority(image: str) -> str | None:
    """`host[:port]` of an image reference (everything before the first `/`), or None
    when there is no `/` (then it is not a reference at all).

    >>> image_authority("[fd00:ec2::254]:5000/x:1"), image_authority("busybox")
    ('[fd00:ec2::254]:5000', None)
    """
    authority, slash, _ = image.partition("/")
    return authority if slash else None


def url_authority(url: str) -> str:
    """`host[:port]` of an http(s) URL, without user information ("" if no http(s)).

    >>> url_authority("https://user@169.254.169.254:443/v2/"), url_authority("ftp://x")
    ('169.254.169.254:443', '')
    """
    head = re.match(r"https?://[^/?#]*", url)
    tail = re.search(r"[^/@]*\Z", head.group() if head else "")
    return tail.group() if tail else ""


def is_ip_literal(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`text` as an address, when the API server's `isIP(text)` is true.

    >>> [str(is_ip_literal(t)) for t in ("10.0.0.5", "::1", "010.0.0.5", "::ffff:10.0.0.5")]
    ['10.0.0.5', '::1', 'None', 'None']
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and (
        address.scope_id is not None or address.ipv4_mapped is not None
    ):
        return None
    return address


LITERAL_PATTERN = r"^(\[[^\]]*\]|[^:]*)"
"""The host of an authority: up to the closing bracket, else up to the port."""
UNBRACKETED_PATTERN = r"[^\[\]]+"


def literal_of(authority: str) -> str:
    """The host of `authority` without brackets or port: what may be an address.

    >>> literal_of("[fd00:ec2::254]:5000"), literal_of("169.254.169.254:80"), literal_of("[]")
    ('fd00:ec2::254', '169.254.169.254', '')
    """
    host = re.match(LITERAL_PATTERN, authority)
    inner = re.search(UNBRACKETED_PATTERN, host.group() if host else "")
    return inner.group() if inner else ""


def refusal(authority: str) -> str | None:
    """The first rule (of `RULES`) that refuses the registry host `authority`, or None.

    >>> [refusal(a) for a in ("127.0.0.1:5000", "registry.example.com", "[::1]:5000")]
    [None, None, None]
    >>> [refusal(a) for a in ("169.254.169.254", "[fd00:ec2::254]:5000", "0.0.0.0:80")]
    ['link-local', 'link-local', 'unspecified']
    >>> [refusal(a) for a in ("2852039166", "0xa9fea9fe", "[::ffff:169.254.169.254]")]
    ['not-canonical', 'not-canonical', 'not-plain-ipv6']
    >>> refusal("169.254.169.254#")
    'grammar'
    """
    if not re.fullmatch(AUTHORITY_PATTERN, authority):
        return GRAMMAR
    literal = literal_of(authority)
    address = is_ip_literal(literal)
    if re.fullmatch(NUMERIC_PATTERN, literal) and address is None:
        return NOT_CANONICAL
    if authority.startswith("[") and not isinstance(address, ipaddress.IPv6Address):
        return NOT_PLAIN_IPV6
    if address is None:
        return None
    if address.is_link_local or address == ipaddress.IPv6Address(AWS_METADATA_IPV6):
        return LINK_LOCAL
    if address.is_unspecified or (
        isinstance(address, ipaddress.IPv4Address) and address in ipaddress.IPv4Network("0.0.0.0/8")
    ):
        return UNSPECIFIED
    return None


def check(authority: str | None, subject: str) -> None:
    """Raise ValueError with the message of the rule that refuses `authority`.

    >>> check("10.0.0.5:5000", URL_SUBJECT)
    >>> check("0xa9fea9fe", URL_SUBJECT)
    Traceback (most recent call last):
    ...
    ValueError: url's host must not be a number ...; got '0xa9fea9fe'
    """
    rule = None if authority is None else refusal(authority)
    if rule is not None:
        raise ValueError(f"{messages(subject)[rule]}; got {authority!r}")


def cel_rules(authority: str, applies: str, subject: str) -> tuple[dict[str, str], ...]:
    """The CEL rules of a string field (`self`) whose `host[:port]` is the CEL
    expression `authority`, checked when the CEL condition `applies` holds; they mirror
    `refusal`, one rule per message. `[x].all(name, ...)` names a value once (CRD
    rules have no `cel.bind`).

    >>> rules = cel_rules(IMAGE_AUTHORITY, IMAGE_APPLIES, IMAGE_SUBJECT)
    >>> print(rules[3]["rule"].split(".all(host, ")[1])
    !isIP(host) || !(ip(host).isLinkLocalUnicast() || ip(host) == ip('fd00:ec2::254'))))
    """
    host = f"authority.find(r'{LITERAL_PATTERN}').find(r'{UNBRACKETED_PATTERN}')"
    conditions = {
        GRAMMAR: f"authority.matches(r'{AUTHORITY_PATTERN}')",
        NOT_CANONICAL: f"!host.matches(r'{NUMERIC_PATTERN}') || isIP(host)",
        NOT_PLAIN_IPV6: "!authority.startsWith('[') || (isIP(host) && ip(host).family() == 6)",
        LINK_LOCAL: (
            "!isIP(host) || !(ip(host).isLinkLocalUnicast() "
            f"|| ip(host) == ip('{AWS_METADATA_IPV6}'))"
        ),
        UNSPECIFIED: (
            "!isIP(host) || !(ip(host).isUnspecified() "
            "|| (ip(host).family() == 4 && cidr('0.0.0.0/8').containsIP(ip(host))))"
        ),
    }
    words = messages(subject)
    rules = []
    for rule in RULES:
        condition = conditions[rule]
        if "host" in condition:
            condition = f"[{host}].all(host, {condition})"
        rules.append(cel(f"!{applies} || [{authority}].all(authority, {condition})", words[rule]))
    return tuple(rules)
