"""`kubectl galleon dashboard` as a user sees it: the real command in a subprocess
against the real control plane and operator, opened in headless Chromium (Debian's
`chromium`, driven by Playwright without a browser download of its own).

The page is judged by what it shows: the gallery's version grid with the regions a
version reached as Completed, then, while a real rollout runs, the ScaleSet's
instances moving to the new version batch by batch, and the upgrade Completed in
its history. Every wait is on the page's DOM (or the API), with a bounded timeout.

With GALLEON_DASHBOARD_SCREENSHOT=PATH the test saves a screenshot of the page in
the middle of the rollout to PATH (docs/images/dashboard-rollout.png comes from it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.fleets import FleetHarness
from galleon_testkit.processes import free_port
from galleon_testkit.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.fleet(versions=("1.0.0", "1.0.2"))]
PAGE_SECONDS = 60_000
"""Milliseconds the page may take to show what the API shows (Playwright's unit)."""
ROLLOUT_SECONDS = 180_000
CAPACITY = 10
SCREENSHOT = os.environ.get("GALLEON_DASHBOARD_SCREENSHOT")


@pytest.fixture
def browser() -> Iterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        unavailable("chromium is not installed (hack/setup.sh installs Debian's chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (the [dev] extra pins it)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            launched.close()


class Dashboards:
    """Starts `kubectl galleon dashboard -n NAMESPACE` on free 127.0.0.1 ports and stops
    each at teardown (checking it exited cleanly)."""

    def __init__(self, namespace: str, folder: Path) -> None:
        self.namespace, self.folder = namespace, folder
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, kubeconfig: Path, all_namespaces: bool = False) -> str:
        port = free_port()
        log = self.folder / f"dashboard-{port}.log"
        command = [sys.executable, "-m", "galleon.cli.main", "dashboard", "--port", str(port)]
        command += ["-A"] if all_namespaces else ["-n", self.namespace]
        command += ["--kubeconfig", str(kubeconfig)]
        url = f"http://127.0.0.1:{port}/"
        with log.open("w") as output:
            process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        self.started.append((process, log))
        wait_for(
            lambda: url in log.read_text() or process.poll() is not None,
            timeout=30,
            description=f"the dashboard to print {url}",
        )
        assert process.poll() is None, log.read_text()
        scope = "all namespaces" if all_namespaces else f"namespace {self.namespace}"
        assert f"galleon dashboard of {scope}: {url}" in log.read_text()
        return url

    def stop(self) -> None:
        for process, log in self.started:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)
            assert process.returncode == 0, log.read_text()


@pytest.fixture
def dashboards(namespace: str, tmp_path: Path) -> Iterator[Dashboards]:
    started = Dashboards(namespace, tmp_path)
    yield started
    started.stop()


@pytest.fixture
def dashboard(control_plane: Any, dashboards: Dashboards) -> str:
    """The URL of a dashboard of the test's namespace, with the admin's kubeconfig."""
    return dashboards.start(control_plane.kubeconfig)


def count(page: Any, selector: str) -> int:
    return int(page.locator(selector).count())


def instances_on(version: str) -> str:
    return f'[data-scaleset="web"] [data-testid="instance"][data-version="{version}"]'


