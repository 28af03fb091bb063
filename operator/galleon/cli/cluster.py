"""The plugin's connection to the cluster: kubeconfig and context as kubectl picks
them, and API errors turned into one clear sentence.

Rules of this module:
- The kubeconfig is `--kubeconfig`, else the first existing file of $KUBECONFIG,
  else ~/.kube/config, else the in-cluster service account (kubectl's order).
- The namespace is `-n`, else the context's namespace, else "default".
- Every failure a user can cause or meet (no kubeconfig, unknown context,
  unreachable server, object not found, CRDs missing, forbidden) raises
  `CliError` with a message that says what and where; never a traceback.
- A watch is one bounded request: the API server ends it after the seconds asked
  (`timeoutSeconds`), and the client stops waiting for a line `WATCH_GRACE_SECONDS`
  later, so a silent server is `Unreachable`, never a hang. Re-watching is the
  caller's (`galleon.cli.polling.watched`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
from lightkube import Client, KubeConfig
from lightkube.config.client_adapter import Client as HttpClient
from lightkube.config.client_adapter import ConnectionParams
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.models.meta_v1 import Status
from lightkube.types import PatchType

FIELD_MANAGER = "kubectl-galleon"
DEFAULT_KUBECONFIG = Path("~/.kube/config")
CONNECT_SECONDS = 10.0
"""How long a request may take to connect (lightkube's default for every request)."""
WATCH_GRACE_SECONDS = 10.0
"""How much longer than its `timeoutSeconds` a watch waits for a line from the server."""


class CliError(Exception):
    """A failure to report in one line, with exit code 1."""


class NotFound(CliError):
    """The object (or its kind) does not exist."""


class Unreachable(CliError):
    """The API server did not answer (a watch or a wait retries on this)."""


class Forbidden(CliError):
    """The user may not do this (401 or 403)."""


class Expired(CliError):
    """The resourceVersion a watch started from is gone from the server (410): read again."""


@dataclass(frozen=True)
class Kind:
    """How the plugin names one resource kind in messages."""

    resource: Any
    label: str
    """Lower-case kind, as in "scaleset web not found"."""


def kubeconfig_path(explicit: Path | None) -> Path | None:
    """The kubeconfig file to read (None: use the in-cluster service account)."""
    if explicit is not None:
        return explicit
    listed = os.environ.get("KUBECONFIG", "")
    if listed:
        paths = [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
        existing = [p for p in paths if p.is_file()]
        return existing[0] if existing else paths[0]
    default = DEFAULT_KUBECONFIG.expanduser()
    return default if default.is_file() else None


def load_config(kubeconfig: Path | None, context: str | None) -> Any:
    """The selected context of the kubeconfig (a lightkube SingleConfig)."""
    path = kubeconfig_path(kubeconfig)
    try:
        config = KubeConfig.from_file(path) if path is not None else KubeConfig.from_env()
    except ConfigError as error:
        where = f"kubeconfig {path}" if path else "kubeconfig"
        raise CliError(
            f"cannot read {where}: {error} (pass --kubeconfig or set KUBECONFIG)"
        ) from error
    except Exception as error:  # a malformed file (YAML or structure)
        raise CliError(f"cannot read kubeconfig {path}: {error}") from error
    if context is not None and context not in config.contexts:
        known = ", ".join(sorted(config.contexts)) or "none"
        raise CliError(
            f'context "{context}" not found in kubeconfig {path or "(in-cluster)"} '
            f"(contexts: {known})"
        )
    try:
        return config.get(context_name=context)
    except ConfigError as error:
        raise CliError(f"kubeconfig {path}: {error} (pass --context)") from error


class Cluster:
    """A lightkube sync client bound to the namespace the command works in."""

    def __init__(self, kubeconfig: Path | None, context: str | None, namespace: str | None):
        self.config = load_config(kubeconfig, context)
        self.namespace: str = namespace or self.config.namespace
        self.server: str = self.config.cluster.server
        self.client = Client(
            self.config,
            namespace=self.namespace,
            trust_env=False,
            field_manager=FIELD_MANAGER,
        )
        self._streams: Any = None

    def get(self, kind: Kind, name: str, namespace: str | None = None) -> dict[str, Any]:
        """The object `name` in `namespace` (default: the command's; ignored for a kind
        that is not namespaced)."""
        where = namespace or self.namespace
        with self._errors(kind, name, where):
            return as_dict(self.client.get(kind.resource, name, namespace=where))

    def list(
        self,
        kind: Kind,
        all_namespaces: bool = False,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
    ) -> list[dict[str, Any]]:
        """The objects of `kind` (with every label of `labels`) in `namespace` (default:
        the command's), by namespace and name."""
        where = namespace or self.namespace
        namespace = "*" if all_namespaces else where
        with self._errors(kind, None, where):
            objects = [
                as_dict(o)
                for o in self.client.list(
                    kind.resource, namespace=namespace, labels=dict(labels) if labels else None
                )
            ]
        return sorted(
            objects,
            key=lambda o: ((o.get("metadata") or {}).get("namespace", ""), _name(o)),
        )

    def merge_patch(self, kind: Kind, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        with self._errors(kind, name):
            return as_dict(
                self.client.patch(
                    kind.resource,
                    name,
                    patch,
                    namespace=self.namespace,
                    patch_type=PatchType.MERGE,
                )
            )

    def create(
        self, kind: Kind, document: Mapping[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        """Create `document` (a whole object, as a dict) in the command's namespace
        (`dry_run`: the API server checks it and stores nothing)."""
        obj = kind.resource.from_dict(
            {**document, "metadata": {**document.get("metadata", {}), "namespace": self.namespace}}
        )
        with self._errors(kind, None):
            return as_dict(self.client.create(obj, namespace=self.namespace, dry_run=dry_run))

    def watch(
        self, kind: Kind, name: str, resource_version: str, seconds: int
    ) -> Iterator[dict[str, Any]]:
        """The object `name` each time it changes after `resource_version`, from one watch
        request that the API server ends after `seconds`; NotFound when it is deleted,
        Expired when `resource_version` is too old to watch from."""
        info = kind.resource._api_info
        path = (
            f"/apis/{info.resource.group}/{info.resource.version}"
            f"/namespaces/{self.namespace}/{info.plural}"
        )
        params = {
            "watch": "true",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": resource_version,
            "timeoutSeconds": str(seconds),
        }
        timeout = httpx2.Timeout(CONNECT_SECONDS, read=seconds + WATCH_GRACE_SECONDS)
        with (
            self._errors(kind, name),
            self._http().stream("GET", path, params=params, timeout=timeout) as response,
        ):
            if response.is_error:
                response.read()
                if response.headers.get("content-type", "").startswith("application/json"):
                    raise ApiError(request=response.request, response=response)
                response.raise_for_status()
            for line in response.iter_lines():
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as error:
                    raise CliError(
                        f"the API server sent a watch event that is not JSON: {line[:200]}"
                    ) from error
                kind_of_event, obj = event.get("type"), event.get("object") or {}
                if kind_of_event == "ERROR":
                    status: Any = Status.from_dict(obj)
                    raise ApiError(status=status)
                if kind_of_event == "DELETED":
                    raise NotFound(
                        f"{kind.label} {name} was deleted from namespace {self.namespace}"
                    )
                if kind_of_event in ("ADDED", "MODIFIED"):
                    yield obj

    def close(self) -> None:
        self.client.close()
        if self._streams is not None:
            self._streams.close()

    def _http(self) -> Any:
        """The HTTP client watches stream from (made at the first watch), with the
        context's server, credentials and TLS, and no proxy from the environment."""
        if self._streams is None:
            self._streams = HttpClient(self.config, ConnectionParams(trust_env=False))
        return self._streams

    @contextmanager
    def _errors(self, kind: Kind, name: str | None, namespace: str | None = None) -> Iterator[None]:
        """Turn API and transport errors into a `CliError` that says what and where."""
        try:
            yield
        except ApiError as error:
            code = getattr(error.status, "code", None)
            failures: dict[Any, type[CliError]] = {
                401: Forbidden,
                403: Forbidden,
                404: NotFound,
                410: Expired,
            }
            failure = failures.get(code, CliError)
            message = self._api_message(error, kind, name, namespace or self.namespace)
            raise failure(message) from error
        except httpx2.HTTPStatusError as error:  # an answer that is not a Kubernetes Status
            code = error.response.status_code
            if code == 404:
                raise NotFound(
                    f"the API server does not know {_resource(kind)}: are the galleon CRDs "
                    "installed?"
                ) from error
            raise CliError(f"the API server answered {code} for {error.request.url}") from error
        except httpx2.TransportError as error:
            reason = str(error) or type(error).__name__
            raise Unreachable(f"cannot reach the API server {self.server}: {reason}") from error

    def _api_message(self, error: ApiError, kind: Kind, name: str | None, namespace: str) -> str:
        status = error.status
        code = getattr(status, "code", None)
        details = getattr(status, "details", None)
        resource = _resource(kind)
        if code == 404:
            if name is not None and details is not None and details.name == name:
                return f"{kind.label} {name} not found in namespace {namespace}"
            return (
                f"the API server does not know {resource}: are the galleon CRDs installed? "
                f"({status.message})"
            )
        if code in (401, 403):
            return f"not allowed: {status.message}"
        return f"the API server refused the request ({code} {status.reason}): {status.message}"


def as_dict(obj: Any) -> dict[str, Any]:
    """A lightkube object (generic resources are dicts already) as a plain dict."""
    if isinstance(obj, dict) and not hasattr(obj, "to_dict"):
        return obj
    result = obj.to_dict()
    return result if isinstance(result, dict) else dict(result)


def _resource(kind: Kind) -> str:
    """`scalesets.galleon.dev`, as kubectl names a resource type."""
    info = getattr(kind.resource, "_api_info", None)
    return f"{info.plural}.{info.resource.group}" if info is not None else kind.label


def _name(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))
