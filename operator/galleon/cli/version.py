"""`kubectl galleon version`: the plugin's version (its package's metadata) and that
of every galleon operator the user may see.

Rules of this module:
- The operator's version is read where the Helm chart writes it: the
  `app.kubernetes.io/version` label of the Deployments labelled
  `app.kubernetes.io/name=galleon, app.kubernetes.io/component=operator`, found by one
  LIST across namespaces (no operator endpoint to call, nothing to install).
- A user who may not list Deployments still gets the client's version, and the reason
  the operator's is unknown; a cluster that cannot be reached, or no kubeconfig, is an
  error (exit 1) after the client's line, as with `kubectl version`. `--client` never
  reads the kubeconfig.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from typing import Annotated, Any

import typer
from lightkube.resources.apps_v1 import Deployment

from galleon.cli import documents
from galleon.cli.cluster import CliError, Cluster, Forbidden, Kind, NotFound
from galleon.cli.console import reported, say
from galleon.cli.options import ContextOption, KubeconfigOption

DISTRIBUTION = "galleon"
OPERATOR_LABELS = {"app.kubernetes.io/name": "galleon", "app.kubernetes.io/component": "operator"}
"""The labels of the chart's operator Deployment (helm/galleon/templates/_helpers.tpl)."""
VERSION_LABEL = "app.kubernetes.io/version"
DEPLOYMENT = Kind(Deployment, "deployment")


def client_version() -> str:
    """The installed plugin's version ("unknown" when run from a source tree)."""
    try:
        return package_version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def operators(deployments: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each operator Deployment as namespace, name, version and image.

    >>> operators([{"metadata": {"namespace": "galleon-system", "name": "galleon",
    ...     "labels": {"app.kubernetes.io/version": "0.1.0"}}, "spec": {"template": {"spec":
    ...     {"containers": [{"name": "operator", "image": "ghcr.io/galleon:0.1.0"}]}}}}])
    [{'namespace': 'galleon-system', 'name': 'galleon', 'version': '0.1.0', 'image': 'ghcr.io/galleon:0.1.0'}]
    """  # noqa: E501
    found = []
    for deployment in deployments:
        metadata = deployment.get("metadata") or {}
        pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
        containers = pod.get("containers") or [{}]
        found.append(
            {
                "namespace": metadata.get("namespace"),
                "name": metadata.get("name"),
                "version": (metadata.get("labels") or {}).get(VERSION_LABEL, "unknown"),
                "image": containers[0].get("image"),
            }
        )
    return found


def lines(document: Mapping[str, Any]) -> list[str]:
    """The text view, as `kubectl version` words it.

    >>> lines({"clientVersion": "0.1.0", "operators": []})
    ['Client Version: 0.1.0', 'Operator Version: none found (no Deployment labelled app.kubernetes.io/name=galleon,app.kubernetes.io/component=operator)']
    """  # noqa: E501
    result = [f"Client Version: {document['clientVersion']}"]
    if "operators" not in document:
        return result
    if "operatorsUnknown" in document:
        return [*result, f"Operator Version: unknown ({document['operatorsUnknown']})"]
    selector = ",".join(f"{k}={v}" for k, v in OPERATOR_LABELS.items())
    if not document["operators"]:
        return [*result, f"Operator Version: none found (no Deployment labelled {selector})"]
    return [
        *result,
        *(
            f"Operator Version: {o['version']} (deployment {o['namespace']}/{o['name']}, "
            f"image {o['image']})"
            for o in document["operators"]
        ),
    ]


def _client_first(document: Mapping[str, Any], output: documents.Format | None) -> None:
    """Before an error about the cluster, the client's line (text view only)."""
    if output is None:
        say(lines({"clientVersion": document["clientVersion"]})[0])


def version(
    client: Annotated[
        bool, typer.Option("--client", help="Only the plugin's version (no cluster).")
    ] = False,
    output: documents.DocumentOutputOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """The plugin's version, and each galleon operator's the user may see."""
    document: dict[str, Any] = {"clientVersion": client_version()}
    if not client:
        try:
            cluster = Cluster(kubeconfig, context, None)
            seen = cluster.list(DEPLOYMENT, all_namespaces=True, labels=OPERATOR_LABELS)
        except (Forbidden, NotFound) as error:
            # The client's version is still worth showing, with why the other is not.
            document["operators"], document["operatorsUnknown"] = [], str(error)
        except CliError:  # no kubeconfig, unknown context: as kubectl, client then error
            _client_first(document, output)
            raise
        else:
            document["operators"] = operators(seen)
    if output is not None:
        documents.echo(document, output)
        return
    for line in lines(document):
        say(line)


def register(app: typer.Typer) -> None:
    """Add `version` to `app`."""
    app.command(
        "version",
        help="The plugin's version and each galleon operator's (from its Deployment's labels).",
    )(reported(version))
