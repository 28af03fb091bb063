"""The options and arguments `kubectl galleon` commands share, as typer annotations.

Rules of this module: every command takes `-n/--namespace`, `--kubeconfig` and
`--context` (and `-A/--all-namespaces` where it lists), after the command as with
kubectl; an option means the same in every command that takes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from galleon.cli.outcome import DURATION_HELP

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
WATCH_HELP = "Keep the view up to date (every second) until Ctrl-C."


def watch_option(help_: str | None = None) -> typer.models.OptionInfo:
    """`--watch`/`-w`, with help for a kind that words it otherwise (one that ends)."""
    return typer.Option("--watch", "-w", help=help_ or WATCH_HELP)


WatchOption = Annotated[bool, watch_option()]
TimeoutOption = Annotated[
    str, typer.Option("--timeout", help=f"How long to wait: {DURATION_HELP}.")
]
ScaleSetName = Annotated[
    str, typer.Argument(help="ScaleSet name.", metavar="NAME", show_default=False)
]
ImageVersionName = Annotated[
    str, typer.Argument(help="ImageVersion name.", metavar="IMAGEVERSION", show_default=False)
]
ImageTemplateName = Annotated[
    str, typer.Argument(help="ImageTemplate name.", metavar="TEMPLATE", show_default=False)
]
