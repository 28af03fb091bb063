"""Render the Helm chart with the helm binary that hack/envtest.sh builds.

Example:
    documents = render(["--set", "crds.enabled=false"])
    rbac = [d for d in documents if d["kind"].startswith("ClusterRole")]
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from galleon_testkit.binaries import REPO_ROOT, find_bin_dir

CHART = REPO_ROOT / "helm" / "galleon"
RELEASE = "galleon"
NAMESPACE = "galleon-system"


def helm_binary() -> Path:
    return find_bin_dir() / "helm"


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    """Run helm; the result is returned whatever the exit code (callers check)."""
    return subprocess.run(
        [str(helm_binary()), *args], capture_output=True, text=True, timeout=120, check=False
    )


def render(extra: Sequence[str] = (), namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    """`helm template` of the chart as a list of documents (fails on a helm error)."""
    completed = helm("template", RELEASE, str(CHART), "--namespace", namespace, *extra)
    if completed.returncode != 0:
        raise RuntimeError(f"helm template failed: {completed.stderr.strip()}")
    return [d for d in yaml.safe_load_all(completed.stdout) if d]


def of_kind(documents: Sequence[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in documents if d.get("kind") == kind]
