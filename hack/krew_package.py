"""Package `kubectl galleon` for krew: the archive a release publishes, and the krew
manifest (plugins/galleon.yaml) that names it with its sha256.

    .venv/bin/python hack/krew_package.py      # dist/krew/*.tar.gz, plugins/galleon.yaml
    .venv/bin/python hack/krew_package.py --out DIR --manifest FILE --uri-base URL

The archive holds galleon's wheel (built from this tree) and `kubectl-galleon`, a small
POSIX sh launcher: on its first run it makes a private virtualenv
(`${XDG_CACHE_HOME:-~/.cache}/kubectl-galleon/<version>`) with the wheel and its pinned
dependencies from PyPI, then runs the plugin from it. One archive serves every platform
krew lists (the wheel is pure Python; pip picks the right pydantic-core wheel at the
first run), so the manifest's platforms share one uri and sha256. The archive is
reproducible (SOURCE_DATE_EPOCH from the last commit, sorted names, no owners), so the
same commit gives the same sha256; it is built from the working tree, so a release runs
this on a clean checkout of its tag.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "plugins" / "galleon.yaml"
URI_BASE = "https://github.com/galleon-dev/galleon/releases/download"
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"), ("darwin", "amd64"), ("darwin", "arm64"))
"""Where the launcher runs: any system with a POSIX sh and Python 3.11 or later."""
SOURCES = ("pyproject.toml", "README.md", "operator")
"""What building the wheel reads."""

LAUNCHER = r"""#!/bin/sh
# kubectl-galleon as krew installs it: on the first run, a private virtualenv with the
# plugin's wheel (beside this script) and its pinned dependencies from PyPI.
set -eu
version="@VERSION@"
self=$0
while [ -L "$self" ]; do  # krew links $KREW_ROOT/bin/kubectl-galleon to this file
  link=$(readlink "$self")
  case $link in /*) self=$link ;; *) self=$(dirname "$self")/$link ;; esac
done
here=$(cd "$(dirname "$self")" && pwd)
python=${KUBECTL_GALLEON_PYTHON:-python3}
venv=${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-galleon/$version
if [ ! -f "$venv/.installed" ]; then
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "kubectl-galleon: needs Python 3.11 or later as '$python' (set KUBECTL_GALLEON_PYTHON)" >&2
    exit 1
  fi
  echo "kubectl-galleon: first run, installing galleon $version into $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here"/galleon-*.whl >&2
  touch "$venv/.installed"
fi
exec "$venv/bin/kubectl-galleon" "$@"
"""


def project_version() -> str:
    """The version in pyproject.toml (`0.1.0`)."""
    with (REPO / "pyproject.toml").open("rb") as file:
        return str(tomllib.load(file)["project"]["version"])


def source_date_epoch() -> int:
    """The last commit's time (what reproducible builds stamp), else 0."""
    found = subprocess.run(
        ["git", "-C", str(REPO), "log", "-1", "--format=%ct"],
        capture_output=True,
        text=True,
        check=False,
    )
    return int(found.stdout.strip() or 0)


def build_wheel(folder: Path, epoch: int) -> Path:
    """galleon's wheel, built from a copy of the sources (the tree stays clean)."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "galleon"
        source.mkdir()
        for name in SOURCES:
            path = REPO / name
            if path.is_dir():
                shutil.copytree(
                    path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
                )
            else:
                shutil.copy2(path, source / name)
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(folder), "."],
            cwd=source,
            env={**os.environ, "SOURCE_DATE_EPOCH": str(epoch)},
            check=True,
        )
    (wheel,) = folder.glob("galleon-*.whl")
    return wheel


def archive(version: str, out: Path) -> Path:
    """`kubectl-galleon-v<version>.tar.gz` in `out`: the launcher and the wheel."""
    epoch = source_date_epoch()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"kubectl-galleon-v{version}.tar.gz"
    with tempfile.TemporaryDirectory() as scratch:
        wheel = build_wheel(Path(scratch), epoch)
        members = [
            ("kubectl-galleon", LAUNCHER.replace("@VERSION@", version).encode(), 0o755),
            ("LICENSE.txt", b"SPDX-License-Identifier: Apache-2.0\n", 0o644),
            (wheel.name, wheel.read_bytes(), 0o644),
        ]
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for name, data, mode in sorted(members):
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime = len(data), mode, epoch
                tar.addfile(info, io.BytesIO(data))
        with target.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=epoch) as gz:
            gz.write(buffer.getvalue())
    return target


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest(version: str, uri: str, digest: str) -> dict:
    """The krew manifest (krew.googlecontainertools.github.com/v1alpha2 Plugin)."""
    platforms = [
        {
            "selector": {"matchLabels": {"os": os_name, "arch": arch}},
            "uri": uri,
            "sha256": digest,
            "files": [
                {"from": "kubectl-galleon", "to": "."},
                {"from": "galleon-*.whl", "to": "."},
                {"from": "LICENSE.txt", "to": "."},
            ],
            "bin": "kubectl-galleon",
        }
        for os_name, arch in PLATFORMS
    ]
    return {
        "apiVersion": "krew.googlecontainertools.github.com/v1alpha2",
        "kind": "Plugin",
        "metadata": {"name": "galleon"},
        "spec": {
            "version": f"v{version}",
            "homepage": "https://galleon.dev",
            "shortDescription": "See and steer galleon image galleries and ScaleSet rollouts",
            "description": textwrap.fill(
                "kubectl galleon shows and steers the galleon operator's resources: image "
                "replication per region, image builds, ScaleSet rolling upgrades (get, "
                "status, pause, resume, cancel, upgrade, plan, history), and creates "
                "Galleries, ImageDefinitions, ImageVersions and ScaleSets from flags "
                "(or prints them for Git).",
                width=80,
            )
            + "\n",
            "caveats": (
                "The plugin is written in Python: it needs python3 (3.11 or later) on PATH\n"
                "(or KUBECTL_GALLEON_PYTHON). Its first run installs it, with its pinned\n"
                "dependencies from PyPI, into ~/.cache/kubectl-galleon/<version>.\n"
            ),
            "platforms": platforms,
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings as literal blocks (`|`), as krew-index manifests write them."""


_Dumper.add_representer(
    str,
    lambda dumper, value: dumper.represent_scalar(
        "tag:yaml.org,2002:str", value, style="|" if "\n" in value else None
    ),
)


def render(document: dict) -> str:
    """The manifest file's text."""
    return "# Generated by hack/krew_package.py (the release publishes the archive it names).\n" + (
        yaml.dump(document, Dumper=_Dumper, sort_keys=False)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist" / "krew")
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--uri-base", default=URI_BASE, help="Where releases publish archives.")
    args = parser.parse_args()
    version = project_version()
    built = archive(version, args.out)
    uri = f"{args.uri_base}/v{version}/{built.name}"
    args.manifest.parent.mkdir(parents=True, exist_ok=True)
    args.manifest.write_text(render(manifest(version, uri, sha256(built))))
    print(f"{built}\n{args.manifest}")


if __name__ == "__main__":
    main()
