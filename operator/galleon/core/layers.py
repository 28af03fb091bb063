"""Reproducible image layers and image-config edits: the pure half of the image builder.

An ImageTemplate turns a base image plus typed steps into a new image, the same
bytes every time. This module turns each step into what the image gets: one layer
(`File`, `Archive`) as bytes with its digests, or an edit of the image config
(`Environment`, `Labels`, `Entrypoint`, `Cmd`, `WorkingDir`, `User`). A `Layer`
step (another image's layers on top) is only described here; `galleon.oci.build`
reads and places those layers. No I/O: the caller resolves a File's content
(inline, ConfigMap, Secret, URL checked against its sha256) and an Archive's
bytes, and hands them in.

Rules of this module (pure, stdlib only):
- Same steps in, same bytes out, on every run and every machine with the same
  deflate (zlib):
  - a layer is a PAX-format tar whose entries are sorted by path, component by
    component; every mtime is 0; no user or group names, no extended attributes;
    numeric owners as the step says, else 0 for what galleon creates and the
    archive's own for what an archive holds;
  - every parent directory of what a step writes is an entry of its own, mode 0755
    owned by 0:0, except the few whose mode every base image agrees on
    (`STANDARD_DIRECTORIES`: /tmp and /var/tmp 1777, /root 0700) and those the
    step names (`Directory`). Why it matters: a layer's directory entry replaces
    the base's directory attributes, so a /tmp written 0755 would break the image;
  - gzip (the default) is galleon's own 10-byte header (no name, mtime 0, OS
    "unknown"), raw deflate at `GZIP_LEVEL` in blocks of `GZIP_BLOCK` input bytes
    (each primed with the 32 KiB before it, so they deflate in parallel; a block
    whose sample does not shrink is stored), CRC-32 and length: only the deflate
    implementation could change the bytes, and `gzip_is_reproducible()` checks it
    against a known answer covering each kind of block. `"none"` gives uncompressed
    tar layers: the same bytes with any zlib, pulled at full size.
- A layer's diff_id is the sha256 of its uncompressed tar; its digest that of the
  bytes pushed (the same for "none").
- Paths are strict: absolute POSIX paths, normalized (no empty, `.` or `..`
  component, no trailing slash), no NUL, UTF-8, at most 4096 bytes and 255 a
  component; no whiteout names (`.wh.*`: a step adds, it never deletes); nothing at
  or under `LINKED_DIRECTORIES` (/bin, /lib, /var/run...: symlinks in merged-/usr
  images, which a directory entry of a layer would replace).
- An archive is refused, never repaired: absolute names or `..`; a symlink whose
  target, resolved from where it is (an absolute one from the image root), steps
  out of the archive's destination at any point; a hard link to anything but an
  earlier regular file of the archive; an entry under a symlink of the archive;
  device nodes, FIFOs, sparse files; duplicate paths; a path that is a file and a
  directory at once; more than `Limits.entries` entries or `Limits.bytes` bytes of
  content; anything after the end of the tar that is not zero padding. The
  archive's `.` entry is dropped (its destination's attributes are the step's
  `Directory`, or the defaults above).
- Every refusal is a `BuildRefused` (a ValueError) naming the step and the path.
  Content is never in a repr or a message: a File's may come from a Secret.

Why about 900 lines: the steps, the tar rules, the archive checks and the config
edits describe one format and are read together (`galleon.oci.build` does the
I/O); should it grow, it splits along those lines (steps, layers, config).
"""

from __future__ import annotations

import copy
import hashlib
import io
import re
import struct
import tarfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

EPOCH = "1970-01-01T00:00:00Z"
"""The `created` time of every built image and history entry (SOURCE_DATE_EPOCH=0)."""
GZIP_LEVEL = 6
"""zlib's default level: what `gzip` and most image tools use; pinned so the bytes
never follow a library's default."""
GZIP_BLOCK = 1 << 20
"""Input bytes deflated on their own (pinned: it shapes the bytes, like the level)."""
DICTIONARY = 32 << 10
"""The history a block is primed with: deflate's whole window, so a block boundary
costs almost no ratio."""
SAMPLE = 16 << 10
STORE_RATIO = 0.97
"""A block whose first SAMPLE bytes do not get below this share at level 1 is stored."""
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
"""Magic, deflate, no flags (no name, no comment), mtime 0, no extra flags, OS unknown."""
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
Compression = Literal["gzip", "none"]
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255
MAX_ID = 2**32 - 2
"""Largest uid or gid (2**32 - 1 is `(uid_t) -1`, "no owner")."""
STANDARD_DIRECTORIES = {"tmp": 0o1777, "var/tmp": 0o1777, "root": 0o700}
"""Parent directories galleon writes with the mode every base image gives them."""
LINKED_DIRECTORIES = {
    "bin": "/usr/bin",
    "sbin": "/usr/sbin",
    "lib": "/usr/lib",
    "lib32": "/usr/lib32",
    "lib64": "/usr/lib64",
    "libx32": "/usr/libx32",
    "var/run": "/run",
    "var/lock": "/run/lock",
}
"""Symlinks in merged-/usr images (/bin -> usr/bin) and FHS 3 ones (/var/run -> /run):
a layer entry at or under them would replace the link with a directory."""
KNOWN_ANSWER_INPUT = b"".join(b"galleon layer %d\n" % i for i in range(70_000)) + b"".join(
    hashlib.sha256(b"%d" % i).digest() for i in range(40_000)
)
"""Two compressible blocks, a third primed across the boundary, and random bytes stored."""
KNOWN_ANSWER_DIGEST = "sha256:df1f97fa238e736245b8451e2e3d7c3f418c5c798bbec4b44835956d357c766e"
"""sha256 of `gzip_bytes(KNOWN_ANSWER_INPUT)` with zlib 1.2.x at `GZIP_LEVEL`."""
ENV_NAME = re.compile(r"[^=\x00]{1,1024}")
USER = re.compile(r"[A-Za-z0-9._-]{1,256}(:[A-Za-z0-9._-]{1,256})?")
REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*"
)
DIGEST = re.compile(r"sha256:[a-f0-9]{64}")
REGISTRY = re.compile(r"[A-Za-z0-9.:\[\]-]{0,255}")
_KINDS = {
    "file": tarfile.REGTYPE,
    "directory": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
}


