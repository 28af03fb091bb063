"""Which network addresses galleon may connect to: the operator's address policy.

Tenants choose their sources' hosts, registries choose their redirects and token
realms: without a policy, an ImageVersion could make the operator fetch from the
cloud's metadata service, the node's loopback services or the cluster's internal
network. The policy is a table of denied and allowed networks, checked for the
address actually connected to: after DNS resolution (the resolver of every session,
`PolicyResolver`) and, for literal addresses that aiohttp never resolves, for every
request and every redirect hop (`middleware`). Token realms and redirects go through
the same session, so the same checks.

Rules of this module:
- The most specific network that contains the address decides (longest prefix, as
  in a routing table); on a tie, an explicit deny wins over an explicit allow, which
  wins over a default denial (so `--allow-cidr=127.0.0.0/8` allows loopback). An
  address no network contains is allowed (registries live on private networks).
- `DEFAULT_DENIED` is always in the table: loopback, link-local (the metadata
  services), unspecified, multicast and broadcast, and the known metadata addresses.
  A setup that needs one of them allows it explicitly and narrowly (the tests allow
  127.0.0.0/8 and deny 127.0.0.2/32 inside it).
- An IPv6 address that carries an IPv4 address it reaches (IPv4-mapped
  `::ffff:169.254.169.254`, 6to4, NAT64's `64:ff9b::/96`, IPv4-compatible) is judged
  as that IPv4 address.
- A name that resolves to any denied address is refused whole (not filtered to the
  allowed answers): a mixed answer is a misconfiguration or an attack, and saying so
  is clearer than connecting somewhere else.
- A refusal is `AddressDenied`: permanent (a human changes the source or the
  policy), naming the host and the address, never connecting.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from galleon.oci import errors

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_DENIED = (
    "0.0.0.0/8",  # "this network": 0.0.0.0 reaches the local host
    "127.0.0.0/8",  # loopback
    "169.254.0.0/16",  # link-local: the metadata services of every cloud
    "100.100.100.200/32",  # Alibaba Cloud's metadata service
    "224.0.0.0/4",  # multicast
    "255.255.255.255/32",  # broadcast
    "::/128",  # unspecified
    "::1/128",  # loopback
    "fe80::/10",  # link-local
    "fd00:ec2::254/128",  # AWS's IPv6 metadata service
    "ff00::/8",  # multicast
)


class AddressDenied(errors.RegistryError):
    reason = "AddressDenied"


def network(text: str) -> Network:
    """A network given on the command line; ValueError with the text when it is none.

    >>> str(network("10.0.0.0/8")), str(network("127.0.0.2")), str(network("FD00::/8"))
    ('10.0.0.0/8', '127.0.0.2/32', 'fd00::/8')
    >>> network("10.0.0.1/8")
    Traceback (most recent call last):
    ...
    ValueError: '10.0.0.1/8' is not a network (CIDR with no host bits, e.g. 10.0.0.0/8)
    """
    try:
        return ipaddress.ip_network(text.strip())
    except ValueError:
        raise ValueError(
            f"{text!r} is not a network (CIDR with no host bits, e.g. 10.0.0.0/8)"
        ) from None


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")


def _plain(address: Address) -> Address:
    """The IPv4 address an IPv6 address carries and reaches (IPv4-mapped, 6to4, the
    NAT64 well-known prefix, the deprecated IPv4-compatible form), else itself.

    >>> [str(_plain(ipaddress.ip_address(a))) for a in ("::ffff:a9fe:a9fe", "2002:a9fe:a9fe::",
    ...  "64:ff9b::a9fe:a9fe", "::a9fe:a9fe", "::1", "fd00::1")]
    ['169.254.169.254', '169.254.169.254', '169.254.169.254', '169.254.169.254', '::1', 'fd00::1']
    """
    if not isinstance(address, ipaddress.IPv6Address):
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _COMPATIBLE and int(address) > 1):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


@dataclass(frozen=True)
class AddressPolicy:
    """Denied and allowed networks, over `DEFAULT_DENIED`.

    >>> policy = AddressPolicy.of(allow=["127.0.0.0/8"], deny=["127.0.0.2/32"])
    >>> policy.denial("127.0.0.1"), str(policy.denial("127.0.0.2"))
    (None, '127.0.0.2/32')
    >>> default = AddressPolicy.of()
    >>> str(default.denial("::ffff:169.254.169.254")), default.denial("10.1.2.3")
    ('169.254.0.0/16', None)
    """

    denied: tuple[Network, ...] = ()
    """Denied explicitly (`--deny-cidr`), beside `DEFAULT_DENIED`."""
    allowed: tuple[Network, ...] = ()
    _table: tuple[tuple[Network, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Longest prefix first; at one length: explicit deny, explicit allow, default.
        ranked = [(n, 0, False) for n in self.denied] + [(n, 1, True) for n in self.allowed]
        ranked += [(network(n), 2, False) for n in DEFAULT_DENIED]
        ranked.sort(key=lambda entry: (-entry[0].prefixlen, entry[1]))
        object.__setattr__(self, "_table", tuple((n, allowed) for n, _, allowed in ranked))

    @classmethod
    def of(cls, *, deny: Iterable[str] = (), allow: Iterable[str] = ()) -> AddressPolicy:
        """The default denials plus `deny`, and `allow` (CIDR texts; ValueError if not)."""
        denied = tuple(dict.fromkeys(network(n) for n in deny))
        return cls(denied, tuple(dict.fromkeys(network(n) for n in allow)))

    def denial(self, address: str | Address) -> Network | None:
        """The network that denies `address`, or None when it may be connected to. A
        text that is no address is denied by the unspecified network."""
        try:
            ip = _plain(ipaddress.ip_address(address))
        except ValueError:
            return ipaddress.ip_network("::/128")
        for net, allowed in self._table:
            if ip.version == net.version and ip in net:
                return None if allowed else net
        return None

    def check(self, host: str, address: str) -> None:
        """Raise AddressDenied when `address` (what `host` stands for) is denied."""
        denied_by = self.denial(address)
        if denied_by is not None:
            shown = host if host == address else f"{host} ({address})"
            raise AddressDenied(
                f"{shown}: address {address} is in {denied_by}, which the operator's "
                "address policy denies (--deny-cidr/--allow-cidr); nothing was sent there"
            )

    def resolver(self) -> PolicyResolver:
        return PolicyResolver(self)

    async def middleware(
        self, request: ClientRequest, handler: ClientHandlerType
    ) -> ClientResponse:
        """An aiohttp client middleware (it sees every hop of a redirect): a literal
        address in the URL is checked here, since aiohttp never resolves it."""
        host = request.url.raw_host or ""
        literal = host.strip("[]")
        if _is_address(literal):
            self.check(host, literal)
        return await handler(request)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


class PolicyResolver(AbstractResolver):
    """Resolve with aiohttp's default resolver, then refuse a name with any answer
    the policy denies (the connector connects only to what this returns)."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            self.policy.check(host, answer["host"])
        return answers

    async def close(self) -> None:
        await self._inner.close()


def session_options(policy: AddressPolicy | None) -> dict[str, Any]:
    """The `aiohttp.TCPConnector` resolver and `ClientSession` middlewares of
    `policy` (none when there is no policy)."""
    if policy is None:
        return {"resolver": None, "middlewares": ()}
    return {"resolver": policy.resolver(), "middlewares": (policy.middleware,)}
