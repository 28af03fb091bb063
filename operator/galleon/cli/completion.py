"""Shell completion of `kubectl galleon`, from the commands themselves (typer's click
tree), so a new command or option completes without anything to regenerate.

Two ways in, both answered by the same tree:
- `kubectl galleon <TAB>` (kubectl 1.26 and later, with `kubectl completion` loaded):
  kubectl runs `kubectl_complete-galleon ARGS... WORD` (the console script next to
  `kubectl-galleon`) and reads cobra's answer: one completion a line (`value<TAB>help`),
  then `:<directive>` (`complete_cobra`).
- `kubectl-galleon <TAB>`: the script `kubectl galleon completion bash|zsh|fish` prints
  is typer's, calling the plugin back with `_KUBECTL_GALLEON_COMPLETE` set.

Rules of this module: no new dependency (typer's pinned click does the parsing, and
`CobraComplete` uses two of its private helpers, checked by tests/unit/test_cli_plugin.py
whenever typer moves); a completion never reaches the cluster (names of objects are not
completed).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from typer._click.shell_completion import (
    CompletionItem,
    ShellComplete,
    _resolve_context,
    _resolve_incomplete,
)
from typer.completion import completion_init, get_completion_script
from typer.main import get_command

PROG_NAME = "kubectl-galleon"
COMPLETE_VAR = "_KUBECTL_GALLEON_COMPLETE"
NO_FILE_COMPLETION = 4
"""cobra's ShellCompDirectiveNoFileComp: offer only the completions given."""
DEFAULT_COMPLETION = 0
"""cobra's ShellCompDirectiveDefault: the shell completes file names."""
DIRECTORIES_ONLY = 16
"""cobra's ShellCompDirectiveFilterDirs: the shell completes directory names."""


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


class CobraComplete(ShellComplete):
    """Completions in the format of cobra's `__complete` (what kubectl reads from a
    plugin's `kubectl_complete-<plugin>`)."""

    name = "cobra"
    source_template = ""
    """No script: kubectl is the shell side."""

    def __init__(self, app: typer.Typer, words: Sequence[str]) -> None:
        super().__init__(get_command(app), {}, PROG_NAME, COMPLETE_VAR)
        self.words = list(words) or [""]

    def source_vars(self) -> dict[str, Any]:
        return {}

    def get_completion_args(self) -> tuple[list[str], str]:
        """The words before the one completed, and that word."""
        return self.words[:-1], self.words[-1]

    def get_completions(self, args: list[str], incomplete: str) -> list[CompletionItem]:
        """click's completions, and file names for a path (`--kubeconfig`), which typer
        leaves to no one."""
        ctx = _resolve_context(self.cli, self.ctx_args, self.prog_name, list(args))
        target, incomplete = _resolve_incomplete(ctx, list(args), incomplete)
        descriptor = getattr(target, "type_descriptor", None)
        if descriptor is not None and descriptor.is_path:
            return [CompletionItem(incomplete, type="file")]
        return target.shell_complete(ctx, incomplete)

    def format_completion(self, item: CompletionItem) -> str:
        help_ = " ".join((item.help or "").split())
        return f"{item.value}\t{help_}" if help_ else str(item.value)


def complete_cobra(app: typer.Typer, words: Sequence[str]) -> str:
    """cobra's answer for the command line `kubectl galleon WORDS` (the last word is the
    one being completed, "" after a space).

    >>> import typer
    >>> demo = typer.Typer()
    >>> _ = demo.command("pause")(lambda: None)
    >>> _ = demo.command("plan")(lambda: None)
    >>> print(complete_cobra(demo, ["pa"]))
    pause
    :4
    """
    completer = CobraComplete(app, words)
    items = completer.get_completions(*completer.get_completion_args())
    kinds = {item.type for item in items}
    if "file" in kinds:  # a path option: the shell knows the files
        return f":{DEFAULT_COMPLETION}"
    if "dir" in kinds:
        return f":{DIRECTORIES_ONLY}"
    lines = [completer.format_completion(item) for item in items]
    return "\n".join([*lines, f":{NO_FILE_COMPLETION}"])


def script(shell: Shell) -> str:
    """The completion script of `shell` for the `kubectl-galleon` command."""
    return get_completion_script(prog_name=PROG_NAME, complete_var=COMPLETE_VAR, shell=shell)


def completion(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", show_default=False)],
) -> None:
    """Print the completion script of SHELL for `kubectl-galleon` (for `kubectl galleon`,
    kubectl's own completion runs `kubectl_complete-galleon`: docs/kubectl-plugin.md)."""
    typer.echo(script(shell))


def register(app: typer.Typer) -> None:
    """Add `completion bash|zsh|fish` to `app`, and typer's shell classes, which answer
    the script's call back (typer adds them only with its own completion options)."""
    completion_init()
    app.command(
        "completion",
        help=(
            "Print a shell completion script for kubectl-galleon: "
            "source <(kubectl galleon completion bash). `kubectl galleon <TAB>` completes "
            "through kubectl_complete-galleon, installed with the plugin."
        ),
    )(completion)


def main(app: Any, words: Sequence[str]) -> None:
    """`kubectl_complete-galleon WORDS...`: print cobra's answer for `app`."""
    typer.echo(complete_cobra(app, words))