class BuildRefused(ValueError):
    """A step, an archive or a base image galleon will not build from (permanent)."""


@dataclass(frozen=True)
class Limits:
    """How much one layer may hold (it is built in memory)."""

    entries: int = 100_000
    bytes: int = 512 * 1024 * 1024
    """Bytes of content, uncompressed (an archive's, after gunzip, too)."""


LIMITS = Limits()


def check_path(path: object, what: str) -> str:
    """`path` if it is a strict absolute image path (the module's rules), else BuildRefused.

    >>> check_path("/etc/motd", "File")
    '/etc/motd'
    >>> check_path("/etc/../shadow", "File")
    Traceback (most recent call last):
    ...
    galleon.core.layers.BuildRefused: File: path '/etc/../shadow' has a '..' component ...
    >>> check_path("/bin/tool", "File")
    Traceback (most recent call last):
    ...
    galleon.core.layers.BuildRefused: File: path '/bin/tool' is at or under /bin, a symlink ...
    """
    if not isinstance(path, str) or not path.startswith("/"):
        raise BuildRefused(f"{what}: path {_said(path)} is not an absolute path")
    if "\x00" in path:
        raise BuildRefused(f"{what}: path {_said(path)} holds a NUL byte")
    try:
        size = len(path.encode("utf-8"))
    except UnicodeEncodeError:
        raise BuildRefused(f"{what}: path {_said(path)} is not UTF-8") from None
    if size > MAX_PATH_BYTES:
        raise BuildRefused(f"{what}: path is {size} bytes, more than {MAX_PATH_BYTES}")
    if path == "/":
        return path
    for part in path[1:].split("/"):
        if part in ("", "."):
            raise BuildRefused(f"{what}: path {_said(path)} is not normalized (empty or '.')")
        if part == "..":
            raise BuildRefused(f"{what}: path {_said(path)} has a '..' component (not allowed)")
        if len(part.encode()) > MAX_NAME_BYTES:
            raise BuildRefused(f"{what}: path {_said(path)} has a name over 255 bytes")
        if part.startswith(".wh."):
            raise BuildRefused(
                f"{what}: path {_said(path)} has a whiteout name (.wh.*): steps only add files"
            )
    relative = path[1:]
    for linked, instead in LINKED_DIRECTORIES.items():
        if relative == linked or relative.startswith(linked + "/"):
            raise BuildRefused(
                f"{what}: path {_said(path)} is at or under /{linked}, a symlink in many "
                f"base images that a layer's directory would replace; use {instead} instead"
            )
    return path