def request(url: str, method: str, headers: dict[str, str] | None = None) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    sent = urllib.request.Request(url, data=b"{}", method=method, headers=headers or {})
    if method == "GET":
        sent = urllib.request.Request(url, method="GET", headers=headers or {})
    try:
        with opener.open(sent, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_the_dashboard_shows_replication_and_a_rollout_live(
    fleet: FleetHarness, dashboard: str, browser: Any
) -> None:
    fleet.scaleset("web", CAPACITY, annotations={"galleon.test/ready-delay": "2s"})
    fleet.wait_fleet("web", "1.0.0", CAPACITY)
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(dashboard)

    # The gallery, its definition and the version grid: 1.0.0 Completed in both regions.
    row = page.locator('[data-gallery="gallery"] [data-definition="os"] [data-version="1.0.0"]')
    for region in (fleet.east, fleet.west):
        cell = row.locator(f'[data-testid="region-cell"][data-region="{region}"]')
        cell.locator('[data-testid="region-state"]').filter(has_text="Completed").wait_for(
            timeout=PAGE_SECONDS
        )
    assert row.locator('[data-testid="version-state"]').inner_text() == "Completed"

    # The ScaleSet's instances, all on 1.0.0 and healthy.
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length === n",
        arg=[instances_on("1.0.0") + '[data-health="Healthy"]', CAPACITY],
        timeout=PAGE_SECONDS,
    )

    # A new version reaches the region: the grid gets its row, the rollout starts and
    # the page shows the instances moving over while some are still on 1.0.0.
    fleet.publish("1.0.2", [fleet.east, fleet.west], wait=False)
    page.locator('[data-version="1.0.2"] [data-testid="version-state"]').wait_for(
        timeout=PAGE_SECONDS
    )
    page.wait_for_function(
        "([newer, older]) => document.querySelectorAll(newer).length >= 4"
        " && document.querySelectorAll(older).length >= 2",
        arg=[instances_on("1.0.2"), instances_on("1.0.0")],
        timeout=ROLLOUT_SECONDS,
    )
    scaleset = page.locator('[data-testid="scaleset"][data-scaleset="web"]')
    assert scaleset.locator('[data-testid="upgrade-code"]').inner_text() == "RollingForward"
    mixed = (count(page, instances_on("1.0.2")), count(page, instances_on("1.0.0")))
    assert mixed[0] < CAPACITY and mixed[1] < CAPACITY, mixed
    if SCREENSHOT:
        Path(SCREENSHOT).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOT, full_page=True)

    # The end: every instance on 1.0.2 and healthy, the upgrade Completed in the history,
    # and the batches' events listed.
    page.wait_for_function(
        "([selector, n]) => document.querySelectorAll(selector).length === n",
        arg=[instances_on("1.0.2") + '[data-health="Healthy"]', CAPACITY],
        timeout=ROLLOUT_SECONDS,
    )
    scaleset.locator('[data-testid="upgrade-code"]').filter(has_text="Completed").wait_for(
        timeout=ROLLOUT_SECONDS
    )
    scaleset.locator('[data-testid="history-result"]').filter(has_text="Completed").wait_for(
        timeout=PAGE_SECONDS
    )
    scaleset.locator('[data-testid="events"]').filter(has_text="BatchStarted").wait_for(
        timeout=PAGE_SECONDS
    )
    assert scaleset.locator('[data-testid="upgraded"]').inner_text() == f"{CAPACITY} of {CAPACITY}"
    assert count(page, '[data-testid="problems"]') == 0
    status = fleet.status("web")
    assert status["rollingUpgrade"]["runningStatus"]["code"] == "Completed"
    page.close()

    # Read only: nothing but GET and HEAD, and only under its own address.
    for path in ("", "api/state", "api/stream"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert request(dashboard + path, method) == 405, (method, path)
    assert request(dashboard + "api/state", "GET") == 200
    assert request(dashboard + "api/state", "GET", {"Host": "rebound.example:80"}) == 403


def test_names_and_messages_from_the_cluster_are_shown_as_text(
    fleet: FleetHarness, dashboard: str, browser: Any
) -> None:
    """A message with markup in it (an event's, written by anyone who can create
    events) shows as the literal text, and runs no script."""
    hostile = "<img src=x onerror=\"document.title='owned'\"><b>bold</b>"
    fleet.kube.create(
        _event(fleet.namespace, "web", hostile),
        namespace=fleet.namespace,
    )
    fleet.scaleset("web", 1)
    page = browser.new_page()
    page.goto(dashboard)
    events = page.locator('[data-scaleset="web"] [data-testid="events"]')
    events.filter(has_text=hostile).wait_for(timeout=PAGE_SECONDS)
    assert count(page, '[data-testid="events"] img') == 0
    assert count(page, '[data-testid="events"] b') == 0
    assert page.title() == "galleon dashboard"
    page.close()


def _event(namespace: str, name: str, message: str) -> Any:
    from lightkube.models.core_v1 import EventSource, ObjectReference
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.resources.core_v1 import Event

    return Event(
        metadata=ObjectMeta(generateName=f"{name}.", namespace=namespace),
        involvedObject=ObjectReference(
            apiVersion="galleon.dev/v1alpha1", kind="ScaleSet", name=name, namespace=namespace
        ),
        reason="Hostile",
        message=message,
        type="Normal",
        source=EventSource(component="test"),
        firstTimestamp=datetime(2026, 12, 3, tzinfo=UTC),
        lastTimestamp=datetime(2026, 12, 3, tzinfo=UTC),
    )


def test_a_refused_watch_is_said_on_the_page_and_the_rest_stays_live(
    control_plane: Any,
    kube: Any,
    namespace: str,
    dashboards: Dashboards,
    browser: Any,
    tmp_path: Path,
) -> None:
    """A user who may read galleon's objects and pods but not events: the page says
    which watch is refused, and still shows what the others see."""
    from lightkube import codecs

    resources = ["galleries", "imagedefinitions", "imageversions", "scalesets"]
    for document in (
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": "dashboard-reader", "namespace": namespace},
            "rules": [
                {
                    "apiGroups": ["galleon.dev"],
                    "resources": resources,
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "dashboard-reader", "namespace": namespace},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "dashboard-reader",
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}
            ],
        },
    ):
        kube.create(codecs.from_dict(document), namespace=namespace)
    viewer = control_plane.kubeconfig_for_user("viewer", tmp_path / "viewer.kubeconfig")
    url = dashboards.start(viewer)
    page = browser.new_page()
    page.goto(url)
    # The binding may take a moment to be in force: until then other watches are
    # refused too, and retried.
    page.wait_for_function(
        """() => {
            const problems = document.querySelector('[data-testid="problems"]');
            const text = problems ? problems.textContent : "";
            return text.includes("watch of events: not allowed")
                && !/watch of (galleries|imagedefinitions|imageversions|scalesets|pods)/.test(text)
                && document.body.dataset.synced === "true";
        }""",
        timeout=PAGE_SECONDS,
    )
    assert "no scalesets" in page.locator("main").inner_text()
    page.close()


def test_all_namespaces_shows_each_object_with_its_namespace(
    control_plane: Any, kube: Any, namespace: str, dashboards: Dashboards, browser: Any
) -> None:
    from lightkube import codecs

    gallery = {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "Gallery",
        "metadata": {"name": "everywhere", "namespace": namespace},
        "spec": {"location": "nowhere", "description": "<script>document.title='owned'</script>"},
    }
    kube.create(codecs.from_dict(gallery), namespace=namespace)
    url = dashboards.start(control_plane.kubeconfig, all_namespaces=True)
    page = browser.new_page()
    page.goto(url)
    shown = page.locator('[data-testid="gallery"][data-gallery="everywhere"]')
    shown.filter(has_text=f"namespace {namespace}").wait_for(timeout=PAGE_SECONDS)
    assert "<script>document.title='owned'</script>" in shown.inner_text()
    assert page.locator("#scope").inner_text() == "all namespaces"
    assert page.title() == "galleon dashboard"
    page.close()
