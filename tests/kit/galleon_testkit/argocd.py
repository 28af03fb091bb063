"""Argo CD's own health assessment of galleon objects: the `argocd` CLI hack/argocd.sh
builds, run as `argocd admin settings resource-overrides health OBJECT.yaml
--argocd-cm-path argocd-cm.yaml`, which loads the scripts from the ConfigMap and runs
them in Argo CD's Lua sandbox (the code path of the application controller).

The ConfigMap is made the way docs/gitops.md tells users to install the scripts: the
`jq` command of its "Install with kubectl" recipe, run from the repository root,
gives the merge patch that recipe sends to `argocd-cm`.

Example:
    cm = write_argocd_cm(tmp_path / "argocd-cm.yaml")
    health(tmp_path / "web.yaml", cm)     # Health("Progressing", "upgrading 1.0.0 to ...")

Like galleon_testkit.binaries, nothing here builds: a missing binary (or jq) raises
MissingBinaries, which callers turn into a skip (or a failure under CI=true).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from galleon_testkit.binaries import REPO_ROOT, MissingBinaries

SCRIPT = REPO_ROOT / "hack" / "argocd.sh"
DOCS = REPO_ROOT / "docs" / "gitops.md"
SCRIPTS = REPO_ROOT / "helm" / "galleon" / "argocd"
#: What the docs' recipe sends the jq output to.
PATCH_COMMAND = "kubectl -n argocd patch configmap argocd-cm --type merge --patch"
KEY_PREFIX = "resource.customizations.health."


class Health(NamedTuple):
    status: str
    message: str


class ArgoCDError(RuntimeError):
    """`argocd` refused the object or the script (its exit status was not 0)."""


def argocd_bin() -> Path:
    """The `argocd` CLI (`hack/argocd.sh --print`)."""
    try:
        completed = subprocess.run(
            [str(SCRIPT), "--print"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise MissingBinaries(f"could not run {SCRIPT} --print: {error}") from error
    if completed.returncode != 0:
        reason = completed.stderr.strip() or completed.stdout.strip()
        raise MissingBinaries(f"argocd is not built ({reason}); run `hack/argocd.sh`")
    return Path(completed.stdout.strip().splitlines()[-1]) / "argocd"


def _section(heading: str) -> str:
    text = DOCS.read_text()
    start = text.index(f"\n{heading}\n")
    end = text.find("\n#", start + len(heading) + 2)
    return text[start : end if end >= 0 else len(text)]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.DOTALL)


def docs_patch() -> dict[str, Any]:
    """The merge patch the docs' kubectl recipe sends to argocd-cm: its `jq` command run
    as written (with its `dir=` line), from the repository root."""
    jq = shutil.which("jq")
    if jq is None:
        raise MissingBinaries("jq is not installed (hack/setup.sh installs the Debian package jq)")
    recipe = _blocks(_section("### Install with kubectl"), "sh")[0]
    setup, command = recipe.split("\n", 1)
    if not setup.startswith("dir=") or not command.startswith(PATCH_COMMAND + ' "$('):
        raise AssertionError(f"docs/gitops.md's kubectl recipe changed shape:\n{recipe}")
    jq_command = command.removeprefix(PATCH_COMMAND + ' "$(').rstrip().removesuffix(')"')
    completed = subprocess.run(
        ["bash", "-c", f"set -euo pipefail\n{setup}\n{jq_command}"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": str(Path(jq).parent) + ":/usr/bin:/bin"},
    )
    if completed.returncode != 0:
        raise AssertionError(f"the docs' jq command failed: {completed.stderr}")
    patch: dict[str, Any] = json.loads(completed.stdout)
    return patch


def docs_configmap() -> dict[str, Any]:
    """argocd-cm as docs/gitops.md writes it out (metadata and labels), its data the
    docs' kubectl recipe's patch merged in."""
    written = yaml.safe_load(_blocks(_section("### Install with kubectl"), "yaml")[0])
    return {**written, "data": {**written["data"], **docs_patch()["data"]}}


def helm_keys() -> dict[str, Path]:
    """The argocd-cm keys and files of the docs' Helm recipe (`--set-file` lines)."""
    recipe = _blocks(_section("### Install with the argo-cd Helm chart"), "sh")[0]
    found = {}
    for key, file in re.findall(r'--set-file "configs\.cm\.([^=]+)=\$dir/([^"]+)"', recipe):
        found[key.replace("\\.", ".")] = SCRIPTS / file
    return found


def write_argocd_cm(path: Path) -> Path:
    path.write_text(yaml.safe_dump(docs_configmap(), sort_keys=False))
    return path


def write_object(path: Path, obj: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(obj, sort_keys=False))
    return path


def run_health(obj_path: Path, cm_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(argocd_bin()),
            "admin",
            "settings",
            "resource-overrides",
            "health",
            str(obj_path),
            "--argocd-cm-path",
            str(cm_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # No kubeconfig is read with --argocd-cm-path; HOME keeps ~/.config/argocd out.
        env={"PATH": "/usr/bin:/bin", "HOME": str(cm_path.parent)},
    )


def health(obj_path: Path, cm_path: Path) -> Health:
    """Argo CD's health of the object in `obj_path` ("STATUS: ...\\nMESSAGE: ...")."""
    completed = run_health(obj_path, cm_path)
    if completed.returncode != 0:
        raise ArgoCDError(completed.stderr.strip() or completed.stdout.strip())
    found = re.fullmatch(r"STATUS: ([^\n]*)\nMESSAGE: (.*)\n", completed.stdout, flags=re.DOTALL)
    if found is None:
        raise ArgoCDError(f"unexpected output of argocd: {completed.stdout!r}")
    return Health(found.group(1), found.group(2))