def _check_id(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ID:
        raise BuildRefused(f"{what} {_said(value)} is not an integer from 0 to {MAX_ID}")
    return value


def _check_mode(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0o7777:
        raise BuildRefused(f"{what} {_said(value)} is not a mode from 0 to 0o7777")
    return value


def _check_text(value: object, what: str, limit: int = 65536) -> str:
    if not isinstance(value, str) or "\x00" in value or len(value) > limit:
        raise BuildRefused(f"{what} is not text without NUL of at most {limit} characters")
    return value


# -- the steps ---------------------------------------------------------------------


@dataclass(frozen=True)
class Directory:
    """Attributes of a parent directory a File or Archive step writes (instead of 0755 0:0)."""

    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0

    def __post_init__(self) -> None:
        check_path(self.path, "Directory")
        _check_mode(self.mode, f"Directory {self.path}: mode")
        _check_id(self.uid, f"Directory {self.path}: uid")
        _check_id(self.gid, f"Directory {self.path}: gid")


@dataclass(frozen=True)
class File:
    """One file, as one layer: `File("/etc/motd", b"hello\\n", mode=0o644)`."""

    path: str
    content: bytes = field(repr=False)
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    parents: tuple[Directory, ...] = ()
    """Attributes of some of its parent directories (each an ancestor of `path`)."""

    def __post_init__(self) -> None:
        check_path(self.path, "File")
        if self.path == "/":
            raise BuildRefused("File: path '/' is the image root, not a file")
        if not isinstance(self.content, bytes):
            raise BuildRefused(f"File {self.path}: content is not bytes")
        _check_mode(self.mode, f"File {self.path}: mode")
        _check_id(self.uid, f"File {self.path}: uid")
        _check_id(self.gid, f"File {self.path}: gid")
        _check_parents(self.parents, self.path, f"File {self.path}", itself=False)


@dataclass(frozen=True)
class Archive:
    """A tar's entries (plain or gzip) unpacked under `path`, as one layer."""

    path: str
    data: bytes = field(repr=False)
    uid: int | None = None
    """Owner of every entry (None: each entry's own from the archive)."""
    gid: int | None = None
    parents: tuple[Directory, ...] = ()
    """Attributes of `path` itself or of its ancestors."""

    def __post_init__(self) -> None:
        check_path(self.path, "Archive")
        if not isinstance(self.data, bytes):
            raise BuildRefused(f"Archive {self.path}: data is not bytes")
        for name in ("uid", "gid"):
            if getattr(self, name) is not None:
                _check_id(getattr(self, name), f"Archive {self.path}: {name}")
        _check_parents(self.parents, self.path, f"Archive {self.path}", itself=True)


@dataclass(frozen=True)
class Layer:
    """The layers of another image (by digest), put on top in their order."""

    repository: str
    digest: str
    registry: str = ""
    """The host it is read from; "" for the base image's registry."""

    def __post_init__(self) -> None:
        if not isinstance(self.repository, str) or not REPOSITORY.fullmatch(self.repository):
            raise BuildRefused(f"Layer: repository {_said(self.repository)} is not a repository")
        if not isinstance(self.digest, str) or not DIGEST.fullmatch(self.digest):
            raise BuildRefused(f"Layer: {_said(self.digest)} is not a sha256 digest")
        if not isinstance(self.registry, str) or not REGISTRY.fullmatch(self.registry):
            raise BuildRefused(f"Layer: registry {_said(self.registry)} is not a host")


@dataclass(frozen=True)
class Environment:
    """Set variables: each replaces one of the same name in place, new ones go last."""

    variables: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, variables: Mapping[str, str]) -> Environment:
        return cls(tuple(variables.items()))

    def __post_init__(self) -> None:
        for name, value in self.variables:
            if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
                raise BuildRefused(f"Environment: name {_said(name)} is empty or has '=' or NUL")
            _check_text(value, f"Environment: the value of {name}")


@dataclass(frozen=True)
class Labels:
    """Set labels (merged over the base's: a later value wins)."""

    labels: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, labels: Mapping[str, str]) -> Labels:
        return cls(tuple(labels.items()))

    def __post_init__(self) -> None:
        for key, value in self.labels:
            if _check_text(key, "Labels: a key", 1024) == "":
                raise BuildRefused("Labels: a key is empty")
            _check_text(value, f"Labels: the value of {key}")


@dataclass(frozen=True)
class Entrypoint:
    """Replace the entrypoint (empty: none). As in a Dockerfile, a Cmd inherited from
    the base is dropped with it; one set by a step of the same build is kept."""

    args: tuple[str, ...]

    def __post_init__(self) -> None:
        for arg in self.args:
            _check_text(arg, "Entrypoint: an argument")


@dataclass(frozen=True)
class Cmd:
    """Replace the default arguments (empty: none)."""

    args: tuple[str, ...]

    def __post_init__(self) -> None:
        for arg in self.args:
            _check_text(arg, "Cmd: an argument")


@dataclass(frozen=True)
class WorkingDir:
    path: str

    def __post_init__(self) -> None:
        if not isinstance(self.path, str) or not self.path.startswith("/"):
            raise BuildRefused(f"WorkingDir: {_said(self.path)} is not an absolute path")
        _check_text(self.path, "WorkingDir", MAX_PATH_BYTES)


@dataclass(frozen=True)
class User:
    """`user` or `user:group`, names or numbers: `User("1000:1000")`."""

    user: str

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not USER.fullmatch(self.user):
            raise BuildRefused(f"User: {_said(self.user)} is not user or user:group")


LayerStep = File | Archive | Layer
ConfigStep = Environment | Labels | Entrypoint | Cmd | WorkingDir | User
Step = LayerStep | ConfigStep


def _check_parents(parents: object, path: str, what: str, *, itself: bool) -> None:
    if not isinstance(parents, tuple) or not all(isinstance(p, Directory) for p in parents):
        raise BuildRefused(f"{what}: parents is not a tuple of Directory")
    seen = set()
    for parent in parents:
        inside = path.startswith(parent.path.rstrip("/") + "/") or (itself and parent.path == path)
        if not inside or parent.path == "/" or parent.path in seen:
            raise BuildRefused(
                f"{what}: parent {parent.path} is not one of its parent directories (once)"
            )
        seen.add(parent.path)


