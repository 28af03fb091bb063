"""The Argo CD health checks in helm/galleon/argocd/, run by Argo CD itself.

Every entry of every health_test.yaml (Argo CD's own fixture format) is judged by the
real `argocd admin settings resource-overrides health`, with an argocd-cm made the way
docs/gitops.md installs the scripts (galleon_testkit.argocd): Argo CD's Lua sandbox
(gopher-lua, base, table and a reduced os, no string or math, a 1s limit), and its
status and message must equal the expectation. The fixtures must be objects the
operator could have written: they are checked against the CRDs in crds/ and the
status models.

`argocd` comes from hack/argocd.sh (hack/setup.sh), jq from hack/setup.sh. Without
them these tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from galleon.api.crd import kind_named
from galleon.api.imagebuild import BuildPhase
from galleon_testkit.argocd import (
    KEY_PREFIX,
    Health,
    docs_configmap,
    health,
    helm_keys,
    run_health,
    write_object,
)
from galleon_testkit.binaries import MissingBinaries
from galleon_testkit.cluster_fixtures import unavailable

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "helm" / "galleon" / "argocd"
GROUP = "galleon.dev"
SCRIPTS = {
    kind: ARGOCD / f"{GROUP}_{kind}.lua"
    for kind in ("ImageVersion", "ScaleSet", "Region", "ImageTemplate", "ImageBuild")
}
WITHOUT_HEALTH_CHECK = {
    "Gallery": "a home region and a prefix: nothing to roll out or wait for",
    "ImageDefinition": "its status only summarises its ImageVersions, which have their own check",
}
"""Kinds with conditions but no Argo CD health script, and why."""
MUST_REACH = {
    "ImageVersion": {"Healthy", "Progressing", "Degraded"},
    "ScaleSet": {"Healthy", "Progressing", "Degraded", "Suspended"},
    "Region": {"Healthy", "Progressing", "Degraded"},
    "ImageTemplate": {"Healthy", "Progressing", "Degraded"},
    "ImageBuild": {"Healthy", "Progressing", "Degraded"},
}
"""The health statuses each script's fixtures must show it returning."""


class _KubernetesLoader(yaml.SafeLoader):
    """YAML as the API server hands it to Argo CD: timestamps stay strings."""


_KubernetesLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load(path: Path) -> Any:
    return yaml.load(path.read_text(), Loader=_KubernetesLoader)


def health_test_files() -> list[Path]:
    return sorted(ARGOCD.rglob("health_test.yaml"))


def cases() -> list[tuple[Path, dict[str, Any]]]:
    """(fixture, expected healthStatus) for every entry of every health_test.yaml."""
    found = []
    for tests in health_test_files():
        for entry in load(tests)["tests"]:
            found.append((tests.parent / entry["inputPath"], entry["healthStatus"]))
    return found


CASES = cases()


def script_for(obj: dict[str, Any]) -> Path:
    """The script Argo CD would pick for `obj`: resource.customizations.health.<group>_<kind>."""
    group = obj["apiVersion"].split("/")[0]
    return ARGOCD / f"{group}_{obj['kind']}.lua"


@pytest.fixture(scope="module")
def argocd_cm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """argocd-cm with the shipped scripts, as docs/gitops.md installs them."""
    try:
        configmap = docs_configmap()
    except MissingBinaries as error:
        unavailable(str(error))
    path = tmp_path_factory.mktemp("argocd") / "argocd-cm.yaml"
    path.write_text(yaml.safe_dump(configmap, sort_keys=False))
    return path


def judge(obj: dict[str, Any], argocd_cm: Path, folder: Path) -> Health:
    """Argo CD's health of `obj`."""
    try:
        return health(write_object(folder / "object.yaml", obj), argocd_cm)
    except MissingBinaries as error:
        unavailable(str(error))
        raise


# The health checks ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "expected"), CASES, ids=[str(f.relative_to(ARGOCD)) for f, _ in CASES]
)
def test_health_check(
    fixture: Path, expected: dict[str, Any], argocd_cm: Path, tmp_path: Path
) -> None:
    assert judge(load(fixture), argocd_cm, tmp_path) == Health(
        expected["status"], expected["message"]
    )


