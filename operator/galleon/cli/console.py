"""Where `kubectl galleon` prints: stdout for what a command shows, stderr for what
went wrong, and the one place a `CliError` becomes `error: ...` and exit 1.

Rules of this module: cluster text is printed as literal text (never rich markup);
when stdout is not a terminal, rows stay whole (PIPED_WIDTH) for grep, awk and CI logs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from galleon.cli.cluster import CliError
from galleon.cli.outcome import EXIT_FAILED

PIPED_WIDTH = 250
"""Columns when stdout is not a terminal: rows stay whole for grep, awk and CI logs."""

P = ParamSpec("P")
R = TypeVar("R")


def out() -> Console:
    """The console for what a command shows."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


def err() -> Console:
    return Console(stderr=True, highlight=False)


def say(message: str, style: str = "") -> None:
    """One line of news on stdout (`paused scaleset web ...`)."""
    out().print(Text(message, style=style), soft_wrap=True)


def complain(message: str) -> None:
    """One line of bad news on stderr."""
    err().print(Text(message, style="red"), soft_wrap=True)


def reported(function: Callable[P, R]) -> Callable[P, R]:
    """Run a command; a `CliError` becomes `error: <message>` on stderr and exit 1."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except CliError as error:
            complain(f"error: {error}")
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper
