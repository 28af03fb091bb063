"""The krew package of `kubectl galleon`, judged by the real krew (built by
hack/krew.sh) and run through the real kubectl: the archive hack/krew_package.py builds
installs from its manifest, runs (its first run installs the plugin from PyPI into a
private virtualenv), and an archive that is not the one the manifest names is refused.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from galleon_testkit import binaries
from galleon_testkit.cluster_fixtures import unavailable

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
ARCHIVE = "kubectl-galleon-v{version}.tar.gz"


def krew_binary() -> Path:
    found = subprocess.run(
        [str(REPO / "hack" / "krew.sh"), "--print"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if found.returncode != 0:
        unavailable(f"krew is not built: {found.stderr.strip()} (make setup builds it)")
    return Path(found.stdout.strip()) / "krew"


def run(
    args: list[str | Path], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def package(tmp_path: Path) -> tuple[Path, Path, str]:
    """The archive and its manifest, built into `tmp_path` (never into the tree)."""
    out = tmp_path / "dist"
    built = run(
        [
            sys.executable,
            REPO / "hack" / "krew_package.py",
            "--out",
            out,
            "--manifest",
            out / "galleon.yaml",
        ],
        dict(os.environ),
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    manifest = out / "galleon.yaml"
    version = yaml.safe_load(manifest.read_text())["spec"]["version"].removeprefix("v")
    return out / ARCHIVE.format(version=version), manifest, version


def test_krew_installs_the_archive_and_kubectl_runs_it(
    package: tuple[Path, Path, str], tmp_path: Path
) -> None:
    krew = krew_binary()
    try:
        kubectl = str(binaries.kubectl())
    except binaries.MissingBinaries as error:
        unavailable(str(error))
    archive, manifest, version = package
    root = tmp_path / "krew"
    env = {
        **os.environ,
        "KREW_ROOT": str(root),
        "PATH": f"{root / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "KUBECTL_GALLEON_PYTHON": sys.executable,
    }
    installed = run([krew, "install", f"--manifest={manifest}", f"--archive={archive}"], env)
    assert installed.returncode == 0, installed.stderr
    assert "Installed plugin: galleon" in installed.stderr

    first = run([kubectl, "galleon", "version", "--client"], env, timeout=600)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"Client Version: {version}"
    assert f"first run, installing galleon {version}" in first.stderr
    again = run(
        [
            kubectl,
            "galleon",
            "create",
            "gallery",
            "images",
            "--location",
            "eastus2",
            "--dry-run=client",
            "-o",
            "name",
        ],
        env,
    )
    assert again.returncode == 0, again.stderr
    assert (again.stdout.strip(), again.stderr) == ("gallery.galleon.dev/images", "")

    receipt = yaml.safe_load((root / "receipts" / "galleon.yaml").read_text())
    assert receipt["spec"]["version"] == f"v{version}"  # what krew upgrade compares


def test_krew_refuses_an_archive_the_manifest_does_not_name(
    package: tuple[Path, Path, str], tmp_path: Path
) -> None:
    krew = krew_binary()
    archive, manifest, _ = package
    tampered = tmp_path / archive.name
    tampered.write_bytes(archive.read_bytes() + b"\0")
    env = {**os.environ, "KREW_ROOT": str(tmp_path / "krew")}
    refused = run([krew, "install", f"--manifest={manifest}", f"--archive={tampered}"], env)
    assert refused.returncode != 0
    assert "checksum does not match" in refused.stderr, refused.stderr
    assert not (tmp_path / "krew" / "bin" / "kubectl-galleon").exists()
