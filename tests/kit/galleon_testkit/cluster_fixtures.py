"""pytest fixtures: one real control plane per session, a namespace per test, the operator.

Loaded as a plugin by `tests/conftest.py`. Rules of this module:

- The control plane is session-scoped (it starts in a few seconds, but tests
  should not pay that each time); everything a test creates lives in its own
  namespace, or carries the test's name when it is cluster-scoped, so tests do
  not see each other's objects.
- When the binaries are missing the integration tests are skipped with the
  command that builds them, except under `CI=true`, where that is a failure:
  nothing that matters may be skipped in CI.
- The session's apiserver enforces galleon's admission policy (the chart's,
  `galleon_testkit.admission`) before the first test runs.
- The operator runs as a real child process (`python -m galleon.main`, launched
  by `galleon_testkit.operator`) against the control plane, verbose, watching the
  namespaces it is given (every namespace when none); its log is attached to the
  report of a failed test.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace

from galleon_testkit.admission import install_admission_policy
from galleon_testkit.binaries import REPO_ROOT, MissingBinaries
from galleon_testkit.chart import NAMESPACE, of_kind, render
from galleon_testkit.controlplane import ControlPlane, ControlPlaneError
from galleon_testkit.operator import OperatorProcess
from galleon_testkit.osimages import MissingBusybox
from galleon_testkit.processes import ProcessFailed, log_tail
from galleon_testkit.realnode import RealNode, RealNodeUnavailable
from galleon_testkit.waiting import wait_for

#: Regions (and fake nodes per region) of the session's control plane: the examples'.
SESSION_REGIONS = {"westcentralus": 1, "southcentralus": 1, "eastus2": 2}
#: The region of the session's real node (beside its kwok nodes, which it taints away).
REAL_NODE_REGION = "eastus2"
OPERATOR_LOGS = pytest.StashKey[list[Path]]()
KopfPeering = create_namespaced_resource("kopf.dev", "v1", "KopfPeering", "kopfpeerings")


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> None:
    """Skip locally; fail under CI=true (a missing control plane, registry or tool is a
    failure there)."""
    if in_ci():
        pytest.fail(f"CI=true and something the test needs is missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, KCM, scheduler and kwok with the CRDs and galleon's
    admission policy (the chart's, enforced) installed."""
    plane = ControlPlane(tmp_path_factory.mktemp("control-plane"), regions=SESSION_REGIONS)
    try:
        plane.start()
    except MissingBinaries as error:
        unavailable(str(error))
    except ControlPlaneError as error:
        pytest.fail(f"the control plane did not start: {error}", pytrace=False)
    try:
        plane.apply_crds(REPO_ROOT / "crds")
        try:
            plane.startup_seconds["admission policy"] = install_admission_policy(plane)
        except MissingBinaries as error:
            unavailable(str(error))
        print(f"\ncontrol plane up: {plane.summary()}", file=sys.stderr)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def real_node(control_plane: ControlPlane) -> Iterator[RealNode]:
    """A real node (containerd + kubelet, `galleon_testkit.realnode`) in region
    `REAL_NODE_REGION` of the session's plane, started on first use; at the end of the
    session it is stopped and nothing it ran or mounted may be left."""
    try:
        node = control_plane.add_real_node(REAL_NODE_REGION)
    except (RealNodeUnavailable, MissingBinaries, MissingBusybox) as error:
        unavailable(str(error))
    except (ProcessFailed, TimeoutError) as error:
        pytest.fail(
            f"the real node did not start: {error}\n{control_plane.log_tails()}", pytrace=False
        )
    print(f"\nreal node {node.name} up: {node.startup_seconds}", file=sys.stderr)
    yield node
    node.stop(control_plane.client())
    left = node.leftovers()
    assert not left, f"the real node {node.name} left behind: {left}"


@pytest.fixture
def real_volumes(control_plane: ControlPlane, real_node: RealNode) -> RealNode:
    """The real node, with every released local volume emptied and back in the pool."""
    control_plane.recycle_real_volumes()
    return real_node


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


@pytest.fixture
def second_namespace(kube: Client, namespace: str) -> Iterator[str]:
    """Another fresh namespace beside the test's own (`<namespace>-2`), deleted
    afterwards (without waiting)."""
    name = f"{namespace}-2"[:63]
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    yield name
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, name)


@pytest.fixture
def operator_client(control_plane: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """galleon's own API client (`galleon.kube.client`) in this process, pointed at the
    session's control plane, for tests that drive controller code without an operator."""
    from galleon.kube import client as galleon_client

    monkeypatch.setenv("KUBECONFIG", str(control_plane.kubeconfig))
    monkeypatch.setattr(galleon_client, "_client", None)
    yield


def apply_yaml(client: Any, text: str, namespace: str | None = None) -> list[Any]:
    """Server-side apply every document of a YAML text (as the admin); return the objects."""
    applied = []
    for resource in codecs.load_all_yaml(text):
        applied.append(client.apply(resource, namespace=namespace, force=True))
    return applied


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
        operator = OperatorProcess(
            kubeconfig or control_plane.kubeconfig,
            log,
            namespaces=namespaces or [],
            all_namespaces=not namespaces,
            verbose=True,
            extra=extra or [],
            extra_env={"PYTHONUNBUFFERED": "1"},
        )
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


@pytest.fixture(scope="session")
def chart_identity(control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Install the rendered chart's ServiceAccount, RBAC (the operator's and the user
    roles) and peering CRDs once per session; return a kubeconfig that acts as that
    ServiceAccount, for tests that run the operator with exactly the chart's rights."""
    admin = control_plane.client()
    documents = render(["--set", "crds.enabled=false"])
    admin.apply(
        codecs.from_dict(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
        ),
        force=True,
    )
    wanted = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition")
    installed = [d for d in documents if d["kind"] in wanted]
    for document in installed:
        admin.apply(codecs.from_dict(document), force=True)
    wait_for(
        lambda: list(admin.list(KopfPeering, namespace=NAMESPACE)) == [],
        timeout=30,
        description="kopf's peering CRDs served",
    )
    account = of_kind(documents, "ServiceAccount")[0]["metadata"]["name"]
    kubeconfig = control_plane.kubeconfig_for_service_account(
        NAMESPACE, account, tmp_path_factory.mktemp("sa") / "operator.kubeconfig"
    )
    return kubeconfig
