"""Where the control-plane binaries are: `$GALLEON_BIN_DIR`, else `hack/envtest.sh --print`.

Rules of this module: it never builds anything (building takes many minutes and
belongs to `hack/envtest.sh`, run by a person or by CI before the tests); it only
finds the folder and checks that every binary the harness starts is there and
executable. Anything missing raises `MissingBinaries`, whose message says how to
fix it, so callers can turn it into a skip or (under `CI=true`) a failure.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

#: The binaries the control plane starts, by file name inside the bin folder.
REQUIRED = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kubelet",
)

#: tests/kit/galleon_testkit/binaries.py -> parents[3] is the repository root (the kit
#: is installed editable from the checkout by hack/setup.sh, so this file stays there).
REPO_ROOT = Path(__file__).resolve().parents[3]
ENVTEST_SCRIPT = REPO_ROOT / "hack" / "envtest.sh"
HOW_TO_BUILD = "run `hack/envtest.sh` once (it builds the binaries into a cache folder)"


class MissingBinaries(RuntimeError):
    """The control-plane binaries are not built (or not where we were told)."""


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the executables, all inside one bin folder.

    `kwok_kustomize` is kwok's own stage/CRD YAML folder that envtest.sh copies
    beside the binary; it may be absent (our stages do not need it).
    """

    folder: Path
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kwok: Path
    kwok_kustomize: Path
    kubelet: Path


def find_bin_dir() -> Path:
    """Return the bin folder: `$GALLEON_BIN_DIR` when set, else what envtest.sh prints.

    Example: with GALLEON_BIN_DIR=/opt/k8s this returns Path("/opt/k8s") without
    running anything; otherwise `hack/envtest.sh --print` answers (it fails, and we
    raise MissingBinaries, while the build is incomplete).
    """
    configured = os.environ.get("GALLEON_BIN_DIR")
    if configured:
        return Path(configured)
    if not ENVTEST_SCRIPT.is_file():
        raise MissingBinaries(f"{ENVTEST_SCRIPT} not found and $GALLEON_BIN_DIR is not set")
    try:
        completed = subprocess.run(
            [str(ENVTEST_SCRIPT), "--print"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise MissingBinaries(f"could not run {ENVTEST_SCRIPT} --print: {error}") from error
    if completed.returncode != 0:
        reason = completed.stderr.strip() or completed.stdout.strip()
        raise MissingBinaries(f"control-plane binaries are not built ({reason}); {HOW_TO_BUILD}")
    return Path(completed.stdout.strip().splitlines()[-1])


def find_binaries() -> Binaries:
    """Find the bin folder and check that every required binary is executable."""
    folder = find_bin_dir()
    missing = [name for name in REQUIRED if not os.access(folder / name, os.X_OK)]
    if missing:
        raise MissingBinaries(f"missing in {folder}: {', '.join(missing)}; {HOW_TO_BUILD}")
    return Binaries(
        folder=folder,
        etcd=folder / "etcd",
        kube_apiserver=folder / "kube-apiserver",
        kube_controller_manager=folder / "kube-controller-manager",
        kube_scheduler=folder / "kube-scheduler",
        kwok=folder / "kwok",
        kwok_kustomize=folder / "kwok-kustomize",
        kubelet=folder / "kubelet",
    )


def kubectl() -> Path:
    """The kubectl `hack/envtest.sh` builds (the control plane's version), so tests
    never depend on one installed on the machine; `MissingBinaries` when not built."""
    path = find_bin_dir() / "kubectl"
    if not os.access(path, os.X_OK):
        raise MissingBinaries(f"kubectl is missing in {path.parent}; {HOW_TO_BUILD}")
    return path
