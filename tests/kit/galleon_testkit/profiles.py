"""Bounded CPU profiles for the benchmarks: kube-apiserver's own (pprof) and the
operator's (py-spy, a dev dependency, which samples the process from outside:
nothing in the operator changes for it). Each starts in a thread the caller joins.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from galleon_testkit.controlplane import ControlPlane


def profile_apiserver(plane: ControlPlane, path: Path | None, seconds: int = 30) -> Any:
    """Start a CPU profile of kube-apiserver (`/debug/pprof/profile`) for `seconds`,
    written to `path` (read it with `go tool pprof -top PATH`); returns the thread
    to join, or None without a path."""
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)

    def take() -> None:
        with path.open("wb") as out:
            subprocess.run(
                [
                    "kubectl",
                    f"--kubeconfig={plane.kubeconfig}",
                    "get",
                    "--raw",
                    f"/debug/pprof/profile?seconds={seconds}",
                ],
                stdout=out,
                check=True,
                timeout=seconds + 60,
            )

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def profile_operator(pid: int, path: Path | None, seconds: int = 30) -> Any:
    """Start a py-spy CPU profile of the operator for `seconds` (25 samples a second,
    each taken with the process paused for a moment: py-spy's non-blocking mode
    crashed on the operator), written to `path` as collapsed stacks; returns the
    thread to join, or None without a path. `top_frames` reads it; a profile that
    failed is said, and the run goes on."""
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(pid), "--duration", str(seconds)]
    command += ["--rate", "25", "--format", "raw", "--output", str(path)]

    def take() -> None:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=seconds + 60
        )
        if done.returncode != 0:
            print(f"py-spy failed ({done.returncode}): {done.stderr[-500:]}", file=sys.stderr)

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def top_frames(path: Path, count: int = 25) -> str:
    """The functions of a collapsed-stack profile with the most samples under them
    (`total`) and in them (`self`), as table rows."""
    total: dict[str, int] = {}
    own: dict[str, int] = {}
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]  # by function
        samples += int(n)
        for frame in set(frames):
            total[frame] = total.get(frame, 0) + int(n)
        own[frames[-1]] = own.get(frames[-1], 0) + int(n)

    def row(frame: str) -> str:
        under, inside = 100 * total[frame] / samples, 100 * own.get(frame, 0) / samples
        return f"| `{frame[:90]}` | {under:.1f} | {inside:.1f} |"

    rows = [f"| {samples} samples | total % | self % |", "|---|---|---|"]
    rows += [row(f) for f, _ in sorted(total.items(), key=lambda kv: -kv[1])[:count]]
    rows.append("| (most self time) | | |")
    rows += [row(f) for f, _ in sorted(own.items(), key=lambda kv: -kv[1])[:count]]
    return "\n".join(rows)
