"""Runnable test images for real nodes: a static busybox plus a small HTTP endpoint
that says which version it is, whether it is healthy, and what is on its data disks.

    image = build_os_image(tmp_path / "os-1.0.0", "1.0.0")
    bad = build_os_image(tmp_path / "os-1.0.3", "1.0.3", healthy=False)
    big = build_os_image(tmp_path / "os-1.0.4", "1.0.4", padding=128 << 20)  # + 128 MiB
    pause = build_pause_image(tmp_path / "pause")

What an instance of the OS image serves on port 8080 (busybox `httpd`, CGI in /bin/sh):

| path | answer |
|---|---|
| `/healthz`, `/cgi-bin/healthz` | `ok <version>`; 503 if built `healthy=False` or told to break |
| `/cgi-bin/version` | the version, from `/etc/galleon-release` in the image |
| `/cgi-bin/break` | from now on `/cgi-bin/healthz` answers 503 (until the container restarts) |
| `/cgi-bin/note?TEXT` | appends `TEXT` to `notes` on every data disk under `/data` |
| `/cgi-bin/disks` | the `notes`, `boots` and `extension` files of every data disk, by line |

At start the image appends `<version> <hostname>` to `boots` on every data disk under
`/data`; run as an init container with the argument `extension`, it appends
`extension ran on <version> in <hostname>` to `extension` on those disks and prints it.

Rules of this module: layers are plain tar, reproducible (sorted entries, mtime 0,
owner 0:0), so the same version always gives the same digests; every image shares
the busybox layer, and only the small `galleon` layer differs between versions, as a
patch release would (`padding` adds a third layer of that many random bytes, seeded
by the version: incompressible and never shared, so that pulling a new version costs
what a real OS image's pull would); the entrypoint traps SIGTERM, so an instance
stops at once instead of waiting out its grace period as a PID 1 without handlers
would.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import tarfile
from pathlib import Path

from galleon.oci.client import Manifest
from galleon_testkit.images import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, BlobFile, TestImage

BUSYBOX = Path("/usr/bin/busybox")
PORT = 8080
HEALTH_PATH = "/healthz"
"""What the examples' readiness probes ask: busybox httpd redirects the folder
`/healthz` to `/healthz/`, and runs `/cgi-bin/index.cgi` for a folder without an
index page, which answers as `/cgi-bin/healthz` does."""


class MissingBusybox(RuntimeError):
    """Debian's busybox-static is not installed (hack/setup.sh installs it)."""


START = """#!/bin/sh
# galleon test OS: say who we are, record the boot on every data disk, serve HTTP.
trap 'exit 0' TERM INT
VERSION="$(cat /etc/galleon-release)"
HOST="$(hostname)"
for disk in /data/*; do
  [ -d "$disk" ] && echo "$VERSION $HOST" >> "$disk/boots"
done
if [ "$1" = extension ]; then
  for disk in /data/*; do
    [ -d "$disk" ] && echo "extension ran on $VERSION in $HOST" >> "$disk/extension"
  done
  echo "extension ran on $VERSION in $HOST"
  exit 0
fi
echo "galleon test OS $VERSION on $HOST: serving on :8080"
httpd -f -p 8080 -h /galleon/www &
wait
"""

HEALTHZ = """#!/bin/sh
if [ -e /galleon/unhealthy ] || [ -e /tmp/unhealthy ]; then
  printf 'Status: 503 Service Unavailable\\r\\nContent-Type: text/plain\\r\\n\\r\\n'
  echo "unhealthy $(cat /etc/galleon-release)"
else
  printf 'Content-Type: text/plain\\r\\n\\r\\n'
  echo "ok $(cat /etc/galleon-release)"
fi
"""

INDEX = """#!/bin/sh
case "$REQUEST_URI" in
  /healthz/*) exec /galleon/www/cgi-bin/healthz ;;
esac
printf 'Status: 404 Not Found\r\nContent-Type: text/plain\r\n\r\nnot found\n'
"""

VERSION = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
cat /etc/galleon-release
"""

BREAK = """#!/bin/sh
touch /tmp/unhealthy
printf 'Content-Type: text/plain\\r\\n\\r\\nbroken\\n'
"""

NOTE = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
for disk in /data/*; do
  [ -d "$disk" ] && echo "$QUERY_STRING" >> "$disk/notes" && echo "$disk/notes"
done
"""

DISKS = """#!/bin/sh
printf 'Content-Type: text/plain\\r\\n\\r\\n'
for file in /data/*/notes /data/*/boots /data/*/extension; do
  [ -f "$file" ] && sed "s|^|$file: |" "$file"
done
exit 0
"""


def _busybox() -> Path:
    if not BUSYBOX.is_file():
        raise MissingBusybox(
            f"{BUSYBOX} not found; install it with `apt-get install busybox-static` "
            "(hack/setup.sh does)"
        )
    return BUSYBOX