@pytest.mark.parametrize("phase", [*typing.get_args(BuildPhase), None])
def test_an_image_builds_health_is_its_phase(
    phase: str | None, argocd_cm: Path, tmp_path: Path
) -> None:
    """Succeeded is Healthy, Failed Degraded, any other phase (or none) Progressing."""
    obj = load(ARGOCD / "testdata" / "imagebuild" / "building.yaml")
    obj["status"].pop("phase")
    if phase is not None:
        obj["status"]["phase"] = phase
    expected = {"Succeeded": "Healthy", "Failed": "Degraded"}.get(phase or "", "Progressing")
    assert judge(obj, argocd_cm, tmp_path).status == expected


@pytest.mark.parametrize("ready", ["True", "False", None])
@pytest.mark.parametrize("phase", [*typing.get_args(BuildPhase), None])
def test_an_image_templates_health_is_ready_then_its_last_build(
    ready: str | None, phase: str | None, argocd_cm: Path, tmp_path: Path
) -> None:
    """Ready=True is Healthy whatever the last build; else a failed last build is
    Degraded, anything else Progressing."""
    obj = load(ARGOCD / "testdata" / "imagetemplate" / "building.yaml")
    conditions = obj["status"]["conditions"]
    if ready is None:
        conditions[:] = [c for c in conditions if c["type"] != "Ready"]
    else:
        next(c for c in conditions if c["type"] == "Ready")["status"] = ready
    obj["status"]["lastBuild"] = {"name": "hardened-ubuntu-3"} | ({"phase": phase} if phase else {})
    expected = "Progressing"
    if ready == "True" or phase == "Failed":
        expected = "Healthy" if ready == "True" else "Degraded"
    assert judge(obj, argocd_cm, tmp_path).status == expected


def test_argocd_gives_argocd_cm_scripts_no_string_or_math_and_a_time_limit(
    argocd_cm: Path, tmp_path: Path
) -> None:
    """What the scripts must do without (docs/gitops.md): Argo CD refuses a script that
    uses the string or math library or a string method, or runs past its limit, and
    turns a status it does not know into Unknown."""
    configmap = yaml.safe_load(argocd_cm.read_text())
    region = write_object(tmp_path / "region.yaml", load(ARGOCD / "testdata/region/healthy.yaml"))
    for body, refused in (
        (
            'return {status = "Healthy", message = string.format("%d", 1)}',
            "(nil) with key 'format'",
        ),
        (
            'return {status = "Healthy", message = tostring(math.floor(1.5))}',
            "(nil) with key 'floor'",
        ),
        ('return {status = "Healthy", message = ("x"):upper()}', "(string) with key 'upper'"),
        ("while true do end", "context deadline exceeded"),
        ('return {status = "Fine", message = ""}', None),
    ):
        configmap["data"][f"{KEY_PREFIX}{GROUP}_Region"] = body + "\n"
        cm = write_object(tmp_path / "argocd-cm.yaml", configmap)
        try:
            result = run_health(region, cm)
        except MissingBinaries as error:
            unavailable(str(error))
        if refused is None:
            assert result.returncode == 0, result.stderr
            assert result.stdout.startswith("STATUS: Unknown\n"), result.stdout
            continue
        assert result.returncode != 0, (body, result.stdout)
        assert refused in result.stderr + result.stdout, (body, result.stderr)


def test_the_docs_recipes_install_every_script_under_its_key() -> None:
    """The kubectl recipe (its jq command, run), the ConfigMap written out and the Helm
    recipe's --set-file lines all put each shipped script under
    resource.customizations.health.<group>_<kind>."""
    expected = {f"{KEY_PREFIX}{GROUP}_{kind}": path for kind, path in SCRIPTS.items()}
    try:
        configmap = docs_configmap()
    except MissingBinaries as error:
        unavailable(str(error))
    assert configmap["data"] == {key: path.read_text() for key, path in expected.items()}
    assert (configmap["metadata"]["name"], configmap["metadata"]["namespace"]) == (
        "argocd-cm",
        "argocd",
    )
    assert helm_keys() == expected


# The scripts and fixtures --------------------------------------------------------------------


def test_the_scripts_are_the_known_ones() -> None:
    assert sorted(p.name for p in ARGOCD.glob("*.lua")) == sorted(p.name for p in SCRIPTS.values())


