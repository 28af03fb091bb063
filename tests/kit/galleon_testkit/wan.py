"""Regions across a wide-area network, on one machine: each region is a network
namespace of its own, joined to a hub by a link shaped to a bandwidth (the kernel's
`tbf` qdisc, both directions), with everything inside a region on its loopback-fast
local network.

    with Wan(tmp_path / "wan") as wan:
        east = wan.region("east", mbit=200)          # a namespace behind a 200 Mbit/s link
        replica = Registry(tmp_path / "e1", address=east.address, netns=east.netns).start()
        source = Registry(tmp_path / "src", address=wan.hub_address, netns=wan.hub).start()
        # the host (the operator, the peer tools) reaches both through the hub:
        # bytes to `replica` cross east's link, bytes from `source` do not.

Topology: a hub namespace holds a bridge (`hub_address`, where the source lives);
the host joins it by a veth (`host_address`, unshaped: the operator sits with the
source); each region's namespace joins it by a veth shaped at `mbit` on both ends
(egress from the region: its uploads; egress into it: its downloads). One /16 of
10.201-10.250 that no interface of this machine uses; the hub and the host take
.0.254 and .0.1, region i the addresses 10.x.i.2 and up.

Rules of this module: every namespace and link it creates has a name unique to this
process (`gw<pid>` prefix), `stop()` deletes them all and waits until the kernel
has (namespace deletion is asynchronous), `leftovers()` says what is still there.
Needs root and `ip`/`tc` (iproute2); `WanUnavailable` otherwise, which fixtures and
benchmarks turn into a skip locally and a failure under CI=true.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

SECOND_OCTETS = range(201, 251)
BURST = "256kb"
"""tbf's bucket: large enough for a GSO segment (64 KiB) and a few ms at 200 Mbit/s."""
LATENCY = "50ms"
"""How long a packet may wait in tbf's queue before it is dropped."""
GONE_TIMEOUT = 20.0


class WanUnavailable(RuntimeError):
    """Not root, or no `ip`/`tc`: network namespaces cannot be made here."""


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done


def _free_prefix() -> str:
    used = set(re.findall(r"inet 10\.(\d+)\.", _run("ip", "-o", "-4", "addr", "show").stdout))
    for octet in SECOND_OCTETS:
        if str(octet) not in used:
            return f"10.{octet}"
    raise WanUnavailable("no free 10.x.0.0/16 left for the WAN's hub")


@dataclass
class WanRegion:
    """A region's network namespace behind its shaped link."""

    name: str
    netns: str
    mbit: float
    addresses: tuple[str, ...]
    """The region's own addresses (one per server that needs one), on its veth."""

    @property
    def address(self) -> str:
        return self.addresses[0]

    def argv(self, *command: str) -> list[str]:
        """`command` run inside the region's namespace."""
        return ["ip", "netns", "exec", self.netns, *command]


@dataclass
class Wan:
    """The hub, the host's link to it, and the regions made with `region()`."""

    workdir: Path
    prefix: str = ""
    hub: str = ""
    regions: dict[str, WanRegion] = field(default_factory=dict)
    _tag: str = ""
    _host_link: str = ""
    _namespaces: list[str] = field(default_factory=list)

    @property
    def hub_address(self) -> str:
        return f"{self.prefix}.0.254"

    @property
    def host_address(self) -> str:
        return f"{self.prefix}.0.1"

    def start(self) -> Wan:
        if os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("tc")):
            raise WanUnavailable("a WAN of network namespaces needs root and iproute2 (ip, tc)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._tag = f"gw{os.getpid() % 100000}"
        self.prefix = _free_prefix()
        self.hub = f"{self._tag}-hub"
        self._host_link = f"{self._tag}h"
        try:
            self._namespace(self.hub)
            _run("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
            _run("ip", "-n", self.hub, "addr", "add", f"{self.hub_address}/16", "dev", "br0")
            _run("ip", "-n", self.hub, "link", "set", "br0", "up")
            _run(
                "ip", "link", "add", self._host_link, "type", "veth",
                "peer", "name", "host", "netns", self.hub,
            )  # fmt: skip
            _run("ip", "addr", "add", f"{self.host_address}/16", "dev", self._host_link)
            _run("ip", "link", "set", self._host_link, "up")
            _run("ip", "-n", self.hub, "link", "set", "host", "master", "br0", "up")
        except Exception:
            self.stop()
            raise
        return self

    def region(self, name: str, mbit: float, addresses: int = 1) -> WanRegion:
        """A region behind a link of `mbit` Mbit/s each way, with `addresses` addresses."""
        index = len(self.regions) + 1
        netns = f"{self._tag}-r{index}"
        link = f"r{index}"  # the hub's end; the region's end is "wan" in its namespace
        own = tuple(f"{self.prefix}.{index}.{2 + i}" for i in range(addresses))
        self._namespace(netns)
        _run(
            "ip", "-n", self.hub, "link", "add", link, "type", "veth",
            "peer", "name", "wan", "netns", netns,
        )  # fmt: skip
        _run("ip", "-n", self.hub, "link", "set", link, "master", "br0", "up")
        for address in own:
            _run("ip", "-n", netns, "addr", "add", f"{address}/16", "dev", "wan")
        _run("ip", "-n", netns, "link", "set", "wan", "up")
        rate = f"{mbit}mbit"
        for namespace, device in ((self.hub, link), (netns, "wan")):
            _run(
                "tc", "-n", namespace, "qdisc", "add", "dev", device, "root",
                "tbf", "rate", rate, "burst", BURST, "latency", LATENCY,
            )  # fmt: skip
        region = WanRegion(name, netns, mbit, own)
        self.regions[name] = region
        return region

    def _namespace(self, name: str) -> None:
        _run("ip", "netns", "add", name)
        self._namespaces.append(name)
        _run("ip", "-n", name, "link", "set", "lo", "up")

    def leftovers(self) -> list[str]:
        """Namespaces and host links of this WAN the kernel still has."""
        if not self._tag:
            return []
        namespaces = _run("ip", "netns", "list", check=False).stdout.split()
        links = _run("ip", "-o", "link", "show", check=False).stdout
        found = [n for n in namespaces if n.startswith(self._tag + "-")]
        if re.search(rf"^\d+: {re.escape(self._host_link)}[@:]", links, re.M):
            found.append(f"link {self._host_link}")
        return found

    def stop(self) -> None:
        """Delete every namespace and link this WAN made; wait until they are gone."""
        for namespace in reversed(self._namespaces):
            _run("ip", "netns", "del", namespace, check=False)
        self._namespaces.clear()
        if self._host_link:
            _run("ip", "link", "del", self._host_link, check=False)
        deadline = time.monotonic() + GONE_TIMEOUT
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = self.leftovers()
        if left:
            raise RuntimeError(f"the WAN left {left} behind after {GONE_TIMEOUT:.0f}s")

    def __enter__(self) -> Wan:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
