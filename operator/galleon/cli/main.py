"""`kubectl galleon`: see and steer image builds, image replication and ScaleSet rollouts.

kubectl runs any `kubectl-galleon` on PATH as `kubectl galleon ...`; `pip install
galleon` puts it there. docs/kubectl-plugin.md shows every command and its output.

Rules of this module:
- `get <kind>` and `status <kind>` are one implementation each (`get`, `status`),
  made into a command per entry of `galleon.cli.kinds.KINDS`: the kinds differ in
  their table entry, never in code. The ScaleSet controls live in
  `galleon.cli.controls`, `plan scaleset` in `galleon.cli.plan`, `create` in
  `galleon.cli.create`, `version` and `completion` in their own modules, the loops in
  `galleon.cli.polling`; `-o json|yaml` documents come from `galleon.cli.documents`.
- What is printed comes from `galleon.cli.render` (pure), decisions of `status`
  from `galleon.cli.outcome` (pure); the commands only read, patch and loop.
- A failure prints one `error: ...` line on stderr and exits 1; `status` exits 0
  (done), 1 (failed, Stalled included) or 2 (timed out), as docs/kubectl-plugin.md
  documents.
- Commands wait only through `_sleep` (tests replace it), or on a watch of the API
  (`galleon.cli.polling.watched`, for the kinds that end: ImageBuild).
- No `from __future__ import annotations` here: the per-kind commands are made in a
  function, and typer must read their annotations (which name the kind) as objects.
"""

import math
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from galleon import GROUP, VERSION, clock
from galleon.cli import completion, controls, create, dashboard, documents, plan, render, version
from galleon.cli.cluster import CliError, Cluster, NotFound
from galleon.cli.console import out, reported, say
from galleon.cli.documents import DocumentOutputOption, GetOutput, GetOutputOption
from galleon.cli.kinds import (
    IMAGEBUILD,
    IMAGEBUILD_VIEW,
    IMAGEDEFINITION,
    IMAGETEMPLATE,
    IMAGEVERSION,
    IMAGEVERSION_VIEW,
    KINDS,
    TEMPLATE_LABEL,
    KindView,
)
from galleon.cli.options import (
    AllNamespacesOption,
    ContextOption,
    ImageTemplateName,
    ImageVersionName,
    KubeconfigOption,
    NamespaceOption,
    TimeoutOption,
    WatchOption,
    watch_option,
)
from galleon.cli.outcome import decide, parse_duration
from galleon.cli.polling import Seen, follow, polled, show, wait, watched