def describe(step: Step) -> str:
    """What a step did, in one line (an image history's `created_by`; never content).

    >>> describe(File("/etc/motd", b"x", mode=0o640, uid=1000))
    'galleon File /etc/motd mode 0640 owner 1000:0'
    >>> describe(Environment.of({"PATH": "/usr/bin", "LANG": "C"}))
    'galleon Environment PATH LANG'
    """
    match step:
        case File():
            return f"galleon File {step.path} mode {step.mode:04o} owner {step.uid}:{step.gid}"
        case Archive():
            owner = "" if step.uid is None and step.gid is None else f" owner {step.uid}:{step.gid}"
            return f"galleon Archive {step.path}{owner}"
        case Layer():
            where = f"{step.registry}/" if step.registry else ""
            return f"galleon Layer {where}{step.repository}@{step.digest}"
        case Environment():
            return "galleon Environment " + " ".join(name for name, _ in step.variables)
        case Labels():
            return "galleon Labels " + " ".join(key for key, _ in step.labels)
        case Entrypoint() | Cmd():
            return f"galleon {type(step).__name__} {list(step.args)}"
        case WorkingDir():
            return f"galleon WorkingDir {step.path}"
        case User():
            return f"galleon User {step.user}"
    raise BuildRefused(f"not a step: {type(step).__name__}")


# -- tar and gzip -------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One entry of a layer's tar; `path` is relative to the image root ("etc/motd")."""

    path: str
    kind: Literal["file", "directory", "symlink", "hardlink"]
    mode: int
    uid: int = 0
    gid: int = 0
    link: str = ""
    content: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class BuiltLayer:
    """A layer as it is pushed: its bytes and what describes them."""

    data: bytes = field(repr=False)
    media_type: str
    diff_id: str
    """sha256 of the uncompressed tar (the config's rootfs.diff_ids)."""
    digest: str
    """sha256 of `data` (the manifest's layer descriptor)."""
    size: int
    entries: int


def sort_key(path: str) -> tuple[bytes, ...]:
    """Entries are sorted component by component, so a directory's entries stay together.

    >>> sorted(["a-b", "a/b", "a"], key=sort_key)
    ['a', 'a/b', 'a-b']
    """
    return tuple(part.encode() for part in path.split("/"))


Mapper = Callable[[Callable[[int], bytes], Iterable[int]], Iterable[bytes]]
"""`map` or an executor's `map`: how the blocks of one gzip member are deflated (the
bytes are the same either way; an executor's threads deflate them in parallel, as
zlib lets go of the GIL)."""


def _deflate_block(data: bytes, index: int, level: int) -> bytes:
    """Block `index` of `data` (`GZIP_BLOCK` bytes) as raw deflate, primed with the
    32 KiB before it, ending byte-aligned (a sync flush), or final when it is the last.
    A block whose first `SAMPLE` bytes do not shrink at level 1 is stored (level 0):
    already-compressed or random content costs a copy, not a search for matches."""
    start = index * GZIP_BLOCK
    end = min(len(data), start + GZIP_BLOCK)
    view = memoryview(data)[start:end]
    sample = view[:SAMPLE]
    stored = len(sample) == SAMPLE and len(zlib.compress(sample, 1)) >= SAMPLE * STORE_RATIO
    if stored or start == 0:
        compressor = zlib.compressobj(
            0 if stored else level, zlib.DEFLATED, -zlib.MAX_WBITS, 8, zlib.Z_DEFAULT_STRATEGY
        )
    else:
        compressor = zlib.compressobj(
            level,
            zlib.DEFLATED,
            -zlib.MAX_WBITS,
            8,
            zlib.Z_DEFAULT_STRATEGY,
            zdict=data[max(0, start - DICTIONARY) : start],
        )
    flush = zlib.Z_FINISH if end >= len(data) else zlib.Z_SYNC_FLUSH
    return compressor.compress(view) + compressor.flush(flush)