def _applets(busybox: Path) -> list[str]:
    listed = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True, timeout=30
    )
    return sorted(name for name in listed.stdout.split() if name and "/" not in name)


def _info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, 0
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def _tar(entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    """A reproducible tar: entries sorted by name, parents before children."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in sorted(entries, key=lambda entry: entry[0].name):
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return out.getvalue()


def _directories(*names: str) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    return [(_info(name, tarfile.DIRTYPE), None) for name in names]


def _file(name: str, text: str | bytes, mode: int = 0o755) -> tuple[tarfile.TarInfo, bytes]:
    data = text.encode() if isinstance(text, str) else text
    return _info(name, mode=mode), data


def busybox_layer() -> bytes:
    """`/bin/busybox` with a symlink per applet, and the folders a container expects."""
    busybox = _busybox()
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = [
        *_directories("bin", "data", "etc", "proc", "sys", "dev", "var", "root"),
        (_info("tmp", tarfile.DIRTYPE, 0o1777), None),
        _file("bin/busybox", busybox.read_bytes()),
        _file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644),
        _file("etc/group", "root:x:0:\n", 0o644),
    ]
    for applet in _applets(busybox):
        if applet == "busybox":
            continue
        link = _info(f"bin/{applet}", tarfile.SYMTYPE, 0o777)
        link.linkname = "busybox"
        entries.append((link, None))
    return _tar(entries)


def galleon_layer(version: str, *, healthy: bool) -> bytes:
    entries: list[tuple[tarfile.TarInfo, bytes | None]] = [
        *_directories("galleon", "galleon/www", "galleon/www/cgi-bin", "galleon/www/healthz"),
        _file("etc/galleon-release", f"{version}\n", 0o644),
        _file("galleon/start.sh", START),
        _file("galleon/www/index.html", f"galleon test OS {version}\n", 0o644),
        _file("galleon/www/cgi-bin/healthz", HEALTHZ),
        _file("galleon/www/cgi-bin/index.cgi", INDEX),
        _file("galleon/www/cgi-bin/version", VERSION),
        _file("galleon/www/cgi-bin/break", BREAK),
        _file("galleon/www/cgi-bin/note", NOTE),
        _file("galleon/www/cgi-bin/disks", DISKS),
    ]
    if not healthy:
        entries.append(_file("galleon/unhealthy", "built unhealthy\n", 0o644))
    return _tar(entries)


def padding_layer(version: str, size: int) -> bytes:
    """`/galleon/padding.bin`: `size` random bytes seeded by `version` (the same
    version always gives the same layer, two versions never share it)."""
    seed = int.from_bytes(hashlib.sha256(f"padding {version}".encode()).digest()[:8], "big")
    generator = random.Random(seed)
    chunk = 1 << 20  # randbytes takes at most 256 MiB at once
    data = b"".join(generator.randbytes(min(chunk, size - at)) for at in range(0, size, chunk))
    return _tar([_file("galleon/padding.bin", data, 0o644)])


def _blob(folder: Path, data: bytes) -> BlobFile:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = folder / digest.replace(":", "-")
    path.write_bytes(data)
    return BlobFile(digest, len(data), path)


def _image(folder: Path, layers: list[bytes], config: dict[str, object]) -> TestImage:
    folder.mkdir(parents=True, exist_ok=True)
    blobs = [_blob(folder, layer) for layer in layers]
    document = {
        "architecture": "amd64",
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [b.digest for b in blobs]},
    }
    config_blob = _blob(folder, json.dumps(document, sort_keys=True).encode())
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": config_blob.digest,
                "size": config_blob.size,
            },
            "layers": [{"mediaType": OCI_LAYER, "digest": b.digest, "size": b.size} for b in blobs],
        },
        sort_keys=True,
    ).encode()
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    return TestImage(Manifest(manifest, OCI_MANIFEST, digest), config_blob, tuple(blobs))


def build_os_image(
    folder: Path, version: str, *, healthy: bool = True, padding: int = 0
) -> TestImage:
    """A runnable OS image of `version` (see the module docstring for what it serves);
    `padding` > 0 adds a layer of that many random bytes seeded by `version`."""
    layers = [busybox_layer(), galleon_layer(version, healthy=healthy)]
    if padding > 0:
        layers.append(padding_layer(version, padding))
    return _image(
        folder,
        layers,
        {
            "Entrypoint": ["/bin/sh", "/galleon/start.sh"],
            "Env": ["PATH=/bin"],
            "ExposedPorts": {f"{PORT}/tcp": {}},
            "Labels": {"galleon.test/version": version, "galleon.test/healthy": str(healthy)},
            "WorkingDir": "/",
        },
    )


def build_pause_image(folder: Path) -> TestImage:
    """The pod sandbox image: busybox sleeping (containerd kills sandboxes with SIGKILL)."""
    return _image(
        folder,
        [busybox_layer()],
        {"Entrypoint": ["/bin/sleep", "2147483647"], "Env": ["PATH=/bin"], "WorkingDir": "/"},
    )
