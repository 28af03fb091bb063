"""The README's main command works: `hack/demo.py --once` runs the whole demo."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from galleon_testkit.binaries import REPO_ROOT
from galleon_testkit.cluster_fixtures import in_ci
from galleon_testkit.realnode import missing_requirements

pytestmark = pytest.mark.integration


def test_the_demo_replicates_the_examples_and_rolls_the_scaleset_out(tmp_path: Path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "hack" / "demo.py"),
            "--once",
            f"--workdir={tmp_path}",
            "--image-mib=8",
        ],
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output
    assert "ubuntu-server-1-0-0: Completed (3/3 regions)" in output
    assert "ubuntu-server-1-0-2: Completed (3/3 regions)" in output
    assert "build hardened-g1 (Created): Succeeded" in output, output[-4000:]
    assert "ubuntu-server-hardened-1.0.0: Completed (3/3 regions)" in output
    assert "ubuntu-server-hardened-1.0.2: Completed (3/3 regions)" in output
    assert "per region: eastus2=1.0.2, southcentralus=1.0.2, westcentralus=1.0.2" in output, output[
        -4000:
    ]
    assert "scaleset web: instances 1.0.0=10(10 healthy)" in output
    assert "RollingForward 1.0.0 -> 1.0.2 batch 1/5" in output
    assert "upgrade history: 1.0.0 -> 1.0.2 Completed" in output
    assert "stopped everything." in output
    assert "dashboard: http://127.0.0.1:" in output, output[:4000]
    if missing_requirements() and not in_ci():
        return  # the demo said why and ran on kwok's nodes
    # On a real node: the instances really ran each version and answered over HTTP.
    assert "real node real-eastus2-0 up" in output, output
    answers = [line for line in output.splitlines() if "instances answer over HTTP" in line]
    assert any(line.count("=1.0.0") == 10 for line in answers), answers
    assert any(line.count("=1.0.2") == 10 for line in answers), answers
