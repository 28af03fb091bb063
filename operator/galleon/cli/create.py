"""`kubectl galleon create gallery|image-definition|image-version|scaleset`: galleon's
resources from a few flags, in the shape of the cloud's CLI
(`az sig image-version create ... --target-regions westcentralus eastus2=2`).

Rules of this module:
- Each command builds the object as a plain document (`*_document`, pure) and checks
  its spec with the model of `galleon.api` before anything is sent: bad input is one
  `error: ...` line naming the flag and the field, exit 1, and nothing is created.
- `--dry-run=client` never reads the kubeconfig: it prints the document (`-o yaml`,
  `-o json` or `-o name`) for a Git repository; applied with `kubectl apply -f` it is
  the same object the command creates. `--dry-run=server` sends it with `dryRun=All`
  (the API server's schema, CEL rules and admission judge it; nothing is stored).
- Without a dry run the object is created through the user's kubeconfig (a POST, as
  `kubectl create` does: an object that exists already is an error, never changed).
- The document holds only what the flags set (the API server fills in the defaults),
  with `metadata.namespace` only when `-n` was given or the object was created.
- A list flag (`--target-regions`, `--data-disk-sizes-gb`, `--share-with`) takes every
  word after it up to the next option, as the cloud's CLI does, or may be repeated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError
from typer.core import TyperCommand

from galleon import API_VERSION, GROUP
from galleon.api.common import (
    DNS_SUBDOMAIN_PATTERN,
    MAX_REPLICAS_PER_REGION,
    NAME_MAX,
)
from galleon.api.gallery import GallerySpec
from galleon.api.imagedefinition import ImageDefinitionSpec
from galleon.api.imageversion import ImageVersionSpec
from galleon.api.scaleset import LATEST, ScaleSetSpec, check_name
from galleon.cli import documents
from galleon.cli.cluster import CliError, Cluster, Kind
from galleon.cli.console import reported, say
from galleon.cli.kinds import GALLERY, IMAGEDEFINITION, IMAGEVERSION, SCALESET
from galleon.cli.options import ContextOption, KubeconfigOption, NamespaceOption

LIST_OPTIONS = frozenset({"--target-regions", "--data-disk-sizes-gb", "--share-with"})
"""Options that take every word after them up to the next option."""
OS_CONTAINER = "os"
"""The container a created ScaleSet runs its OS image in."""
OS_IMAGE_PLACEHOLDER = "set-by-galleon"
"""The image the template names; galleon sets the OS image in its place."""


class DryRun(StrEnum):
    """`--dry-run`, as kubectl spells it."""

    none = "none"
    client = "client"
    server = "server"


class Output(StrEnum):
    """`-o`: the object as a document, or its `kind.group/name`."""

    json = "json"
    yaml = "yaml"
    name = "name"


DryRunOption = Annotated[
    DryRun,
    typer.Option(
        "--dry-run",
        help="client: print the object, send nothing (no kubeconfig needed); server: let "
        "the API server check it without storing it; none: create it.",
    ),
]
OutputOption = Annotated[
    Output | None,
    typer.Option(
        "--output",
        "-o",
        help="Print the object as json or yaml, or its kind/name (default: one line).",
        show_default=False,
    ),
]


def spread(args: Sequence[str], options: frozenset[str] = LIST_OPTIONS) -> list[str]:
    """The arguments with each word after a list option given that option again, so that
    click (which takes one value per option) sees every word.

    >>> spread(["--target-regions", "westus", "eastus2=2", "-n", "team"])
    ['--target-regions', 'westus', '--target-regions', 'eastus2=2', '-n', 'team']
    >>> spread(["--source", "img", "ubuntu"])
    ['--source', 'img', 'ubuntu']
    >>> spread(["--target-regions=westus", "eastus2"])
    ['--target-regions=westus', '--target-regions', 'eastus2']
    """
    result: list[str] = []
    current: str | None = None
    for index, arg in enumerate(args):
        if arg == "--":  # everything after `--` is an argument, verbatim
            return [*result, *args[index:]]
        if arg.startswith("-") and len(arg) > 1:
            option = arg.partition("=")[0]  # `--target-regions=westus eastus2` too
            current = option if option in options else None
        elif current is not None and result[-1] != current:
            result.append(current)
        result.append(arg)
    return result


class ListOptionsCommand(TyperCommand):
    """A command whose list options take every word up to the next option (`spread`)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, spread(args))


