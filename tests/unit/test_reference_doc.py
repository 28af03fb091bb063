"""docs/reference.md is generated from the API models and must not go stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_reference_matches_the_models() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "hack" / "gen_reference.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
