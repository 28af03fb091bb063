"""The operator's one Kubernetes API client (lightkube, async) and its few writes.

Rules of this module: one client per process, created lazily from $KUBECONFIG or
the in-cluster service account; status is written with JSON merge patches on the
status subresource (never the whole object, so a write cannot undo a concurrent
spec change), optionally preconditioned on a resourceVersion (`Conflict` when the
object changed since); a 404 on a status write means the object is gone and is not an
error; Secrets are only ever read one at a time by name (`get`, never list or
watch), when a registry call needs them.
"""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient
from lightkube.config.client_adapter import verify_cluster
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError, ConfigError
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from galleon.kube import credentials
from galleon.kube.credentials import CredentialsError as CredentialsError
from galleon.kube.transport import AiohttpTransport

FIELD_MANAGER = "galleon-operator"
_client: AsyncClient | None = None


def client() -> AsyncClient:
    """The shared async client (created on first use from $KUBECONFIG or the in-cluster
    service account)."""
    global _client
    if _client is None:
        _client = client_for(KubeConfig.from_env())
    return _client


def client_for(config: KubeConfig) -> AsyncClient:
    """An async client of `config`, over aiohttp (`galleon.kube.transport`) with the
    TLS the config gives (its CA, its client certificate), authenticated by lightkube
    (a token, a token file re-read after a 401, an exec plugin)."""
    one = config.get()
    if one is None or one.user is None:
        raise ConfigError("the kubeconfig names no current context with a user")
    tls = verify_cluster(one.cluster, one.user, one.abs_file, trust_env=False)
    return AsyncClient(
        one,
        field_manager=FIELD_MANAGER,
        trust_env=False,
        transport=AiohttpTransport(tls if one.cluster.server.startswith("https:") else None),
    )


async def close() -> None:
    global _client
    if _client is not None:
        await _client.close()
        _client = None


class Conflict(Exception):
    """A write's resourceVersion precondition failed (409): the object changed since
    it was read; re-read it and compute the write again."""


async def patch_status(
    resource: Any,
    name: str,
    status: dict[str, Any],
    namespace: str | None = None,
    *,
    resource_version: str | None = None,
) -> str | None:
    """Merge-patch `status` of one object; its new resourceVersion (empty if the
    response has none), or None when the object no longer exists.

    With `resource_version` the patch carries it as `metadata.resourceVersion`, so
    the API server applies it only to that version of the object and answers 409
    otherwise (optimistic concurrency): `Conflict` is raised.
    """
    written = await patch_status_object(
        resource, name, status, namespace, resource_version=resource_version
    )
    if written is None:
        return None
    meta = getattr(written, "metadata", None)
    return str(getattr(meta, "resourceVersion", None) or "")


async def patch_status_object(
    resource: Any,
    name: str,
    status: dict[str, Any],
    namespace: str | None = None,
    *,
    resource_version: str | None = None,
) -> Any:
    """What `patch_status` does; the object as the API server answered it (the whole
    object: metadata, spec and the status written), or None when it no longer exists."""
    body: dict[str, Any] = {"status": status}
    if resource_version is not None:
        body["metadata"] = {"resourceVersion": resource_version}
    try:
        written = await client().patch(
            resource.Status,
            name,
            body,
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
    except ApiError as error:
        if error.status.code == 404:
            return None
        if error.status.code == 409 and resource_version is not None:
            raise Conflict(
                f"{name} changed since resourceVersion {resource_version}: {error}"
            ) from error
        raise
    return written


async def delete_if_uid(resource: Any, name: str, namespace: str, uid: str) -> bool:
    """Delete the object only if it is still the one with `uid` (DeleteOptions
    preconditions, as the StatefulSet controller does): a same-named successor created
    meanwhile is left alone. False when the object is gone or was replaced.

    lightkube's `delete` sends no body, so the request is built with its generic
    client and given the DeleteOptions body.
    """
    generic = client()._client
    request = generic.prepare_request("delete", resource, name=name, namespace=namespace)
    request.data = {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": {"uid": uid},
    }
    response = await generic.send(generic.build_adapter_request(request))
    try:
        generic.handle_response("delete", response, request)
    except ApiError as error:
        if error.status.code in (404, 409):
            return False
        raise
    return True


async def delete_collection(resource: Any, namespace: str, selector: str) -> None:
    """Delete every object of `resource` in `namespace` that the label `selector`
    selects, in one request. lightkube's `deletecollection` takes no selector, so this
    sends the same request through its generic client with one."""
    if not selector:
        raise ValueError("a delete of a collection needs a label selector")
    await client()._client.request(
        "deletecollection", res=resource, namespace=namespace, params={"labelSelector": selector}
    )


async def get_or_none(resource: Any, name: str, namespace: str | None = None) -> Any:
    """The object, or None when it does not exist."""
    try:
        return await client().get(resource, name, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


async def _secret_data(name: str, namespace: str) -> dict[str, str]:
    """The `data` of Secret `namespace/name`; CredentialsError when missing or refused."""
    try:
        secret = await get_or_none(Secret, name, namespace)
    except ApiError as error:
        if error.status.code == 403:
            raise CredentialsError(
                f"Secret {namespace}/{name} may not be read by the operator (403)"
            ) from error
        raise
    if secret is None:
        raise CredentialsError(f"Secret {namespace}/{name} not found")
    return dict(secret.data or {})


async def registry_credentials(name: str, namespace: str, registry_host: str) -> tuple[str, str]:
    """(username, password) for `registry_host` from Secret `namespace/name`: its keys
    `username`/`password`, or the `.dockerconfigjson` entry of that host only
    (`galleon.kube.credentials` says how hosts compare and what is refused)."""
    data = await _secret_data(name, namespace)
    return credentials.registry_credentials(data, registry_host, f"{namespace}/{name}")


async def ca_bundle(name: str, namespace: str, key: str = "ca.crt") -> bytes:
    """The CA bundle in key `key` of Secret `namespace/name` (bounded, as every value read)."""
    data = await _secret_data(name, namespace)
    bundle = credentials.secret_value(data, key, f"{namespace}/{name}")
    if bundle is None:
        raise CredentialsError(f"Secret {namespace}/{name} has no key {key}")
    return bundle
