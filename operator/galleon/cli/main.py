"""`kubectl galleon`: see and steer image replication and ScaleSet rollouts.

kubectl runs any `kubectl-galleon` on PATH as `kubectl galleon ...`; `pip install
galleon` puts it there. docs/kubectl-plugin.md shows every command and its output.

Rules of this module:
- Every command takes `-n/--namespace`, `--kubeconfig` and `--context` (and
  `-A/--all-namespaces` where it lists), after the command as with kubectl.
- What is printed comes from `galleon.cli.render` (pure), decisions of `status`
  from `galleon.cli.outcome` (pure); this module only reads, patches and loops.
- A failure prints one `error: ...` line on stderr and exits 1; `status` exits 0
  (done), 1 (failed) or 2 (timed out), as docs/kubectl-plugin.md documents.
- Writes are JSON merge patches of exactly the fields a command owns
  (`spec.paused`, one annotation), so they never undo someone else's change.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from galleon.cli import render
from galleon.cli.cluster import CliError, Cluster, Kind, NotFound, Unreachable
from galleon.cli.outcome import (
    DURATION_HELP,
    EXIT_FAILED,
    EXIT_TIMEOUT,
    Outcome,
    arrow,
    format_duration,
    imageversion_outcome,
    parse_duration,
    scaleset_outcome,
)
from galleon.core.instances import CANCEL_ANNOTATION, START_ANNOTATION
from galleon.kube.resources import ImageDefinition, ImageVersion, ScaleSet

POLL_SECONDS = 1.0
EXIT_INTERRUPTED = 130
SCALESET = Kind(ScaleSet, "scaleset")
IMAGEVERSION = Kind(ImageVersion, "imageversion")
IMAGEDEFINITION = Kind(ImageDefinition, "imagedefinition")

app = typer.Typer(
    name="kubectl-galleon",
    help="See and steer galleon: image replication per region and ScaleSet rollouts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
get_app = typer.Typer(
    help="Show one ScaleSet or ImageVersion in detail, or list them.", no_args_is_help=True
)
status_app = typer.Typer(
    help="Wait until a ScaleSet or ImageVersion is done: exit 0 done, 1 failed, 2 timed out.",
    no_args_is_help=True,
)
app.add_typer(get_app, name="get")
app.add_typer(status_app, name="status")

# -- options every command shares -----------------------------------------------------

NamespaceOption = Annotated[
    str | None,
    typer.Option(
        "--namespace",
        "-n",
        help="Namespace (default: the context's namespace, else default).",
        show_default=False,
    ),
]
AllNamespacesOption = Annotated[
    bool, typer.Option("--all-namespaces", "-A", help="List across all namespaces.")
]
KubeconfigOption = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config, else in-cluster).",
        show_default=False,
    ),
]
ContextOption = Annotated[
    str | None,
    typer.Option(
        "--context", help="kubeconfig context (default: the current context).", show_default=False
    ),
]
WatchOption = Annotated[
    bool,
    typer.Option("--watch", "-w", help="Keep the view up to date (every second) until Ctrl-C."),
]
TimeoutOption = Annotated[
    str, typer.Option("--timeout", help=f"How long to wait: {DURATION_HELP}.")
]
ScaleSetName = Annotated[
    str, typer.Argument(help="ScaleSet name.", metavar="NAME", show_default=False)
]

P = ParamSpec("P")
R = TypeVar("R")


def _sleep(seconds: float) -> None:
    """The one place commands wait (tests replace it)."""
    time.sleep(seconds)


def _now() -> datetime:
    return datetime.now(UTC)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


PIPED_WIDTH = 250
"""Columns when stdout is not a terminal: rows stay whole for grep, awk and CI logs."""


def _out() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = PIPED_WIDTH
    return console


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _say(message: str, style: str = "") -> None:
    _out().print(Text(message, style=style), soft_wrap=True)


def _complain(message: str) -> None:
    _err().print(Text(message, style="red"), soft_wrap=True)


def reported(function: Callable[P, R]) -> Callable[P, R]:
    """Run a command; a `CliError` becomes `error: <message>` on stderr and exit 1."""

    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except CliError as error:
            _complain(f"error: {error}")
            raise typer.Exit(EXIT_FAILED) from None

    return wrapper


def _connect(kubeconfig: Path | None, context: str | None, namespace: str | None) -> Cluster:
    return Cluster(kubeconfig, context, namespace)


def _no_name_with_all(name: str | None, all_namespaces: bool) -> None:
    if name is not None and all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces (drop -A)")


# -- showing, once or live ------------------------------------------------------------------


def _show(view: Callable[[], RenderableType], watch: bool) -> None:
    """Print `view()` once, or keep it up to date until Ctrl-C.

    In a terminal the view is redrawn in place (rich Live); in a pipe or a CI log
    each view that differs from the previous one is printed below it."""
    console = _out()
    if not watch:
        console.print(view())
        return
    try:
        if console.is_terminal:
            _watch_live(view, console)
        else:
            _watch_lines(view, console)
    except KeyboardInterrupt:
        return


def _fresh(view: Callable[[], RenderableType], last: RenderableType | None) -> RenderableType:
    """The view, or the last one with a note while the API server cannot be reached."""
    try:
        return view()
    except Unreachable as error:
        note = Text(f"{error} (retrying)", style="red")
        return Group(last, note) if last is not None else note


def _watch_live(view: Callable[[], RenderableType], console: Console) -> None:
    footer = Text(f"every {format_duration(POLL_SECONDS)}; Ctrl-C to stop", style="dim")
    current = _fresh(view, None)
    with Live(
        Group(current, footer), console=console, auto_refresh=False, vertical_overflow="visible"
    ) as live:
        while True:
            _sleep(POLL_SECONDS)
            current = _fresh(view, current)
            live.update(Group(current, footer), refresh=True)


def _watch_lines(view: Callable[[], RenderableType], console: Console) -> None:
    last: RenderableType | None = None
    printed = ""
    while True:
        current = _fresh(view, last)
        snapshot = render.to_text(current, console.width)
        if snapshot != printed:
            if printed:
                console.print(Text(f"--- {_rfc3339(_now())}", style="dim"))
            console.print(current)
            printed = snapshot
        last = current
        _sleep(POLL_SECONDS)


# -- get ----------------------------------------------------------------------------------


def get_scaleset(
    name: Annotated[
        str | None,
        typer.Argument(help="ScaleSet name (none: list them).", metavar="NAME", show_default=False),
    ] = None,
    watch: WatchOption = False,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Versions, instances by version and health, the rolling upgrade and conditions."""
    _no_name_with_all(name, all_namespaces)
    cluster = _connect(kubeconfig, context, namespace)
    if name is None:
        _show(
            lambda: render.scaleset_list(
                cluster.list(SCALESET, all_namespaces), _now(), all_namespaces
            ),
            watch,
        )
    else:
        _show(lambda: render.scaleset_view(cluster.get(SCALESET, name)), watch)


