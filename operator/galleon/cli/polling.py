"""The loops of `kubectl galleon`: keep a view up to date (`--watch`), follow an
object that ends (`get imagebuild NAME --watch`) and wait for an object to be done
(`status`, `build --wait`).

Rules of this module:
- The loops never sleep by themselves: the command hands them `sleep` (tests replace
  it to step through changes), and they read the time from `galleon.clock`. A watch
  waits on the API server instead, never longer than the request it makes.
- What they read comes as observations (`Seen`): the object, or the `Unreachable`
  error of a read that failed. `polled` reads every second; `watched` reads the object
  once, then each change from a watch of the API, request after bounded request
  (`WATCH_SECONDS` at most, the deadline's remainder when there is one).
- An API server that stops answering is not the end: the loops say so and retry.
- `wait` ends the process with the outcome's exit code: 0 done, 1 failed (at the
  first observation that says so: a Stalled object fails at once), 2 timed out, 130
  interrupted (docs/kubectl-plugin.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from galleon import clock
from galleon.cli import render
from galleon.cli.cluster import Expired, Unreachable
from galleon.cli.console import complain, out, say
from galleon.cli.outcome import EXIT_FAILED, EXIT_TIMEOUT, Outcome, format_duration
from galleon.core import times

POLL_SECONDS = 1.0
WATCH_SECONDS = 60
"""The longest one watch request lasts before the API server ends it and it is made again."""
EXIT_INTERRUPTED = 130

Sleep = Callable[[float], None]
View = Callable[[], RenderableType]
Seen = Mapping[str, Any] | Unreachable
"""One observation of an object: as read, or why it could not be read."""
Changes = Callable[[str, int], Iterable[Mapping[str, Any]]]
"""One watch request: the object after each change since a resourceVersion, for seconds."""


# -- observations -----------------------------------------------------------------------


def polled(fetch: Callable[[], Mapping[str, Any]], timeout: float, sleep: Sleep) -> Iterator[Seen]:
    """`fetch()` every `POLL_SECONDS`, until `timeout` has passed."""
    deadline = clock.monotonic() + timeout
    while True:
        try:
            yield fetch()
        except Unreachable as error:  # keep waiting through an API server restart
            yield error
        remaining = deadline - clock.monotonic()
        if remaining <= 0:
            return
        sleep(min(POLL_SECONDS, remaining))


def watched(
    fetch: Callable[[], Mapping[str, Any]],
    changes: Changes,
    timeout: float | None,
    sleep: Sleep,
) -> Iterator[Seen]:
    """The object as `fetch()` reads it, then after each change `changes` reports, until
    `timeout` has passed (None: for ever). A watch that ends is made again from the last
    version seen; one whose version expired, or a server that cannot be reached (said,
    then retried every `POLL_SECONDS`), starts again with `fetch()`."""
    deadline = None if timeout is None else clock.monotonic() + timeout
    while True:
        try:
            obj = fetch()
            yield obj
            version = _version(obj)
            while (seconds := _watch_seconds(deadline)) > 0:
                for obj in changes(version, seconds):
                    yield obj
                    version = _version(obj)
            return
        except Expired:
            pass
        except Unreachable as error:
            yield error
            if _watch_seconds(deadline) <= 0:
                return
            sleep(POLL_SECONDS)


def _version(obj: Mapping[str, Any]) -> str:
    return str(render.section(obj, "metadata").get("resourceVersion") or "")


def _watch_seconds(deadline: float | None) -> int:
    """How long the next watch request may last (0: the deadline has passed)."""
    if deadline is None:
        return WATCH_SECONDS
    remaining = deadline - clock.monotonic()
    return 0 if remaining <= 0 else min(WATCH_SECONDS, math.ceil(remaining))


# -- --watch ----------------------------------------------------------------------------


def show(view: View, watch: bool, sleep: Sleep) -> None:
    """Print `view()` once, or keep it up to date (read every `POLL_SECONDS`) until Ctrl-C.

    In a terminal the view is redrawn in place (rich Live); in a pipe or a CI log
    each view that differs from the previous one is printed below it."""
    console = out()
    if not watch:
        console.print(view())
        return
    _keep_showing(
        _polled_views(view, sleep),
        console,
        Text(f"every {format_duration(POLL_SECONDS)}; Ctrl-C to stop", style="dim"),
    )


def follow(
    observations: Iterable[Seen],
    detail: Callable[[Mapping[str, Any]], RenderableType],
    ended: Callable[[Mapping[str, Any]], bool],
) -> None:
    """Show `detail` of each observation (as `show` does) until one has `ended`, or Ctrl-C."""
    _keep_showing(
        _followed_views(observations, detail, ended),
        out(),
        Text("following its changes until it ends; Ctrl-C to stop", style="dim"),
    )


def _unreachable(error: Unreachable, last: RenderableType | None) -> RenderableType:
    """The last view with a note while the API server cannot be reached."""
    note = Text(f"{error} (retrying)", style="red")
    return Group(last, note) if last is not None else note


def _polled_views(view: View, sleep: Sleep) -> Iterator[RenderableType]:
    current: RenderableType | None = None
    while True:
        try:
            current = view()
        except Unreachable as error:
            current = _unreachable(error, current)
        yield current
        sleep(POLL_SECONDS)


def _followed_views(
    observations: Iterable[Seen],
    detail: Callable[[Mapping[str, Any]], RenderableType],
    ended: Callable[[Mapping[str, Any]], bool],
) -> Iterator[RenderableType]:
    last: RenderableType | None = None
    for seen in observations:
        if isinstance(seen, Unreachable):
            yield _unreachable(seen, last)
            continue
        last = detail(seen)
        yield last
        if ended(seen):
            return


def _keep_showing(views: Iterator[RenderableType], console: Console, footer: Text) -> None:
    try:
        if console.is_terminal:
            _live(views, console, footer)
        else:
            _lines(views, console)
    except KeyboardInterrupt:
        return


def _live(views: Iterator[RenderableType], console: Console, footer: Text) -> None:
    current = next(views, None)
    if current is None:
        return
    with Live(
        Group(current, footer), console=console, auto_refresh=False, vertical_overflow="visible"
    ) as live:
        for current in views:
            live.update(Group(current, footer), refresh=True)
        live.update(current, refresh=True)  # the views ended: the last one, without the footer


def _lines(views: Iterator[RenderableType], console: Console) -> None:
    printed = ""
    for current in views:
        snapshot = render.to_text(current, console.width)
        if snapshot != printed:
            if printed:
                console.print(Text(f"--- {times.format(clock.now())}", style="dim"))
            console.print(current)
            printed = snapshot


# -- status -----------------------------------------------------------------------------


def wait(
    observations: Iterable[Seen],
    decide: Callable[[Mapping[str, Any]], Outcome],
    what: str,
    timeout: float,
) -> None:
    """Read `observations` until `decide` says done or failed, or they end (the
    `timeout` they were made with has passed); exit accordingly."""
    said = ""
    outcome = Outcome("waiting", "not read yet")
    try:
        for seen in observations:
            if isinstance(seen, Unreachable):
                outcome = Outcome("waiting", f"{seen} (retrying)")
            else:
                outcome = decide(seen)
            if outcome.state == "done":
                say(f"{what} is ready: {outcome.message}", "green")
                raise typer.Exit(0)
            if outcome.state == "failed":
                complain(f"{what} failed: {outcome.message}")
                raise typer.Exit(EXIT_FAILED)
            if outcome.message != said:
                say(f"waiting for {what}: {outcome.message}")
                said = outcome.message
        complain(
            f"timed out after {format_duration(timeout)} waiting for {what}: {outcome.message}"
        )
        raise typer.Exit(EXIT_TIMEOUT)
    except KeyboardInterrupt:
        complain(f"interrupted while waiting for {what}: {outcome.message}")
        raise typer.Exit(EXIT_INTERRUPTED) from None
