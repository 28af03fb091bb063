"""What `-o json` and `-o yaml` print: the objects as the API server holds them, the
way kubectl prints them.

Rules of this module: one object prints as itself, several as a `v1` `List` (what
`kubectl get -o yaml` prints for a list, so `kubectl apply -f` takes it back);
`metadata.managedFields` is left out, as kubectl leaves it out unless asked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
import yaml

HIDDEN_METADATA = ("managedFields",)


class Format(StrEnum):
    """A document format `-o` takes."""

    json = "json"
    yaml = "yaml"


class GetOutput(StrEnum):
    """`-o` of a command that lists objects: a document, or the list with more columns."""

    json = "json"
    yaml = "yaml"
    wide = "wide"


GetOutputOption = Annotated[
    GetOutput | None,
    typer.Option(
        "--output",
        "-o",
        help="json or yaml: the objects as stored (a List without NAME); wide: more columns.",
        show_default=False,
    ),
]
DocumentOutputOption = Annotated[
    Format | None,
    typer.Option(
        "--output", "-o", help="Print the objects as a json or yaml List.", show_default=False
    ),
]


def printable(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The object without what kubectl hides.

    >>> printable({"kind": "ScaleSet", "metadata": {"name": "web", "managedFields": []}})
    {'kind': 'ScaleSet', 'metadata': {'name': 'web'}}
    """
    metadata = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in HIDDEN_METADATA}
    return {**obj, "metadata": metadata}


def as_list(objects: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Objects as the `List` kubectl prints.

    >>> as_list([])
    {'apiVersion': 'v1', 'kind': 'List', 'metadata': {'resourceVersion': ''}, 'items': []}
    """
    return {
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": [printable(obj) for obj in objects],
    }


def dumps(document: Mapping[str, Any], format_: str) -> str:
    """`document` as json (indented, as kubectl) or yaml (keys in their order), ending
    with a newline.

    >>> dumps({"b": 1, "a": "x"}, "yaml")
    'b: 1\\na: x\\n'
    """
    if format_ == Format.json:
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(dict(document), sort_keys=False)


def echo(document: Mapping[str, Any], format_: str) -> None:
    """Print `document` on stdout as `dumps` writes it."""
    typer.echo(dumps(document, format_), nl=False)
