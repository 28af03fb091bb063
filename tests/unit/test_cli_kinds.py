"""`kubectl galleon get` and `status` are made from one table entry per kind
(`galleon.cli.kinds.KINDS`): each entry becomes both commands, under its name and
hidden aliases, with the same options; and the plugin stays a client of the API
(it never imports the operator's controllers)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from galleon.cli import main as cli
from galleon.cli.kinds import KINDS, KindView


def invoke(*args: str) -> str:
    """What the command prints, with every run of whitespace as one space."""
    result = CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


@pytest.mark.parametrize("group", ["get", "status"])
def test_every_kind_is_a_command_of_get_and_status_with_hidden_aliases(group: str) -> None:
    listed = invoke(group, "--help")
    for view in KINDS:
        primary, *aliases = view.names
        assert f" {primary} " in listed
        for alias in aliases:
            assert f" {alias} " not in listed, f"{group} {alias} must stay hidden"
            assert invoke(group, alias, "--help") == invoke(group, primary, "--help").replace(
                f"{group} {primary}", f"{group} {alias}"
            )


@pytest.mark.parametrize("view", KINDS, ids=[view.kind.label for view in KINDS])
def test_each_kind_takes_the_same_options(view: KindView) -> None:
    got = invoke("get", view.names[0], "--help")
    for option in ("--watch", "--namespace", "--all-namespaces", "--kubeconfig", "--context"):
        assert option in got
    assert f"{view.title} name (none: list them)." in got
    waited = invoke("status", view.names[0], "--help")
    for option in ("--timeout", "--namespace", "--kubeconfig", "--context"):
        assert option in waited
    assert f"{view.title} name." in waited and view.status_metavar in waited


def test_the_plugin_never_imports_the_controllers() -> None:
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, galleon.cli.main; "
            "print(' '.join(m for m in sys.modules if m.startswith('galleon.controllers')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert imported.stdout.strip() == ""