# -- documents (pure) -------------------------------------------------------------------


def target_regions(values: Sequence[str]) -> list[dict[str, Any]]:
    """`--target-regions` words as the spec's list: a region alone takes
    `--replica-count`, `REGION=N` keeps N replicas there.

    >>> target_regions(["westcentralus", "eastus2=2"])
    [{'name': 'westcentralus'}, {'name': 'eastus2', 'regionalReplicaCount': 2}]
    >>> target_regions(["x=abc"])
    Traceback (most recent call last):
    ...
    galleon.cli.cluster.CliError: --target-regions "x=abc": the replica count after "=" must be a whole number from 1 to 100, e.g. eastus2=2
    """  # noqa: E501
    regions: list[dict[str, Any]] = []
    for value in values:
        name, equals, count = value.partition("=")
        if not equals:
            regions.append({"name": name})
            continue
        if not re.fullmatch(r"[0-9]+", count) or not 1 <= int(count) <= MAX_REPLICAS_PER_REGION:
            raise CliError(
                f'--target-regions "{value}": the replica count after "=" must be a whole '
                f"number from 1 to {MAX_REPLICAS_PER_REGION}, e.g. eastus2=2"
            )
        regions.append({"name": name, "regionalReplicaCount": int(count)})
    return regions


def default_version_name(definition: str, version: str) -> str:
    """An ImageVersion's name when `--name` is not given, as galleon's examples name
    them (dots would be valid, but the version's dashes read as one DNS label).

    >>> default_version_name("ubuntu-server", "1.0.2")
    'ubuntu-server-1-0-2'
    """
    return f"{definition}-{version.replace('.', '-')}"


