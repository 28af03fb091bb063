"""The two loops of `kubectl galleon`: keep a view up to date (`--watch`) and wait for
an object to be done (`status`).

Rules of this module:
- The loops never sleep by themselves: the command hands them `sleep` (tests replace
  it to step through changes), and they read the time from `galleon.clock`.
- An API server that stops answering is not the end: the loops say so and retry.
- `wait` ends the process with the outcome's exit code: 0 done, 1 failed (at the
  first poll that says so: a Stalled object fails at once), 2 timed out, 130
  interrupted (docs/kubectl-plugin.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from galleon import clock
from galleon.cli import render
from galleon.cli.cluster import Unreachable
from galleon.cli.console import complain, out, say
from galleon.cli.outcome import EXIT_FAILED, EXIT_TIMEOUT, Outcome, format_duration
from galleon.core import times

POLL_SECONDS = 1.0
EXIT_INTERRUPTED = 130

Sleep = Callable[[float], None]
View = Callable[[], RenderableType]


# -- --watch ----------------------------------------------------------------------------


def show(view: View, watch: bool, sleep: Sleep) -> None:
    """Print `view()` once, or keep it up to date until Ctrl-C.

    In a terminal the view is redrawn in place (rich Live); in a pipe or a CI log
    each view that differs from the previous one is printed below it."""
    console = out()
    if not watch:
        console.print(view())
        return
    try:
        if console.is_terminal:
            _watch_live(view, console, sleep)
        else:
            _watch_lines(view, console, sleep)
    except KeyboardInterrupt:
        return


def _fresh(view: View, last: RenderableType | None) -> RenderableType:
    """The view, or the last one with a note while the API server cannot be reached."""
    try:
        return view()
    except Unreachable as error:
        note = Text(f"{error} (retrying)", style="red")
        return Group(last, note) if last is not None else note


def _watch_live(view: View, console: Console, sleep: Sleep) -> None:
    footer = Text(f"every {format_duration(POLL_SECONDS)}; Ctrl-C to stop", style="dim")
    current = _fresh(view, None)
    with Live(
        Group(current, footer), console=console, auto_refresh=False, vertical_overflow="visible"
    ) as live:
        while True:
            sleep(POLL_SECONDS)
            current = _fresh(view, current)
            live.update(Group(current, footer), refresh=True)


def _watch_lines(view: View, console: Console, sleep: Sleep) -> None:
    last: RenderableType | None = None
    printed = ""
    while True:
        current = _fresh(view, last)
        snapshot = render.to_text(current, console.width)
        if snapshot != printed:
            if printed:
                console.print(Text(f"--- {times.format(clock.now())}", style="dim"))
            console.print(current)
            printed = snapshot
        last = current
        sleep(POLL_SECONDS)


# -- status -----------------------------------------------------------------------------


def wait(
    fetch: Callable[[], Mapping[str, Any]],
    decide: Callable[[Mapping[str, Any]], Outcome],
    what: str,
    timeout: float,
    sleep: Sleep,
) -> None:
    """Poll until `decide` says done or failed, or `timeout` passes; exit accordingly."""
    deadline = clock.monotonic() + timeout
    said = ""
    outcome = Outcome("waiting", "not read yet")
    try:
        while True:
            try:
                outcome = decide(fetch())
            except Unreachable as error:  # keep waiting through an API server restart
                outcome = Outcome("waiting", f"{error} (retrying)")
            if outcome.state == "done":
                say(f"{what} is ready: {outcome.message}", "green")
                raise typer.Exit(0)
            if outcome.state == "failed":
                complain(f"{what} failed: {outcome.message}")
                raise typer.Exit(EXIT_FAILED)
            if outcome.message != said:
                say(f"waiting for {what}: {outcome.message}")
                said = outcome.message
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                complain(
                    f"timed out after {format_duration(timeout)} waiting for {what}: "
                    f"{outcome.message}"
                )
                raise typer.Exit(EXIT_TIMEOUT)
            sleep(min(POLL_SECONDS, remaining))
    except KeyboardInterrupt:
        complain(f"interrupted while waiting for {what}: {outcome.message}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
