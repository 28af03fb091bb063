"""Image references: `host[:port]/path/repo[:tag][@sha256:...]`.

galleon's sources always name their registry host (there is no implicit
Docker Hub), so the first path element is the host.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
_HOST = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]{1,253})(:[0-9]{1,5})?")


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
"""The distribution grammar of a repository path (`__` and runs of `-` included)."""


class InvalidReference(ValueError):
    pass


@dataclass(frozen=True)
class Reference:
    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"


def parse(text: str) -> Reference:
    """Parse an image reference.

    >>> parse("127.0.0.1:5101/sources/ubuntu:1.0.0")
    Reference(host='127.0.0.1:5101', repository='sources/ubuntu', tag='1.0.0', digest=None)
    >>> parse("reg.example.com/a/b@sha256:" + "0" * 64).reference[:10]
    'sha256:000'
    >>> parse("reg.example.com/a/b:.hidden")
    Traceback (most recent call last):
    ...
    galleon.oci.reference.InvalidReference: 'reg.example.com/a/b:.hidden': invalid tag ...
    """
    rest, _, digest = text.strip().partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidReference(f"{text!r}: digest must be sha256:<64 hex>")
    host, slash, path = rest.partition("/")
    if not slash or not path or not ("." in host or ":" in host or host == "localhost"):
        raise InvalidReference(f"{text!r}: must start with a registry host, e.g. reg:5000/repo:tag")
    if not _HOST.fullmatch(host):
        raise InvalidReference(f"{text!r}: invalid registry host {host!r}")
    tag = None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, _, tag = path.rpartition(":")
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"{text!r}: invalid tag {tag!r} (the OCI tag grammar)")
    if not _REPOSITORY.fullmatch(path):
        raise InvalidReference(f"{text!r}: invalid repository {path!r}")
    return Reference(host, path, tag or None, digest or None)