def _without_empty(document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` without the keys whose value is None (a flag not given).

    >>> _without_empty({"a": None, "b": {"c": None, "d": 1}})
    {'b': {'d': 1}}
    """
    return {
        key: _without_empty(value) if isinstance(value, Mapping) else value
        for key, value in document.items()
        if value is not None
    }


def _object(kind: str, name: str, namespace: str | None, spec: Mapping[str, Any]) -> dict:
    metadata: dict[str, Any] = {"name": name}
    if namespace is not None:
        metadata["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": dict(spec)}


def gallery_document(
    name: str,
    namespace: str | None,
    *,
    location: str,
    description: str | None = None,
    repository_prefix: str | None = None,
    permissions: str | None = None,
    share_with: Sequence[str] = (),
) -> dict[str, Any]:
    """A Gallery.

    >>> gallery_document("images", None, location="eastus2")["spec"]
    {'location': 'eastus2'}
    """
    sharing = {"permissions": permissions, "namespaces": list(share_with) or None}
    spec = {
        "location": location,
        "description": description,
        "repositoryPrefix": repository_prefix,
        "sharingProfile": sharing if any(v is not None for v in sharing.values()) else None,
    }
    return _object("Gallery", name, namespace, _without_empty(spec))


def image_definition_document(
    name: str,
    namespace: str | None,
    *,
    gallery: str,
    publisher: str,
    offer: str,
    sku: str,
    os_type: str | None = None,
    os_state: str | None = None,
    description: str | None = None,
    eula: str | None = None,
    end_of_life_date: str | None = None,
) -> dict[str, Any]:
    """An ImageDefinition.

    >>> spec = image_definition_document(
    ...     "ubuntu", None, gallery="images", publisher="Contoso", offer="Ubuntu", sku="22_04"
    ... )["spec"]
    >>> spec["galleryName"], spec["identifier"]["sku"]
    ('images', '22_04')
    """
    spec = {
        "galleryName": gallery,
        "identifier": {"publisher": publisher, "offer": offer, "sku": sku},
        "osType": os_type,
        "osState": os_state,
        "description": description,
        "eula": eula,
        "endOfLifeDate": end_of_life_date,
    }
    return _object("ImageDefinition", name, namespace, _without_empty(spec))


def image_version_document(
    name: str,
    namespace: str | None,
    *,
    definition: str,
    version: str,
    source: str,
    regions: Sequence[str],
    replica_count: int | None = None,
    exclude_from_latest: bool = False,
    end_of_life_date: str | None = None,
    source_secret: str | None = None,
    plain_http: bool = False,
) -> dict[str, Any]:
    """An ImageVersion of `definition`, replicated to `regions` (`target_regions` words).

    >>> spec = image_version_document(
    ...     "ubuntu-1.0.2", None, definition="ubuntu", version="1.0.2", source="r/ubuntu:22.04",
    ...     regions=["westus", "eastus2=1"], replica_count=5,
    ... )["spec"]
    >>> spec["publishingProfile"]
    {'targetRegions': [{'name': 'westus'}, {'name': 'eastus2', 'regionalReplicaCount': 1}], 'replicaCount': 5}
    """  # noqa: E501
    spec = {
        "imageDefinitionName": definition,
        "version": version,
        "source": {
            "image": source,
            "credentialsSecretRef": {"name": source_secret} if source_secret else None,
            "plainHTTP": True if plain_http else None,
        },
        "publishingProfile": {
            "targetRegions": target_regions(regions),
            "replicaCount": replica_count,
            "excludeFromLatest": True if exclude_from_latest else None,
            "endOfLifeDate": end_of_life_date,
        },
    }
    return _object("ImageVersion", name, namespace, _without_empty(spec))


def scaleset_document(
    name: str,
    namespace: str | None,
    *,
    definition: str,
    region: str,
    instances: int,
    image_version: str = LATEST,
    image_namespace: str | None = None,
    upgrade_policy_mode: str | None = None,
    max_batch_instance_percent: int | None = None,
    automatic_os_upgrade: bool = False,
    data_disk_sizes_gb: Sequence[int] = (),
    storage_class: str | None = None,
) -> dict[str, Any]:
    """A ScaleSet of `instances` running `definition`'s image in `region`: one container
    (`os`) whose image galleon sets, labelled `app: NAME`; data disk N (lun N) of each
    size of `data_disk_sizes_gb`.

    >>> spec = scaleset_document(
    ...     "web", None, definition="ubuntu", region="eastus2", instances=3,
    ...     data_disk_sizes_gb=[10],
    ... )["spec"]
    >>> spec["imageReference"], spec["dataDisks"]
    ({'imageDefinitionName': 'ubuntu', 'version': 'latest'}, [{'name': 'data0', 'lun': 0, 'diskSizeGB': 10}])
    """  # noqa: E501
    disks = [
        _without_empty(
            {
                "name": f"data{lun}",
                "lun": lun,
                "diskSizeGB": size,
                "storageClassName": storage_class,
            }
        )
        for lun, size in enumerate(data_disk_sizes_gb)
    ]
    automatic = {"enableAutomaticOSUpgrade": True} if automatic_os_upgrade else None
    rolling = (
        {"maxBatchInstancePercent": max_batch_instance_percent}
        if max_batch_instance_percent is not None
        else None
    )
    policy = {
        "mode": upgrade_policy_mode,
        "automaticOSUpgradePolicy": automatic,
        "rollingUpgradePolicy": rolling,
    }
    spec = {
        "region": region,
        "capacity": instances,
        "imageReference": {
            "imageDefinitionName": definition,
            "namespace": image_namespace,
            "version": image_version,
        },
        "osContainerName": OS_CONTAINER,
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {"containers": [{"name": OS_CONTAINER, "image": OS_IMAGE_PLACEHOLDER}]},
        },
        "dataDisks": disks or None,
        "upgradePolicy": policy if any(v is not None for v in policy.values()) else None,
    }
    return _object("ScaleSet", name, namespace, _without_empty(spec))


# -- checks (pure) ----------------------------------------------------------------------


def _flag_of(location: str, flags: Mapping[str, str]) -> str | None:
    """The flag that set the field at `location` (the longest matching prefix).

    >>> _flag_of("publishingProfile.targetRegions.0.name", {"publishingProfile": "x",
    ...     "publishingProfile.targetRegions": "--target-regions"})
    '--target-regions'
    """
    matches = [path for path in flags if location == path or location.startswith(f"{path}.")]
    return flags[max(matches, key=len)] if matches else None


def check(
    document: Mapping[str, Any],
    model: type[BaseModel],
    flags: Mapping[str, str],
    metadata_name: str | None = None,
) -> None:
    """Refuse `document` (one `CliError` naming every problem, with the flag that set the
    field) unless its spec is valid for `model` and its name for the kind.

    `metadata_name` is the kind's own name rule's message when the name breaks it.
    """
    name = document["metadata"]["name"]
    label = document["kind"].lower()
    problems: list[str] = []
    if metadata_name is not None:
        problems.append(f"NAME {name!r}: {metadata_name}")
    elif len(name) > NAME_MAX or not re.fullmatch(DNS_SUBDOMAIN_PATTERN, name):
        problems.append(
            f"NAME {name!r}: must be a DNS subdomain of at most {NAME_MAX} characters "
            "(lower case letters, digits, '-' and '.')"
        )
    try:
        model.model_validate_json(json.dumps(document["spec"]))
    except ValidationError as error:
        for found in error.errors():
            location = ".".join(str(part) for part in found["loc"])
            flag = _flag_of(location, flags)
            message = str(found["msg"]).removeprefix("Value error, ")
            value = found.get("input")
            shown = not isinstance(value, dict | list) and repr(value) not in message
            got = f" (got {value!r})" if shown else ""
            where = f"{flag} (spec.{location})" if flag else f"spec.{location}"
            problems.append(f"{where}: {message}{got}")
    if problems:
        raise CliError(f"invalid {label} {name}: " + "; ".join(problems))


def scaleset_name_problem(name: str) -> str | None:
    """Why a ScaleSet may not be called `name` (None: it may)."""
    try:
        check_name(name)
    except ValueError as error:
        return str(error)
    return None


def resource_name(kind: Kind, name: str) -> str:
    """`imageversion.galleon.dev/ubuntu-1.0.2`, as `kubectl create -o name` prints it."""
    return f"{kind.label}.{GROUP}/{name}"


# -- the commands -----------------------------------------------------------------------


def _emit(
    kind: Kind,
    document: dict[str, Any],
    dry_run: DryRun,
    output: Output | None,
    namespace: str | None,
    kubeconfig: Path | None,
    context: str | None,
) -> None:
    """Print the checked `document` (client dry run), or send it and print the answer."""
    name = document["metadata"]["name"]
    if dry_run is DryRun.client:
        shown, where = document, ""
    else:
        cluster = Cluster(kubeconfig, context, namespace)
        created = cluster.create(kind, document, dry_run=dry_run is DryRun.server)
        shown = documents.printable(created)
        where = f" in namespace {cluster.namespace}"
    if output in (Output.json, Output.yaml):
        documents.echo(shown, output)
    elif output is Output.name:
        typer.echo(resource_name(kind, name))
    else:
        done = {DryRun.none: "created", DryRun.client: "created (dry run)"}
        say(f"{resource_name(kind, name)}{where} {done.get(dry_run, 'created (server dry run)')}")


RegionsOption = Annotated[
    list[str],
    typer.Option(
        "--target-regions",
        help="Regions to replicate to, e.g. westus eastus2=2: REGION keeps --replica-count "
        "replicas, REGION=N keeps N. Must include the gallery's location.",
        show_default=False,
    ),
]


def create_gallery(
    name: Annotated[str, typer.Argument(help="Gallery name.", metavar="NAME")],
    location: Annotated[
        str, typer.Option("--location", "-l", help="Home (source) region of the gallery.")
    ],
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    repository_prefix: Annotated[
        str | None,
        typer.Option(help="Repository path prefix in every region's registries (default galleon)."),
    ] = None,
    permissions: Annotated[
        str | None,
        typer.Option(help="Sharing: Private (default), Namespaces (--share-with) or Cluster."),
    ] = None,
    share_with: Annotated[
        list[str] | None,
        typer.Option(help="Namespaces that may use the images (with --permissions Namespaces)."),
    ] = None,
    dry_run: DryRunOption = DryRun.none,
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Create a Gallery: `create gallery images --location eastus2`."""
    document = gallery_document(
        name,
        namespace,
        location=location,
        description=description,
        repository_prefix=repository_prefix,
        permissions=permissions,
        share_with=share_with or (),
    )
    flags = {
        "location": "--location",
        "description": "--description",
        "repositoryPrefix": "--repository-prefix",
        "sharingProfile": "--permissions",
        "sharingProfile.namespaces": "--share-with",
    }
    check(document, GallerySpec, flags)
    _emit(GALLERY, document, dry_run, output, namespace, kubeconfig, context)


def create_image_definition(
    name: Annotated[str, typer.Argument(help="ImageDefinition name.", metavar="NAME")],
    gallery: Annotated[
        str, typer.Option("--gallery", "-g", help="Gallery (same namespace) it belongs to.")
    ],
    publisher: Annotated[str, typer.Option(help='Publisher, e.g. "Contoso".')],
    offer: Annotated[str, typer.Option(help='Offer, e.g. "UbuntuServer".')],
    sku: Annotated[str, typer.Option(help='SKU, e.g. "22_04-lts".')],
    os_type: Annotated[str | None, typer.Option(help="Linux (default) or Windows.")] = None,
    os_state: Annotated[
        str | None, typer.Option(help="Generalized (default) or Specialized.")
    ] = None,
    description: Annotated[str | None, typer.Option(help="Free text.")] = None,
    eula: Annotated[str | None, typer.Option(help="End-user licence terms.")] = None,
    end_of_life_date: Annotated[
        str | None, typer.Option(help="RFC 3339 with a zone, e.g. 2027-01-01T00:00:00Z.")
    ] = None,
    dry_run: DryRunOption = DryRun.none,
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Create an ImageDefinition: `create image-definition ubuntu --gallery images
    --publisher Contoso --offer UbuntuServer --sku 22_04-lts`."""
    document = image_definition_document(
        name,
        namespace,
        gallery=gallery,
        publisher=publisher,
        offer=offer,
        sku=sku,
        os_type=os_type,
        os_state=os_state,
        description=description,
        eula=eula,
        end_of_life_date=end_of_life_date,
    )
    flags = {
        "galleryName": "--gallery",
        "identifier.publisher": "--publisher",
        "identifier.offer": "--offer",
        "identifier.sku": "--sku",
        "osType": "--os-type",
        "osState": "--os-state",
        "description": "--description",
        "eula": "--eula",
        "endOfLifeDate": "--end-of-life-date",
    }
    check(document, ImageDefinitionSpec, flags)
    _emit(IMAGEDEFINITION, document, dry_run, output, namespace, kubeconfig, context)


def create_image_version(
    definition: Annotated[
        str, typer.Argument(help="ImageDefinition it is a version of.", metavar="DEFINITION")
    ],
    version: Annotated[str, typer.Argument(help="MAJOR.MINOR.PATCH.", metavar="VERSION")],
    source: Annotated[
        str,
        typer.Option("--source", help="Source OCI image, e.g. registry.example.com/ubuntu:22.04."),
    ],
    regions: RegionsOption,
    replica_count: Annotated[
        int | None,
        typer.Option(help="Replicas per target region that gives no =N (default 1)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option("--name", help="Object name (default: DEFINITION-X-Y-Z).", show_default=False),
    ] = None,
    exclude_from_latest: Annotated[
        bool, typer.Option("--exclude-from-latest", help="Never treat this version as latest.")
    ] = False,
    end_of_life_date: Annotated[
        str | None, typer.Option(help="RFC 3339 with a zone, e.g. 2027-01-01T00:00:00Z.")
    ] = None,
    source_secret: Annotated[
        str | None,
        typer.Option(help="Secret (same namespace) with credentials to read the source."),
    ] = None,
    plain_http: Annotated[
        bool, typer.Option("--plain-http", help="Reach the source registry over plain http.")
    ] = False,
    dry_run: DryRunOption = DryRun.none,
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Create an ImageVersion: `create image-version ubuntu 1.0.2 --source IMAGE
    --target-regions westcentralus eastus2=2 --replica-count 3`."""
    document = image_version_document(
        name or default_version_name(definition, version),
        namespace,
        definition=definition,
        version=version,
        source=source,
        regions=regions,
        replica_count=replica_count,
        exclude_from_latest=exclude_from_latest,
        end_of_life_date=end_of_life_date,
        source_secret=source_secret,
        plain_http=plain_http,
    )
    flags = {
        "imageDefinitionName": "DEFINITION",
        "version": "VERSION",
        "source": "--source",
        "source.credentialsSecretRef": "--source-secret",
        "publishingProfile.targetRegions": "--target-regions",
        "publishingProfile.replicaCount": "--replica-count",
        "publishingProfile.endOfLifeDate": "--end-of-life-date",
    }
    check(document, ImageVersionSpec, flags)
    _emit(IMAGEVERSION, document, dry_run, output, namespace, kubeconfig, context)


def create_scaleset(
    name: Annotated[str, typer.Argument(help="ScaleSet name.", metavar="NAME")],
    definition: Annotated[
        str, typer.Option("--image-definition", help="ImageDefinition whose image it runs.")
    ],
    region: Annotated[str, typer.Option("--region", help="Region the instances run in.")],
    instances: Annotated[int, typer.Option("--instances", help="Number of instances.")],
    image_version: Annotated[
        str, typer.Option(help='"latest" or a pinned MAJOR.MINOR.PATCH.')
    ] = LATEST,
    image_namespace: Annotated[
        str | None,
        typer.Option(help="Namespace of the ImageDefinition (default: the ScaleSet's own)."),
    ] = None,
    upgrade_policy_mode: Annotated[
        str | None, typer.Option(help="Manual (default), Rolling or Automatic.")
    ] = None,
    max_batch_instance_percent: Annotated[
        int | None, typer.Option(help="Largest batch of a rolling upgrade, in percent.")
    ] = None,
    enable_auto_os_upgrade: Annotated[
        bool,
        typer.Option(
            "--enable-auto-os-upgrade",
            help="Upgrade to each new latest version by itself (in rolling batches).",
        ),
    ] = False,
    data_disk_sizes_gb: Annotated[
        list[int] | None,
        typer.Option(help="Data disks of every instance, in GiB, e.g. 10 20 (luns 0, 1, ...)."),
    ] = None,
    storage_class: Annotated[
        str | None, typer.Option(help="StorageClass of the data disks (default: the cluster's).")
    ] = None,
    dry_run: DryRunOption = DryRun.none,
    output: OutputOption = None,
    namespace: NamespaceOption = None,
    kubeconfig: KubeconfigOption = None,
    context: ContextOption = None,
) -> None:
    """Create a ScaleSet: `create scaleset web --image-definition ubuntu --region eastus2
    --instances 5`."""
    document = scaleset_document(
        name,
        namespace,
        definition=definition,
        region=region,
        instances=instances,
        image_version=image_version,
        image_namespace=image_namespace,
        upgrade_policy_mode=upgrade_policy_mode,
        max_batch_instance_percent=max_batch_instance_percent,
        automatic_os_upgrade=enable_auto_os_upgrade,
        data_disk_sizes_gb=data_disk_sizes_gb or (),
        storage_class=storage_class,
    )
    flags = {
        "region": "--region",
        "capacity": "--instances",
        "imageReference.imageDefinitionName": "--image-definition",
        "imageReference.version": "--image-version",
        "imageReference.namespace": "--image-namespace",
        "upgradePolicy.mode": "--upgrade-policy-mode",
        "upgradePolicy.rollingUpgradePolicy": "--max-batch-instance-percent",
        "dataDisks": "--data-disk-sizes-gb",
        "template.metadata": "NAME",
    }
    check(document, ScaleSetSpec, flags, scaleset_name_problem(name))
    _emit(SCALESET, document, dry_run, output, namespace, kubeconfig, context)


COMMANDS = (
    ("gallery", create_gallery, "Create a Gallery (a collection of image definitions)."),
    (
        "image-definition",
        create_image_definition,
        "Create an ImageDefinition (publisher/offer/sku) in a Gallery.",
    ),
    (
        "image-version",
        create_image_version,
        "Create an ImageVersion of an ImageDefinition from a source image, replicated to "
        "target regions (REGION or REGION=N replicas).",
    ),
    ("scaleset", create_scaleset, "Create a ScaleSet running an ImageDefinition's image."),
)
"""Each `create` command: its name, its function and its help."""


def register(app: typer.Typer) -> None:
    """Add `create gallery|image-definition|image-version|scaleset` to `app`."""
    create_app = typer.Typer(
        help=(
            "Create a Gallery, ImageDefinition, ImageVersion or ScaleSet from flags, or print "
            "it for Git (--dry-run=client -o yaml)."
        ),
        no_args_is_help=True,
    )
    for name, function, help_ in COMMANDS:
        create_app.command(name, help=help_, cls=ListOptionsCommand)(reported(function))
    app.add_typer(create_app, name="create")
