"""The chart's alert rules, judged by promtool (built by hack/prometheus.sh): they
load and lint clean, and tests/promtool/*.yaml unit-test every alert with series that
make it fire and series that leave it silent. Mutated rules (an alert that can never
fire, a `for:` dropped) must make those unit tests fail.

Integration tests: they need helm (hack/envtest.sh) and promtool, not a cluster.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from galleon_testkit.binaries import REPO_ROOT, MissingBinaries
from galleon_testkit.cluster_fixtures import unavailable
from galleon_testkit.prometheus import chart_rule_groups, promtool, write_rule_file

pytestmark = pytest.mark.integration
UNIT_TESTS = sorted((REPO_ROOT / "tests" / "promtool").glob("*.yaml"))
RULE_FILE = "galleon-rules.yaml"  # the name tests/promtool/*.yaml load


@pytest.fixture(scope="module")
def groups() -> list[dict[str, Any]]:
    try:
        version = promtool("--version")
        rendered = chart_rule_groups()
    except MissingBinaries as error:
        unavailable(str(error))
        raise
    assert version.returncode == 0, version.stderr
    return rendered


@pytest.fixture
def rules(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in groups for rule in group["rules"]]


def unit_test_folder(folder: Path, rule_groups: list[dict[str, Any]] | None = None) -> Path:
    """`folder` with the unit tests and the rule file they load (the chart's, or these)."""
    for test in UNIT_TESTS:
        shutil.copy(test, folder / test.name)
    if rule_groups is None:
        write_rule_file(folder / RULE_FILE)
    else:
        (folder / RULE_FILE).write_text(yaml.safe_dump({"groups": rule_groups}, sort_keys=False))
    return folder


def run_unit_tests(folder: Path) -> tuple[int, str]:
    completed = promtool("test", "rules", *(test.name for test in UNIT_TESTS), cwd=folder)
    return completed.returncode, completed.stdout + completed.stderr


def test_promtool_checks_and_lints_the_chart_rules(rules: list[Any], tmp_path: Path) -> None:
    rule_file = write_rule_file(tmp_path / RULE_FILE)
    completed = promtool("check", "rules", "--lint=all", "--lint-fatal", str(rule_file))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"SUCCESS: {len(rules)} rules found" in completed.stdout


def test_every_alert_has_tests_that_fire_and_tests_that_stay_silent(rules: list[Any]) -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for path in UNIT_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    alerts = {rule["alert"] for rule in rules if "alert" in rule}
    assert len(alerts) >= 4
    assert alerts - fires == set(), "alerts no unit test makes fire"
    assert alerts - silent == set(), "alerts no unit test checks silent"


def test_the_promtool_unit_tests_pass(rules: list[Any], tmp_path: Path) -> None:
    code, output = run_unit_tests(unit_test_folder(tmp_path))
    assert code == 0, output
    assert "SUCCESS" in output


@pytest.mark.parametrize("mutation", ["never fires", "no for"])
def test_the_unit_tests_catch_a_mutated_alert(
    groups: list[Any], rules: list[Any], tmp_path: Path, mutation: str
) -> None:
    names = [rule["alert"] for rule in rules if mutation == "never fires" or "for" in rule]
    assert names
    for name in names:
        mutated = copy.deepcopy(groups)
        for rule in (rule for group in mutated for rule in group["rules"]):
            if rule.get("alert") != name:
                continue
            if mutation == "never fires":
                rule["expr"] = f"({rule['expr']}) unless on () vector(1)"
            else:
                del rule["for"]
        folder = tmp_path / f"{name}-{mutation.replace(' ', '-')}"
        folder.mkdir()
        code, output = run_unit_tests(unit_test_folder(folder, mutated))
        assert code != 0, f"{name} with {mutation!r} passed the unit tests:\n{output}"
        assert name in output
