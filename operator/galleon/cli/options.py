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
ImageVersionName = Annotated[
    str, typer.Argument(help="ImageVersion name.", metavar="IMAGEVERSION", show_default=False)
]