def gzip_bytes(data: bytes, level: int = GZIP_LEVEL, mapper: Mapper = map) -> bytes:
    """`data` as one gzip member with a fixed header (no name, mtime 0, OS unknown):
    blocks of `GZIP_BLOCK` bytes deflated on their own (`_deflate_block`), one stream.
    The bytes depend only on `data`, `level` and zlib, never on `mapper`.

    >>> gzip_bytes(b"")[:10] == GZIP_HEADER, len(gzip_bytes(b""))
    (True, 20)
    >>> import concurrent.futures, gzip, os
    >>> data = os.urandom(GZIP_BLOCK) + b"text " * 300_000
    >>> with concurrent.futures.ThreadPoolExecutor(2) as pool:
    ...     parallel = gzip_bytes(data, mapper=pool.map)
    >>> parallel == gzip_bytes(data) and gzip.decompress(parallel) == data
    True
    """
    blocks = max(1, -(-len(data) // GZIP_BLOCK))
    body = b"".join(mapper(lambda index: _deflate_block(data, index, level), range(blocks)))
    trailer = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return GZIP_HEADER + body + trailer


def gzip_is_reproducible() -> bool:
    """Whether this machine's deflate gives the bytes galleon's gzip layers were
    checked against (a different zlib, such as zlib-ng, may not: then pushed
    digests differ from other machines' for the same template).

    >>> gzip_is_reproducible()
    True
    """
    return sha256(gzip_bytes(KNOWN_ANSWER_INPUT)) == KNOWN_ANSWER_DIGEST


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tar_bytes(entries: Iterable[Entry]) -> bytes:
    """The reproducible tar of `entries`, sorted here. The members of a hard-link group
    (a file and the links naming it) are written with the first of them in that order
    holding the content and the others linking to it, so a link never precedes its
    target.

    >>> data = tar_bytes([Entry("etc/motd", "file", 0o644, content=b"hi"),
    ...                   Entry("etc", "directory", 0o755)])
    >>> [(m.name, oct(m.mode), m.mtime, m.uname) for m in tarfile.open(fileobj=io.BytesIO(data))]
    [('etc', '0o755', 0, ''), ('etc/motd', '0o644', 0, '')]
    """
    ordered = sorted(entries, key=lambda entry: sort_key(entry.path))
    by_path = {entry.path: entry for entry in ordered}
    if len(by_path) != len(ordered):
        raise BuildRefused("two entries of a layer have the same path")
    linked = {entry.link for entry in ordered if entry.kind == "hardlink"}
    for name in linked:
        if name not in by_path or by_path[name].kind != "file":
            raise BuildRefused(f"a hard link names {_said(name)}, not a file of the layer")
    first: dict[str, str] = {}
    """A hard-link group's file → the first path of the group in order."""
    for entry in ordered:
        first.setdefault(entry.link if entry.kind == "hardlink" else entry.path, entry.path)
    buffer = io.BytesIO()
    with tarfile.TarFile(
        fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8"
    ) as archive:
        for entry in ordered:
            holder_path = entry.link if entry.kind == "hardlink" else entry.path
            if holder_path in linked:
                holder = by_path[holder_path]
                leads = entry.path == first[holder_path]
                entry = Entry(
                    entry.path,
                    "file" if leads else "hardlink",
                    holder.mode,
                    holder.uid,
                    holder.gid,
                    link="" if leads else first[holder_path],
                    content=holder.content if leads else b"",
                )
            info = tarfile.TarInfo(entry.path)
            info.type = _KINDS[entry.kind]
            info.mode, info.uid, info.gid, info.mtime = entry.mode, entry.uid, entry.gid, 0
            info.uname = info.gname = ""
            info.linkname = entry.link
            info.size = len(entry.content) if entry.kind == "file" else 0
            archive.addfile(info, io.BytesIO(entry.content) if entry.kind == "file" else None)
    return buffer.getvalue()


def _layer(
    entries: Sequence[Entry],
    compression: Compression,
    limits: Limits,
    what: str,
    mapper: Mapper = map,
) -> BuiltLayer:
    if len(entries) > limits.entries:
        raise BuildRefused(f"{what}: {len(entries)} entries, more than {limits.entries}")
    total = sum(len(entry.content) for entry in entries)
    if total > limits.bytes:
        raise BuildRefused(f"{what}: {total} bytes of content, more than {limits.bytes}")
    tar = tar_bytes(entries)
    diff_id = sha256(tar)
    if compression == "none":
        return BuiltLayer(tar, LAYER_TAR, diff_id, diff_id, len(tar), len(entries))
    if compression != "gzip":
        raise BuildRefused(f"{what}: compression {_said(compression)} is not gzip or none")
    data = gzip_bytes(tar, mapper=mapper)
    return BuiltLayer(data, LAYER_GZIP, diff_id, sha256(data), len(data), len(entries))


def _parent_entries(path: str, parents: Sequence[Directory], *, itself: bool) -> list[Entry]:
    """Directory entries of every ancestor of `path` (and of `path` when `itself`)."""
    named = {parent.path[1:]: parent for parent in parents}
    parts = path[1:].split("/") if path != "/" else []
    depth = len(parts) if itself else len(parts) - 1
    entries = []
    for index in range(1, depth + 1):
        relative = "/".join(parts[:index])
        if relative in named:
            own = named[relative]
            entries.append(Entry(relative, "directory", own.mode, own.uid, own.gid))
        else:
            entries.append(Entry(relative, "directory", STANDARD_DIRECTORIES.get(relative, 0o755)))
    return entries


def file_layer(
    step: File,
    *,
    compression: Compression = "gzip",
    limits: Limits = LIMITS,
    mapper: Mapper = map,
) -> BuiltLayer:
    """The layer of one File step: its parent directories, then the file.

    >>> layer = file_layer(File("/etc/motd", b"hello\\n"), compression="none")
    >>> [m.name for m in tarfile.open(fileobj=io.BytesIO(layer.data))], layer.entries
    (['etc', 'etc/motd'], 2)
    >>> layer.digest == layer.diff_id == sha256(layer.data)
    True
    """
    entries = _parent_entries(step.path, step.parents, itself=False)
    entries.append(
        Entry(step.path[1:], "file", step.mode, step.uid, step.gid, content=step.content)
    )
    return _layer(entries, compression, limits, f"File {step.path}", mapper)


# -- archives -------------------------------------------------------------------------


def _gunzipped(data: bytes, limit: int, what: str) -> bytes:
    """`data` itself, or its gzip member decompressed to at most `limit` bytes."""
    if not data.startswith(b"\x1f\x8b"):
        return data
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        raw = decompressor.decompress(data, limit + 1)
    except zlib.error as error:
        raise BuildRefused(f"{what}: the archive is not valid gzip ({error})") from None
    if len(raw) > limit or decompressor.unconsumed_tail:
        raise BuildRefused(f"{what}: the archive is more than {limit} bytes once gunzipped")
    if not decompressor.eof:
        raise BuildRefused(f"{what}: the gzip archive is truncated")
    if decompressor.unused_data:
        raise BuildRefused(f"{what}: bytes follow the gzip stream (one gzip member only)")
    return raw


def _member_path(name: str, destination: str, what: str) -> str | None:
    """The image path of an archive member's name (None for the archive's `.` entry)."""
    if name.startswith("/"):
        raise BuildRefused(f"{what}: entry {_said(name)} is an absolute path")
    parts = name.split("/")
    while parts and parts[0] == ".":
        parts.pop(0)
    if parts and parts[-1] == "":
        parts.pop()  # a directory's trailing slash
    if not parts:
        return None
    if ".." in parts:
        raise BuildRefused(f"{what}: entry {_said(name)} has a '..' component")
    if any(part in ("", ".") for part in parts):
        raise BuildRefused(f"{what}: entry {_said(name)} is not a normalized path")
    image_path = destination.rstrip("/") + "/" + "/".join(parts)
    return check_path(image_path, f"{what}: entry")


def _stays_inside(
    root: str, link_path: str, target: str, links: Mapping[str, str] | None = None
) -> bool:
    """Whether symlink `link_path` -> `target` stays in `root`: resolved lexically
    from the link's directory (an absolute target from the image root), following
    the archive's own `links` (image path -> target) on the way, it never climbs out
    of `root` once in it (nor above the image root) and ends in it.

    >>> _stays_inside("/opt/app", "/opt/app/lib/x", "../bin/y")
    True
    >>> _stays_inside("/opt/app", "/opt/app/x", "../../etc"), _stays_inside("/", "/a", "../etc")
    (False, False)
    >>> _stays_inside("/opt/app", "/opt/app/x", "/opt/app/y")
    True
    >>> _stays_inside("/opt/app", "/opt/app/x", "/etc")
    False
    >>> _stays_inside("/opt/app", "/opt/app/x", "lib/lib/../..", {"/opt/app/lib": "."})
    False
    """
    links = links or {}
    root_parts = [] if root == "/" else root[1:].split("/")
    current = [] if target.startswith("/") else link_path[1:].split("/")[:-1]
    pending = target.split("/")
    entered = current[: len(root_parts)] == root_parts
    hops = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not current:
                return False  # above the image root
            current.pop()
        else:
            current.append(part)
            followed = links.get("/" + "/".join(current))
            if followed is not None:
                hops += 1
                if hops > 40:  # the kernel's own limit: a loop
                    return False
                current.pop()
                if followed.startswith("/"):
                    current = []
                pending = followed.split("/") + pending
        inside = current[: len(root_parts)] == root_parts and len(current) >= len(root_parts)
        if entered and not inside:
            return False
        entered = entered or inside
    return current[: len(root_parts)] == root_parts and len(current) >= len(root_parts)


def archive_layer(
    step: Archive,
    *,
    compression: Compression = "gzip",
    limits: Limits = LIMITS,
    mapper: Mapper = map,
) -> BuiltLayer:
    """The layer of one Archive step: the parents of its destination, the destination,
    then the archive's entries under it (missing directories made 0755).

    >>> tar = tar_bytes([Entry("bin/tool", "file", 0o755, 1000, 1000, content=b"#!/bin/sh\\n")])
    >>> layer = archive_layer(Archive("/opt/app", tar, uid=0, gid=0), compression="none")
    >>> for m in tarfile.open(fileobj=io.BytesIO(layer.data)):
    ...     print(m.name, oct(m.mode), m.uid)
    opt 0o755 0
    opt/app 0o755 0
    opt/app/bin 0o755 0
    opt/app/bin/tool 0o755 0
    """
    what = f"Archive {step.path}"
    raw = _gunzipped(step.data, limits.bytes, what)
    entries: dict[str, Entry] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:", encoding="utf-8") as archive:
            for member in archive:
                if len(entries) >= limits.entries:
                    raise BuildRefused(f"{what}: more than {limits.entries} entries")
                entry = _member_entry(archive, member, step, entries, what)
                if entry is None:
                    continue
                total += len(entry.content)
                if total > limits.bytes:
                    raise BuildRefused(f"{what}: more than {limits.bytes} bytes of content")
                entries["/" + entry.path] = entry
            # Why: tarfile ends quietly at a header it cannot read past the first one.
            if any(raw[archive.offset :]):
                raise BuildRefused(f"{what}: unreadable data at byte {archive.offset} of the tar")
    except tarfile.TarError as error:
        raise BuildRefused(f"{what}: not a readable tar archive ({error})") from None
    _check_tree(entries, step.path, what)
    implied_uid, implied_gid = step.uid or 0, step.gid or 0
    written = {e.path: e for e in _parent_entries(step.path, step.parents, itself=True)}
    for path in entries:
        parts = path[1:].split("/")
        for index in range(1, len(parts)):
            relative = "/".join(parts[:index])
            if relative not in written and "/" + relative not in entries:
                written[relative] = Entry(relative, "directory", 0o755, implied_uid, implied_gid)
    for entry in entries.values():
        written[entry.path] = entry
    return _layer(list(written.values()), compression, limits, what, mapper)


def _member_entry(
    archive: tarfile.TarFile,
    member: tarfile.TarInfo,
    step: Archive,
    entries: Mapping[str, Entry],
    what: str,
) -> Entry | None:
    path = _member_path(member.name, step.path, what)
    if path is None:
        return None  # the archive's "." entry: the destination's attributes are the step's
    if path in entries:
        raise BuildRefused(f"{what}: entry {path} appears twice")
    if member.issparse():
        raise BuildRefused(f"{what}: entry {path} is a sparse file")
    uid = _check_id(member.uid if step.uid is None else step.uid, f"{what}: entry {path}: uid")
    gid = _check_id(member.gid if step.gid is None else step.gid, f"{what}: entry {path}: gid")
    mode = member.mode & 0o7777
    relative = path[1:]
    if member.isreg():
        extracted = archive.extractfile(member)
        content = extracted.read() if extracted is not None else b""
        return Entry(relative, "file", mode, uid, gid, content=content)
    if member.isdir():
        return Entry(relative, "directory", mode, uid, gid)
    if member.issym():
        target = _check_text(member.linkname, f"{what}: symlink {path}: target", MAX_PATH_BYTES)
        if not target:
            raise BuildRefused(f"{what}: symlink {path} has an empty target")
        return Entry(relative, "symlink", 0o777, uid, gid, link=target)
    if member.islnk():
        linked = _member_path(member.linkname, step.path, what)
        holder = entries.get(linked or "")
        if holder is None or holder.kind != "file":
            raise BuildRefused(
                f"{what}: hard link {path} -> {_said(member.linkname)} does not name an "
                "earlier regular file of the archive"
            )
        return Entry(relative, "hardlink", holder.mode, holder.uid, holder.gid, link=holder.path)
    kind = {tarfile.CHRTYPE: "a character device", tarfile.BLKTYPE: "a block device"}.get(
        member.type, "a FIFO" if member.isfifo() else f"of tar type {member.type!r}"
    )
    raise BuildRefused(f"{what}: entry {path} is {kind} (only files, directories and links)")


def _check_tree(entries: Mapping[str, Entry], root: str, what: str) -> None:
    """No entry under a symlink or a file of the archive; no symlink leading out of `root`."""
    links = {path: entry.link for path, entry in entries.items() if entry.kind == "symlink"}
    for path, entry in entries.items():
        parent = path.rsplit("/", 1)[0]
        while parent:
            above = entries.get(parent)
            if above is not None and above.kind != "directory":
                raise BuildRefused(f"{what}: entry {path} is under {parent}, a {above.kind}")
            parent = parent.rsplit("/", 1)[0]
        if entry.kind == "symlink" and not _stays_inside(root, path, entry.link, links):
            raise BuildRefused(f"{what}: symlink {path} -> {_said(entry.link)} leads out of {root}")


# -- the image config ------------------------------------------------------------------


def apply_config(config: Mapping[str, Any], steps: Iterable[Step]) -> dict[str, Any]:
    """A copy of the image config with the config steps applied in order (the other
    steps are skipped; `image_config` adds their layers and history).

    >>> base = {"config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "Labels": {"a": "1"}}}
    >>> edited = apply_config(base, [Environment.of({"PATH": "/usr/bin", "B": "2"}),
    ...                              Labels.of({"b": "2"}), Entrypoint(("/init",))])
    >>> edited["config"]["Env"], edited["config"]["Labels"]
    (['PATH=/usr/bin', 'A=1', 'B=2'], {'a': '1', 'b': '2'})
    >>> edited["config"]["Entrypoint"], "Cmd" in edited["config"]
    (['/init'], False)
    >>> base["config"]["Env"]
    ['PATH=/bin', 'A=1']
    """
    result = copy.deepcopy(dict(config))
    settings = result.get("config")
    settings = dict(settings) if isinstance(settings, dict) else {}
    cmd_set_here = False
    for step in steps:
        match step:
            case Environment():
                settings["Env"] = _merged_env(settings.get("Env"), step.variables)
            case Labels():
                labels = settings.get("Labels")
                merged = dict(labels) if isinstance(labels, dict) else {}
                merged.update(step.labels)
                settings["Labels"] = merged
            case Entrypoint():
                _set_args(settings, "Entrypoint", step.args)
                if not cmd_set_here:
                    settings.pop("Cmd", None)  # Docker's rule: an inherited Cmd goes with it
            case Cmd():
                _set_args(settings, "Cmd", step.args)
                cmd_set_here = True
            case WorkingDir():
                settings["WorkingDir"] = step.path
            case User():
                settings["User"] = step.user
    result["config"] = settings
    return result


def _merged_env(current: object, variables: Sequence[tuple[str, str]]) -> list[str]:
    merged: dict[str, str | None] = {}
    for item in current if isinstance(current, list) else []:
        if isinstance(item, str):
            name, equals, value = item.partition("=")
            merged[name] = value if equals else None
    for name, value in variables:
        merged[name] = value
    return [name if value is None else f"{name}={value}" for name, value in merged.items()]


def _set_args(settings: dict[str, Any], key: str, args: tuple[str, ...]) -> None:
    if args:
        settings[key] = list(args)
    else:
        settings.pop(key, None)


def diff_ids(config: object) -> list[str]:
    """The config's rootfs.diff_ids, checked; BuildRefused when it is no image config.

    >>> diff_ids({"rootfs": {"type": "layers", "diff_ids": []}})
    []
    >>> diff_ids({"rootfs": {"type": "layers", "diff_ids": ["md5:x"]}})
    Traceback (most recent call last):
    ...
    galleon.core.layers.BuildRefused: the image config's rootfs.diff_ids[0] is not a sha256 digest
    """
    rootfs = config.get("rootfs") if isinstance(config, dict) else None
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise BuildRefused("the image config has no rootfs of type layers")
    found = rootfs.get("diff_ids")
    if not isinstance(found, list):
        raise BuildRefused("the image config's rootfs.diff_ids is not a list")
    for index, digest in enumerate(found):
        if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
            raise BuildRefused(
                f"the image config's rootfs.diff_ids[{index}] is not a sha256 digest"
            )
    return list(found)


def image_config(
    base: Mapping[str, Any],
    steps: Sequence[Step],
    added: Sequence[Sequence[str]],
    *,
    created: str | None = EPOCH,
) -> dict[str, Any]:
    """The built image's config: the base's with the config steps applied, the
    diff_ids each step `added` appended to rootfs.diff_ids, one history entry a
    layer (a Layer step's layers one each) or a config step (empty_layer), and
    `created` on the image and on galleon's history entries (None: on neither).

    A base without history gets one entry a base layer first, so history and layers
    still pair up.

    >>> base = {"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64]}}
    >>> built = image_config(base, [User("app"), File("/x", b"")], [[], ["sha256:" + "b" * 64]])
    >>> len(built["rootfs"]["diff_ids"]), [h.get("empty_layer", False) for h in built["history"]]
    (2, [False, True, False])
    >>> built["created"], built["history"][2]["created_by"]
    ('1970-01-01T00:00:00Z', 'galleon File /x mode 0644 owner 0:0')
    """
    if len(added) != len(steps):
        raise BuildRefused(f"{len(steps)} steps but diff_ids for {len(added)}")
    base_ids = diff_ids(base)
    result = apply_config(base, steps)
    history = result.get("history")
    history = [dict(h) for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    dated = {"created": created} if created is not None else {}
    if not history:
        history = [
            dated | {"created_by": "galleon: a base image layer (no history)"} for _ in base_ids
        ]
    ids = list(base_ids)
    for step, new_ids in zip(steps, added, strict=True):
        if isinstance(step, File | Archive) and len(new_ids) != 1:
            raise BuildRefused(f"{describe(step)}: one layer expected, {len(new_ids)} given")
        if not isinstance(step, File | Archive | Layer) and new_ids:
            raise BuildRefused(f"{describe(step)}: a config step adds no layer")
        for digest in new_ids:
            if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
                raise BuildRefused(f"{describe(step)}: diff_id {_said(digest)} is not sha256")
        ids.extend(new_ids)
        if not new_ids:
            history.append(dated | {"created_by": describe(step), "empty_layer": True})
        for index in range(len(new_ids)):
            said = f" (layer {index + 1} of {len(new_ids)})" if isinstance(step, Layer) else ""
            history.append(dated | {"created_by": describe(step) + said})
    result["rootfs"] = {"type": "layers", "diff_ids": ids}
    if created is None:
        result.pop("created", None)
    else:
        result["created"] = created
    result["history"] = history
    return result


def _said(value: object) -> str:
    """`value` for a message, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:56]}...'"
