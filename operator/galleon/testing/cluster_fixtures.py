"""pytest fixtures: one real control plane per session, a namespace per test, the operator.

Loaded as a plugin by `tests/conftest.py`. Rules of this module:

- The control plane is session-scoped (it starts in a few seconds, but tests
  should not pay that each time); everything a test creates lives in its own
  namespace, or carries the test's name when it is cluster-scoped, so tests do
  not see each other's objects.
- When the binaries are missing the integration tests are skipped with the
  command that builds them, except under `CI=true`, where that is a failure:
  nothing that matters may be skipped in CI.
- The operator runs as a real child process (`python -m galleon.main`) against
  the control plane; its log is attached to the report of a failed test.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from galleon.testing.binaries import REPO_ROOT, MissingBinaries
from galleon.testing.controlplane import ControlPlane, ControlPlaneError
from galleon.testing.processes import ManagedProcess, free_port, http_ok, log_tail
from galleon.testing.waiting import wait_for

#: Regions (and fake nodes per region) of the session's control plane: the examples'.
SESSION_REGIONS = {"westcentralus": 1, "southcentralus": 1, "eastus2": 2}
OPERATOR_LOGS = pytest.StashKey[list[Path]]()


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI=true (a missing control plane is a failure there)."""
    if in_ci():
        pytest.fail(f"CI=true and the control plane is unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, KCM, scheduler and kwok with the CRDs installed."""
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"), regions=SESSION_REGIONS)
    try:
        plane.start()
    except MissingBinaries as error:
        unavailable(str(error))
    except ControlPlaneError as error:
        pytest.fail(f"the control plane did not start: {error}", pytrace=False)
    try:
        plane.apply_crds(REPO_ROOT / "crds")
        print(f"\ncontrol plane up: {plane.summary()}", file=sys.stderr)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kube(control_plane: ControlPlane) -> Client:
    """An admin lightkube client for the session's control plane."""
    return control_plane.client()


def short_name(nodeid: str, prefix: str = "t") -> str:
    """A DNS-label name derived from a test id, unique and readable.

    Example: short_name("tests/x.py::test_pvc_binds[a]") -> "t-test-pvc-binds-a-3f2a1c".
    """
    test = nodeid.split("::")[-1].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", test).strip("-")[:40].strip("-")
    digest = hashlib.sha256(nodeid.encode()).hexdigest()[:6]
    return f"{prefix}-{slug}-{digest}"


@pytest.fixture
def namespace(kube: Client, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (without waiting)."""
    name = short_name(request.node.nodeid)

    def created() -> bool:
        try:
            kube.create(Namespace(metadata=ObjectMeta(name=name)))
        except ApiError as error:
            if error.status.code == 409:  # a leftover of an interrupted run, terminating
                return False
            raise
        return True

    wait_for(created, timeout=120, description=f"namespace {name} to be created")
    yield name
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


def apply_yaml(client: Any, text: str, namespace: str | None = None) -> list[Any]:
    """Server-side apply every document of a YAML text (as the admin); return the objects."""
    applied = []
    for resource in codecs.load_all_yaml(text):
        applied.append(client.apply(resource, namespace=namespace, force=True))
    return applied


class OperatorProcess:
    """The real galleon operator, run as `python -m galleon.main` against a control plane.

    Example:
        op = operator_factory(namespaces=[namespace])
        ...                     # it reconciles what the test creates
        op.kill(); op.start()   # a crash and a restart mid-work
    """

    def __init__(
        self,
        plane: ControlPlane,
        log: Path,
        namespaces: list[str],
        extra: list[str],
        kubeconfig: Path | None = None,
    ) -> None:
        self.metrics_port = free_port()
        self.health_port = free_port()
        scope = [f"--namespace={ns}" for ns in namespaces] or ["--all-namespaces"]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        env["PYTHONUNBUFFERED"] = "1"
        self.process = ManagedProcess(
            "galleon-operator",
            [
                sys.executable,
                "-m",
                "galleon.main",
                f"--kubeconfig={kubeconfig or plane.kubeconfig}",
                *scope,
                f"--metrics-port={self.metrics_port}",
                f"--health-port={self.health_port}",
                "--bind-address=127.0.0.1",
                "--verbose",
                *extra,
            ],
            log,
            env=env,
        )
        self.log = log

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, timeout: float = 60.0) -> OperatorProcess:
        self.process.start()
        self.process.wait_until(
            lambda: http_ok(f"http://127.0.0.1:{self.health_port}/healthz"), timeout=timeout
        )
        return self

    def kill(self) -> None:
        """SIGKILL: a crash, no chance to clean up."""
        self.process.kill()

    def stop(self) -> None:
        self.process.signal_group(signal.SIGINT)
        self.process.stop(grace=15)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def operator_factory(
    control_plane: ControlPlane, request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Any]:
    """Start the galleon operator (a real process); stopped at teardown.

    `operator_factory(namespaces=[ns], extra=["--flag"], kubeconfig=path)` returns a
    started OperatorProcess (acting as the kubeconfig's user; default: admin). Its log
    is attached to the report when the test fails.
    """
    started: list[OperatorProcess] = []
    logs = request.node.stash.setdefault(OPERATOR_LOGS, [])

    def start(
        namespaces: list[str] | None = None,
        extra: list[str] | None = None,
        kubeconfig: Path | None = None,
    ) -> Any:
        log = tmp_path / f"operator-{len(started)}.log"
        operator = OperatorProcess(control_plane, log, namespaces or [], extra or [], kubeconfig)
        started.append(operator)
        logs.append(log)
        return operator.start()

    yield start
    for operator in started:
        operator.stop()


@pytest.fixture
def operator(operator_factory: Any, namespace: str) -> Any:
    """One operator watching the test's namespace (and the cluster-scoped Regions)."""
    return operator_factory(namespaces=[namespace])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the operator's log (and the control plane's on failure) to a failed test."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if report.when != "call" or not report.failed:
        return
    for path in item.stash.get(OPERATOR_LOGS, []):
        report.sections.append((f"galleon-operator log {path.name}", log_tail(path, 200)))
