"""Which copies of an image something still pulls: reference counting of replicas.

A copy is one manifest in one registry: (registry host, repository, digest). Two
versions published from the same source image share a digest, so they share their
copies in every registry both replicate to; and a registry may serve two Regions.
A copy must not be deleted while anything still references it.

Rules of this module (pure; the controllers read the pods, versions and Regions):
- A copy is referenced by a pod's image reference (`host/repository@digest`, any
  container of an instance of a ScaleSet that follows the image), or by another
  version's Completed replica at the same host (same repository and digest).
- Copies are compared by registry host, never by Region or registry name: two
  names for one registry are one copy.
- `holders` answers, for each location a plan wants to remove, who still holds it
  (empty: it may go); `removal` splits a plan's unwanted locations into those to
  delete, to keep (held) and to forget only (their copy is the one a wanted
  location of the same version uses, under another registry name).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from galleon.core.replication import Location

DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
MAX_HOLDERS_SAID = 5


@dataclass(frozen=True, order=True)
class Copy:
    """One manifest in one registry."""

    host: str
    repository: str
    digest: str


def parse_image(image: str) -> Copy | None:
    """The copy an image reference by digest pulls (None: not by digest, or unreadable).

    >>> parse_image("127.0.0.1:5101/galleon/ns/g/os@sha256:ab12")
    Copy(host='127.0.0.1:5101', repository='galleon/ns/g/os', digest='sha256:ab12')
    >>> parse_image("busybox:1.36") is None, parse_image("os@sha256:ab") is None
    (True, True)
    """
    name, at, digest = image.partition("@")
    host, slash, repository = name.partition("/")
    if not at or not slash or not repository or not DIGEST.match(digest):
        return None
    return Copy(host, repository.split(":", 1)[0], digest)


def pod_copies(pods: Iterable[Mapping[str, Any]]) -> dict[Copy, list[str]]:
    """Copy → the pods (`namespace/name`) whose containers pull it."""
    found: dict[Copy, list[str]] = {}
    for pod in pods:
        meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        who = f"{meta.get('namespace')}/{meta.get('name')}"
        for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            copy = parse_image(str((container or {}).get("image") or ""))
            if copy is not None and who not in found.get(copy, []):
                found.setdefault(copy, []).append(who)
    return found


def version_copies(
    versions: Iterable[Mapping[str, Any]], hosts: Mapping[Location, str]
) -> dict[Copy, list[str]]:
    """Copy → the versions (`ImageVersion/name`) with a Completed replica there, by
    their status; `hosts` maps a Region's registry to its host."""
    found: dict[Copy, list[str]] = {}
    for version in versions:
        status = version.get("status") or {}
        repository, digest = status.get("repository"), status.get("sourceDigest")
        if not repository or not digest:
            continue
        who = f"ImageVersion/{(version.get('metadata') or {}).get('name')}"
        for line in (status.get("replicationStatus") or {}).get("summary") or []:
            for replica in line.get("replicas") or []:
                host = hosts.get(Location(str(line.get("region")), str(replica.get("registry"))))
                if host is None or replica.get("state") != "Completed":
                    continue
                copy = Copy(host, repository, replica.get("digest") or digest)
                if who not in found.get(copy, []):
                    found.setdefault(copy, []).append(who)
    return found


def holders(
    locations: Sequence[Location],
    hosts: Mapping[Location, str],
    repository: str,
    digest: str,
    referenced: Mapping[Copy, Sequence[str]],
) -> dict[Location, str]:
    """Location → who still holds its copy, for the `locations` that must stay.

    >>> east = Location("east", "a")
    >>> refs = {Copy("r:5000", "g/os", "sha256:1"): ["ns/web-0"]}
    >>> holders([east], {east: "r:5000"}, "g/os", "sha256:1", refs)
    {Location(region='east', registry='a'): 'ns/web-0'}
    >>> holders([east], {east: "r:5000"}, "g/os", "sha256:2", refs)
    {}
    """
    held = {}
    for location in locations:
        host = hosts.get(location)
        who = referenced.get(Copy(host, repository, digest), ()) if host is not None else ()
        if who:
            said = ", ".join(who[:MAX_HOLDERS_SAID])
            more = len(who) - MAX_HOLDERS_SAID
            held[location] = said + (f" and {more} more" if more > 0 else "")
    return held


@dataclass(frozen=True)
class Removal:
    """What to do with the locations a replication plan no longer wants."""

    delete: tuple[Location, ...] = ()
    """Delete the copy there: nothing holds it."""
    forget: tuple[Location, ...] = ()
    """Forget the location only: its copy is the one a wanted location of the same
    version uses (two names for one registry); deleting it would delete that one."""
    held: Mapping[Location, str] | None = None
    """Keep (retained): who still pulls or shares the copy there."""


def removal(
    unwanted: Sequence[Location],
    wanted: Sequence[Location],
    hosts: Mapping[Location, str],
    repository: str,
    digest: str,
    *referenced: Mapping[Copy, Sequence[str]],
) -> Removal:
    """Split `unwanted` locations into those to delete, forget and keep, given the
    version's `wanted` locations and what else references copies (pods, other
    versions).

    >>> a, b, c = Location("east", "a"), Location("east", "b"), Location("east", "c")
    >>> hosts = {a: "h1", b: "h2", c: "h1"}
    >>> pulled = {Copy("h2", "g/os", "sha256:1"): ["ns/web-1"]}
    >>> r = removal([b, c], [a], hosts, "g/os", "sha256:1", pulled)
    >>> r.delete, [loc.registry for loc in r.forget], {loc.registry: w for loc, w in r.held.items()}
    ((), ['c'], {'b': 'ns/web-1'})
    """
    in_use = {hosts[loc] for loc in wanted if loc in hosts}
    forget = tuple(loc for loc in unwanted if hosts.get(loc) in in_use)
    rest = [loc for loc in unwanted if loc not in forget]
    held: dict[Location, str] = {}
    for one in referenced:
        for location, who in holders(rest, hosts, repository, digest, one).items():
            held[location] = f"{held[location]}; {who}" if location in held else who
    delete = tuple(loc for loc in rest if loc not in held)
    return Removal(delete, forget, held)