app = typer.Typer(
    name="kubectl-galleon",
    help=(
        "See and steer galleon: image builds, image replication per region and ScaleSet rollouts."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
get_app = typer.Typer(
    help="Show one ScaleSet, ImageVersion or ImageBuild in detail, or list them.",
    no_args_is_help=True,
)
status_app = typer.Typer(
    help=(
        "Wait until a ScaleSet, ImageVersion or ImageBuild is done: exit 0 done, 1 failed "
        "(or Stalled), 2 timed out."
    ),
    no_args_is_help=True,
)
app.add_typer(get_app, name="get")
app.add_typer(status_app, name="status")


def _sleep(seconds: float) -> None:
    """The one place commands wait (tests replace it)."""
    time.sleep(seconds)


# -- get and status, for every kind ---------------------------------------------------------


def get(
    view: KindView,
    name: str | None,
    watch: bool,
    namespace: str | None,
    all_namespaces: bool,
    kubeconfig: Path | None,
    context: str | None,
    output: GetOutput | None = None,
) -> None:
    """`get <kind> NAME`: the kind's detail view; without NAME, its list. `-o json|yaml`:
    the object (or a List) as stored; `-o wide`: the list's row(s) with more columns."""
    if name is not None and all_namespaces:
        raise CliError("a resource cannot be retrieved by name across all namespaces (drop -A)")
    if watch and output in (GetOutput.json, GetOutput.yaml):
        raise CliError(f"--watch shows the live view: use it without -o {output}")
    cluster = Cluster(kubeconfig, context, namespace)

    def found() -> list[dict[str, Any]]:
        if name is None:
            return cluster.list(view.kind, all_namespaces)
        return [cluster.get(view.kind, name)]

    if output in (GetOutput.json, GetOutput.yaml):
        objects = found()
        documents.echo(
            documents.printable(objects[0]) if name else documents.as_list(objects), output
        )
    elif name is None or output is GetOutput.wide:
        wide = tuple(view.wide_columns) if output is GetOutput.wide else ()
        show(
            lambda: render.listing(
                found(),
                (*view.columns, *wide),
                clock.now(),
                all_namespaces,
                view.plural,
            ),
            watch,
            _sleep,
        )
    elif watch and view.ends:
        follow(
            _observations(cluster, view, name, None),
            view.detail,
            lambda obj: decide(obj, view.outcome).state != "waiting",
        )
    else:
        show(lambda: view.detail(cluster.get(view.kind, name)), watch, _sleep)


def _observations(
    cluster: Cluster, view: KindView, name: str, timeout: float | None
) -> Iterator[Seen]:
    """The object `name` as read now and then: after each change from a watch of the API
    for a kind whose objects end, else every second (`timeout` None: until Ctrl-C)."""

    def fetch() -> dict[str, Any]:
        return cluster.get(view.kind, name)

    if view.ends:
        return watched(
            fetch,
            lambda version, seconds: cluster.watch(view.kind, name, version, seconds),
            timeout,
            _sleep,
        )
    return polled(fetch, math.inf if timeout is None else timeout, _sleep)


def _timeout(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="'--timeout'") from None


def status(
    view: KindView,
    name: str,
    timeout: str,
    namespace: str | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """`status <kind> NAME`: wait until the kind's outcome is done or failed."""
    seconds = _timeout(timeout)
    _wait_for(Cluster(kubeconfig, context, namespace), view, name, seconds)


def _wait_for(cluster: Cluster, view: KindView, name: str, seconds: float) -> None:
    """Exit 0 when the object is done, 1 when it failed, 2 after `seconds`."""
    wait(
        _observations(cluster, view, name, seconds),
        lambda obj: decide(obj, view.outcome),
        f"{view.kind.label} {name}",
        seconds,
    )


def _get_command(view: KindView) -> Callable[..., None]:
    """`get` with the parameters typer shows for `view`'s kind."""
    watch_help = (
        "Keep the view up to date until Ctrl-C: with NAME, printed again on each change "
        "(a watch of the API) until it ends; the list every second."
        if view.ends
        else None
    )

    def command(
        name: Annotated[
            str | None,
            typer.Argument(
                help=f"{view.title} name (none: list them).", metavar="NAME", show_default=False
            ),
        ] = None,
        watch: Annotated[bool, watch_option(watch_help)] = False,
        namespace: NamespaceOption = None,
        all_namespaces: AllNamespacesOption = False,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
        output: GetOutputOption = None,
    ) -> None:
        get(view, name, watch, namespace, all_namespaces, kubeconfig, context, output)

    return command


def _status_command(view: KindView) -> Callable[..., None]:
    """`status` with the parameters typer shows for `view`'s kind."""

    def command(
        name: Annotated[
            str,
            typer.Argument(
                help=f"{view.title} name.", metavar=view.status_metavar, show_default=False
            ),
        ],
        timeout: TimeoutOption = "10m",
        namespace: NamespaceOption = None,
        kubeconfig: KubeconfigOption = None,
        context: ContextOption = None,
    ) -> None:
        status(view, name, timeout, namespace, kubeconfig, context)

    return command


def _register(
    group: typer.Typer, names: tuple[str, ...], function: Callable[..., Any], help_: str
) -> None:
    """One command under its name, and hidden aliases (plural, short name)."""
    command = reported(function)
    group.command(names[0], help=help_)(command)
    for alias in names[1:]:
        group.command(alias, help=help_, hidden=True)(command)


for _view in KINDS:
    _register(get_app, _view.names, _get_command(_view), _view.get_help)
for _view in KINDS:
    _register(status_app, _view.names, _status_command(_view), _view.status_help)


# -- images -----------------------------------------------------------------------------------


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
    output: DocumentOutputOption = None,
) -> None:
    """Versions of an ImageDefinition with their replication per region, and the
    latest version per region (what ScaleSets following "latest" run); `-o json|yaml`:
    the definition's ImageVersions as a List."""
    cluster = Cluster(kubeconfig, context, namespace)
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
    if output is not None:
        documents.echo(documents.as_list(render.newest_first(mine)), output)
        return
    out().print(render.versions_view(definition, mine, found))


@app.command(
    "replication",
    help=(
        "Replication of an ImageVersion per region: state, progress bar, replicas, "
        "bytes and details."
    ),
)
@reported
def replication(
    name: ImageVersionName,
    watch: WatchOption = False,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """What `get imageversion NAME` shows: per region state, progress bar, replicas,
    bytes and details."""
    get(IMAGEVERSION_VIEW, name, watch, namespace, False, kubeconfig, context)


# -- image builds -----------------------------------------------------------------------------


@app.command(
    "build",
    help=(
        "Build an ImageTemplate now: create an ImageBuild (reason Manual) and print its name. "
        "With --wait, follow it until it Succeeded (exit 0), Failed (1) or --timeout (2)."
    ),
)
@reported
def build(
    template: ImageTemplateName,
    follow_it: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Follow the build until it ends: exit 0 Succeeded, 1 Failed, 2 timed out.",
        ),
    ] = False,
    timeout: TimeoutOption = "10m",
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Create an ImageBuild of TEMPLATE (generateName `TEMPLATE-`, label
    galleon.dev/template, reason Manual); with --wait, what `status imagebuild` does."""
    seconds = _timeout(timeout)
    cluster = Cluster(kubeconfig, context, namespace)
    cluster.get(IMAGETEMPLATE, template)
    created = cluster.create(
        IMAGEBUILD,
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "ImageBuild",
            "metadata": {"generateName": f"{template}-", "labels": {TEMPLATE_LABEL: template}},
            "spec": {"templateName": template, "reason": "Manual"},
        },
    )
    name = str((created.get("metadata") or {}).get("name"))
    say(
        f"created imagebuild {name} in namespace {cluster.namespace}: a Manual build of "
        f"imagetemplate {template}"
    )
    if follow_it:
        _wait_for(cluster, IMAGEBUILD_VIEW, name, seconds)


@app.command(
    "builds",
    help=(
        "The builds of an ImageTemplate, newest first: reason, phase, version published, "
        "duration, image digest and message."
    ),
)
@reported
def builds(
    template: ImageTemplateName,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
    output: DocumentOutputOption = None,
) -> None:
    """The ImageBuilds labelled galleon.dev/template=TEMPLATE, newest first (`-o
    json|yaml`: as a List)."""
    cluster = Cluster(kubeconfig, context, namespace)
    try:
        found: dict[str, Any] | None = cluster.get(IMAGETEMPLATE, template)
    except NotFound:
        found = None
    mine = cluster.list(IMAGEBUILD, labels={TEMPLATE_LABEL: template})
    if found is None and not mine:
        raise NotFound(f"imagetemplate {template} not found in namespace {cluster.namespace}")
    if output is not None:
        documents.echo(documents.as_list(render.newest_builds(mine)), output)
        return
    out().print(render.builds_view(template, mine, found, clock.now()))


# -- ScaleSet controls ------------------------------------------------------------------------

controls.register(app)

# -- plan (read only) -------------------------------------------------------------------------

plan.register(app)

# -- dashboard (read only) --------------------------------------------------------------------

dashboard.register(app)

# -- create (from flags, or printed for Git) --------------------------------------------------

create.register(app)

# -- version and shell completion -----------------------------------------------------------

version.register(app)
completion.register(app)


def main() -> None:  # pragma: no cover - the console script calls `app` directly
    app()


def complete() -> None:
    """`kubectl_complete-galleon ARGS... WORD`: what kubectl runs for `kubectl galleon <TAB>`."""
    completion.main(app, sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