def get_imageversion(
    name: Annotated[
        str | None,
        typer.Argument(
            help="ImageVersion name (none: list them).", metavar="NAME", show_default=False
        ),
    ] = None,
    watch: WatchOption = False,
    namespace: NamespaceOption = None,
    all_namespaces: AllNamespacesOption = False,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Replication of one ImageVersion per region, or the list of them."""
    _no_name_with_all(name, all_namespaces)
    cluster = _connect(kubeconfig, context, namespace)
    if name is None:
        _show(
            lambda: render.imageversion_list(
                cluster.list(IMAGEVERSION, all_namespaces), _now(), all_namespaces
            ),
            watch,
        )
    else:
        _show(lambda: render.replication_view(cluster.get(IMAGEVERSION, name)), watch)


def _register(
    group: typer.Typer, names: tuple[str, ...], function: Callable[..., Any], help_: str
) -> None:
    """One command under its name, and hidden aliases (plural, short name)."""
    command = reported(function)
    group.command(names[0], help=help_)(command)
    for alias in names[1:]:
        group.command(alias, help=help_, hidden=True)(command)


_register(
    get_app,
    ("scaleset", "scalesets", "ss"),
    get_scaleset,
    "Show a ScaleSet: versions, instances by version and health, the rolling upgrade "
    "with its progress, conditions. Without NAME: list ScaleSets.",
)
_register(
    get_app,
    ("imageversion", "imageversions", "iv"),
    get_imageversion,
    "Show an ImageVersion's replication per region. Without NAME: list ImageVersions.",
)


# -- status ---------------------------------------------------------------------------------


def _timeout(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--timeout'") from None


def _wait(
    fetch: Callable[[], Mapping[str, Any]],
    decide: Callable[[Mapping[str, Any]], Outcome],
    what: str,
    timeout: float,
) -> None:
    """Poll until `decide` says done or failed, or `timeout` passes; exit accordingly."""
    deadline = time.monotonic() + timeout
    said = ""
    outcome = Outcome("waiting", "not read yet")
    try:
        while True:
            try:
                outcome = decide(fetch())
            except Unreachable as error:  # keep waiting through an API server restart
                outcome = Outcome("waiting", f"{error} (retrying)")
            if outcome.state == "done":
                _say(f"{what} is ready: {outcome.message}", "green")
                raise typer.Exit(0)
            if outcome.state == "failed":
                _complain(f"{what} failed: {outcome.message}")
                raise typer.Exit(EXIT_FAILED)
            if outcome.message != said:
                _say(f"waiting for {what}: {outcome.message}")
                said = outcome.message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _complain(
                    f"timed out after {format_duration(timeout)} waiting for {what}: "
                    f"{outcome.message}"
                )
                raise typer.Exit(EXIT_TIMEOUT)
            _sleep(min(POLL_SECONDS, remaining))
    except KeyboardInterrupt:
        _complain(f"interrupted while waiting for {what}: {outcome.message}")
        raise typer.Exit(EXIT_INTERRUPTED) from None


def status_scaleset(
    name: ScaleSetName,
    timeout: TimeoutOption = "10m",
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Wait until the ScaleSet is Ready for its current spec with no upgrade rolling
    forward (exit 0); exit 1 if its upgrade is Faulted, 2 on timeout."""
    seconds = _timeout(timeout)
    cluster = _connect(kubeconfig, context, namespace)
    _wait(
        lambda: cluster.get(SCALESET, name),
        scaleset_outcome,
        f"scaleset {name}",
        seconds,
    )


def status_imageversion(
    name: Annotated[
        str, typer.Argument(help="ImageVersion name.", metavar="IMAGEVERSION", show_default=False)
    ],
    timeout: TimeoutOption = "10m",
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Wait until the ImageVersion is replicated everywhere (exit 0); exit 1 if its
    replication Failed, 2 on timeout."""
    seconds = _timeout(timeout)
    cluster = _connect(kubeconfig, context, namespace)
    _wait(
        lambda: cluster.get(IMAGEVERSION, name),
        imageversion_outcome,
        f"imageversion {name}",
        seconds,
    )


_register(
    status_app,
    ("scaleset", "scalesets", "ss"),
    status_scaleset,
    "Wait until a ScaleSet is Ready with no upgrade rolling forward: exit 0; "
    "1 if the upgrade Faulted; 2 on timeout.",
)
_register(
    status_app,
    ("imageversion", "imageversions", "iv"),
    status_imageversion,
    "Wait until an ImageVersion is replicated to every target region: exit 0; "
    "1 if replication Failed; 2 on timeout.",
)


# -- versions and replication ------------------------------------------------------------------


@app.command(
    "versions",
    help=(
        "Versions of an ImageDefinition with their replication per region, and the "
        "latest version per region (what ScaleSets following latest run)."
    ),
)
@reported
def versions(
    definition: Annotated[
        str, typer.Argument(help="ImageDefinition name.", metavar="DEFINITION", show_default=False)
    ],
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Versions of an ImageDefinition with their replication per region, and the
    latest version per region (what ScaleSets following "latest" run)."""
    cluster = _connect(kubeconfig, context, namespace)
    try:
        found: dict[str, Any] | None = cluster.get(IMAGEDEFINITION, definition)
    except NotFound:
        found = None
    mine = [
        v
        for v in cluster.list(IMAGEVERSION)
        if (v.get("spec") or {}).get("imageDefinitionName") == definition
    ]
    if found is None and not mine:
        raise NotFound(f"imagedefinition {definition} not found in namespace {cluster.namespace}")
    _out().print(render.versions_view(definition, mine, found))


@app.command(
    "replication",
    help=(
        "Replication of an ImageVersion per region: state, progress bar, replicas, "
        "bytes and details."
    ),
)
@reported
def replication(
    name: Annotated[
        str, typer.Argument(help="ImageVersion name.", metavar="IMAGEVERSION", show_default=False)
    ],
    watch: WatchOption = False,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Replication of an ImageVersion: per region state, progress bar, replicas,
    bytes and details."""
    cluster = _connect(kubeconfig, context, namespace)
    _show(lambda: render.replication_view(cluster.get(IMAGEVERSION, name)), watch)


# -- controls ---------------------------------------------------------------------------------


def _running(obj: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The rolling upgrade if one is rolling forward."""
    upgrade = (obj.get("status") or {}).get("rollingUpgrade") or {}
    code = (upgrade.get("runningStatus") or {}).get("code")
    return upgrade if code == "RollingForward" else None


def _set_paused(
    name: str, paused: bool, namespace: str | None, kubeconfig: Path | None, context: str | None
) -> None:
    cluster = _connect(kubeconfig, context, namespace)
    before = cluster.get(SCALESET, name)
    was = bool((before.get("spec") or {}).get("paused"))
    cluster.merge_patch(SCALESET, name, {"spec": {"paused": paused}})
    where = f"scaleset {name} in namespace {cluster.namespace}"
    if was == paused:
        _say(f"{where} was already {'paused' if paused else 'not paused'} (spec.paused={paused})")
        return
    upgrade = _running(before)
    if paused:
        doing = (
            f"the upgrade {arrow(upgrade.get('fromVersion'), upgrade.get('toVersion'))} stops "
            f"after batch {upgrade.get('currentBatch') or 0}"
            if upgrade
            else "no upgrade is running; none starts until resumed"
        )
        _say(f"paused {where} (spec.paused=true): {doing}")
    else:
        doing = (
            f"the upgrade {arrow(upgrade.get('fromVersion'), upgrade.get('toVersion'))} continues"
            if upgrade
            else "upgrades proceed again"
        )
        _say(f"resumed {where} (spec.paused=false): {doing}")


@app.command(
    "pause",
    help=("Pause a ScaleSet: its upgrade stops after the running batch (spec.paused: true)."),
)
@reported
def pause(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Pause a ScaleSet's upgrade after its running batch (spec.paused: true)."""
    _set_paused(name, True, namespace, kubeconfig, context)


@app.command(
    "resume",
    help=("Resume a paused ScaleSet (spec.paused: false)."),
)
@reported
def resume(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Resume a paused ScaleSet (spec.paused: false)."""
    _set_paused(name, False, namespace, kubeconfig, context)


def _annotate(cluster: Cluster, name: str, key: str) -> datetime:
    """Set annotation `key` to now (RFC 3339, to the second); return that time."""
    moment = _now().replace(microsecond=0)
    cluster.merge_patch(SCALESET, name, {"metadata": {"annotations": {key: _rfc3339(moment)}}})
    return moment


@app.command(
    "cancel",
    help=(
        "Cancel a ScaleSet's running upgrade after its current batch (annotation "
        "galleon.dev/cancel-upgrade set to now)."
    ),
)
@reported
def cancel(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Cancel a ScaleSet's running upgrade after its current batch (annotation
    galleon.dev/cancel-upgrade set to now)."""
    cluster = _connect(kubeconfig, context, namespace)
    before = cluster.get(SCALESET, name)
    stamp = _rfc3339(_annotate(cluster, name, CANCEL_ANNOTATION))
    upgrade = _running(before)
    done = f"annotated scaleset {name} in namespace {cluster.namespace} {CANCEL_ANNOTATION}={stamp}"
    if upgrade:
        _say(
            f"{done}: the upgrade {arrow(upgrade.get('fromVersion'), upgrade.get('toVersion'))} "
            f"stops after batch {upgrade.get('currentBatch') or 0}"
        )
    else:
        _say(f"{done}: no upgrade is rolling forward now, so there is nothing to cancel")


@app.command(
    "upgrade",
    help=(
        "Start an upgrade of a ScaleSet to its target version (annotation "
        "galleon.dev/start-upgrade set to now): in Manual mode, or to retry a faulted "
        "target."
    ),
)
@reported
def upgrade(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Start an upgrade of a ScaleSet to its target version (annotation
    galleon.dev/start-upgrade set to now): Manual mode, or retrying a faulted target."""
    cluster = _connect(kubeconfig, context, namespace)
    before = cluster.get(SCALESET, name)
    moment = _annotate(cluster, name, START_ANNOTATION)
    status = before.get("status") or {}
    done = (
        f"annotated scaleset {name} in namespace {cluster.namespace} "
        f"{START_ANNOTATION}={_rfc3339(moment)}"
    )
    running = _running(before)
    last_start = render.parse_time(
        ((status.get("rollingUpgrade") or {}).get("runningStatus") or {}).get("startTime")
    )
    if running:
        _say(
            f"{done}: the upgrade {arrow(running.get('fromVersion'), running.get('toVersion'))} "
            "is already rolling forward"
        )
    elif last_start is not None and moment <= last_start:
        _say(
            f"{done}: the last upgrade started at {_rfc3339(last_start)}, not before this "
            "request, so the operator ignores it; run the command again in a second",
            "yellow",
        )
    else:
        target = status.get("targetVersion") or "-"
        _say(
            f"{done}: the operator upgrades the instances to {target} "
            f"(now on {status.get('currentVersion') or '-'})"
        )


@app.command(
    "history",
    help=("The last OS upgrades of a ScaleSet, newest first (status.upgradeHistory)."),
)
@reported
def history(
    name: ScaleSetName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """The last OS upgrades of a ScaleSet, newest first (status.upgradeHistory)."""
    cluster = _connect(kubeconfig, context, namespace)
    obj = cluster.get(SCALESET, name)
    console = _out()
    console.print(
        render.heading(
            "UPGRADE HISTORY", Text(f"scaleset {name} in {cluster.namespace}, newest first")
        )
    )
    console.print(render.history_view(obj))


def main() -> None:  # pragma: no cover - the console script calls `app` directly
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