def test_every_kind_with_conditions_has_a_health_check_or_a_reason() -> None:
    kinds_with_conditions = set()
    for path in sorted((REPO / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        status = schema["properties"].get("status", {}).get("properties", {})
        if "conditions" in status:
            kinds_with_conditions.add(crd["spec"]["names"]["kind"])
    assert kinds_with_conditions == set(SCRIPTS) | set(WITHOUT_HEALTH_CHECK)
    assert all(SCRIPTS[kind].is_file() for kind in SCRIPTS)


def test_every_fixture_is_tested_and_every_outcome_reached() -> None:
    tested = {fixture.resolve() for fixture, _ in CASES}
    on_disk = {p.resolve() for p in (ARGOCD / "testdata").rglob("*.yaml")}
    assert on_disk == tested, "fixtures without a health_test.yaml entry, or entries without one"
    assert len(CASES) >= 12
    reached: dict[str, set[str]] = {kind: set() for kind in SCRIPTS}
    for fixture, expected in CASES:
        obj = load(fixture)
        assert fixture.parent.name == obj["kind"].lower(), fixture
        assert script_for(obj) in SCRIPTS.values(), fixture
        reached[obj["kind"]].add(expected["status"])
    for kind, statuses in MUST_REACH.items():
        assert statuses <= reached[kind], f"{kind}: no fixture is {statuses - reached[kind]}"


def strict(node: Any) -> Any:
    """A CRD schema as JSON Schema refusing unknown fields, as the API server prunes them."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: strict(v) for k, v in node.items()}
    if node.pop("nullable", False) and "type" in node:
        node["type"] = [node["type"], "null"]
    if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        node["additionalProperties"] = False
    return node


def crd_schema(kind: str) -> dict[str, Any]:
    for path in (REPO / "crds").glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        if crd["spec"]["names"]["kind"] == kind:
            return strict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    raise AssertionError(f"no CRD for {kind}")


@pytest.mark.parametrize(
    "fixture", [f for f, _ in CASES], ids=[str(f.relative_to(ARGOCD)) for f, _ in CASES]
)
def test_fixtures_are_objects_the_operator_writes(fixture: Path) -> None:
    obj = load(fixture)
    assert obj["apiVersion"] == f"{GROUP}/v1alpha1"
    errors = [
        ".".join(map(str, e.absolute_path)) + ": " + e.message
        for e in jsonschema.Draft7Validator(crd_schema(obj["kind"])).iter_errors(obj)
    ]
    assert errors == []
    kind = kind_named(obj["kind"])
    kind.spec.model_validate(obj["spec"])
    if "status" not in obj:
        return
    kind.status.model_validate(obj["status"])
    assert isinstance(obj["status"]["observedGeneration"], int)
    assert obj["status"]["observedGeneration"] <= obj["metadata"]["generation"]
    for condition in obj["status"]["conditions"]:
        assert list(condition) == [
            "type",
            "status",
            "observedGeneration",
            "lastTransitionTime",
            "reason",
            "message",
        ], condition
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", condition["lastTransitionTime"])
        # Only the types a pass writes move on (SourceResolved is written once).
        assert condition["observedGeneration"] <= obj["status"]["observedGeneration"]
    by_type = {c["type"]: c for c in obj["status"]["conditions"]}
    if "Ready" in by_type:
        assert {"Ready", "Reconciling", "Stalled"} <= set(by_type), "the kstatus trio"
        assert by_type["Ready"]["observedGeneration"] == obj["status"]["observedGeneration"]


FORBIDDEN = {
    r"\bstring\.|\bmath\.|\bos\.|\bio\.|\bdebug\.|\brequire\b|\bload\w*\s*\(": (
        "a library Argo CD does not give argocd-cm scripts"
    ),
    r"\bgoto\b|//|<const>|<close>|\butf8\.|table\.unpack|[&|]|<<|>>|~(?!=)": (
        "Lua 5.2+ syntax or library that gopher-lua (Lua 5.1) lacks"
    ),
    r"[\w\])]:\w+\s*[(\"{]": "a method call (strings have no methods there)",
}


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_scripts_stay_within_what_argocd_runs(kind: str) -> None:
    """Static check, for the paths no fixture reaches: code without comments and strings."""
    code = "\n".join(line.split("--", 1)[0] for line in SCRIPTS[kind].read_text().splitlines())
    code = re.sub(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'', '""', code)
    for pattern, why in FORBIDDEN.items():
        found = re.search(pattern, code)
        assert found is None, f"{SCRIPTS[kind].name}: {found.group(0)!r}: {why}"


def test_the_docs_show_the_region_script_as_it_is() -> None:
    docs = (REPO / "docs" / "gitops.md").read_text()
    script = SCRIPTS["Region"].read_text()
    indented = "".join(f"    {line}\n" if line else "\n" for line in script.splitlines())
    assert indented in docs, "docs/gitops.md must embed galleon.dev_Region.lua unchanged"
