"""The operator image's Dockerfile keeps the promises the chart relies on (it cannot
be built on machines without Docker, so its shape is checked here)."""

from __future__ import annotations

import tomllib

from galleon_testkit.binaries import REPO_ROOT

DOCKERFILE = (REPO_ROOT / "Dockerfile").read_text()


def final_stage() -> list[str]:
    stages = DOCKERFILE.split("\nFROM ")
    return [line.strip() for line in stages[-1].splitlines()]


def test_the_final_image_runs_the_console_script_as_the_chart_user() -> None:
    lines = final_stage()
    assert "USER 65532:65532" in lines
    entry = next(line for line in lines if line.startswith("ENTRYPOINT"))
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry == f'ENTRYPOINT ["{next(k for k in scripts if k == "galleon-operator")}"]'
    chart = (REPO_ROOT / "helm" / "galleon" / "templates" / "deployment.yaml").read_text()
    assert "runAsUser: 65532" in chart and "readOnlyRootFilesystem: true" in chart


def test_no_build_tools_reach_the_final_image() -> None:
    lines = final_stage()
    assert not any(line.startswith("RUN") for line in lines), "the final stage installs nothing"
    assert any(line.startswith("COPY --from=build /opt/galleon") for line in lines)
    assert "ARG PYTHON_IMAGE=python:3.11-slim-bookworm" in DOCKERFILE
