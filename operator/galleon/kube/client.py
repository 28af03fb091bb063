"""The operator's one Kubernetes API client (lightkube, async) and its few writes.

Rules of this module: one client per process, created lazily from $KUBECONFIG or
the in-cluster service account; status is written with JSON merge patches on the
status subresource (never the whole object, so a write cannot undo a concurrent
spec change); a 404 on a status write means the object is gone and is not an
error.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from lightkube import AsyncClient
from lightkube.config.kubeconfig import KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

FIELD_MANAGER = "galleon-operator"
_client: AsyncClient | None = None


def client() -> AsyncClient:
    """The shared async client (created on first use)."""
    global _client
    if _client is None:
        _client = AsyncClient(KubeConfig.from_env(), field_manager=FIELD_MANAGER, trust_env=False)
    return _client


async def close() -> None:
    global _client
    if _client is not None:
        await _client.close()
        _client = None


async def patch_status(
    resource: Any, name: str, status: dict[str, Any], namespace: str | None = None
) -> bool:
    """Merge-patch `status` of one object; False when the object no longer exists."""
    try:
        await client().patch(
            resource.Status,
            name,
            {"status": status},
            namespace=namespace,
            patch_type=PatchType.MERGE,
        )
    except ApiError as error:
        if error.status.code == 404:
            return False
        raise
    return True


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


async def get_or_none(resource: Any, name: str, namespace: str | None = None) -> Any:
    """The object, or None when it does not exist."""
    try:
        return await client().get(resource, name, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


class CredentialsError(RuntimeError):
    """A credentials Secret is missing or unusable (the message says which and why)."""


async def registry_credentials(
    name: str, namespace: str, registry_host: str | None = None
) -> tuple[str, str]:
    """(username, password) from a Secret with keys `username`/`password` or a
    `.dockerconfigjson` (the entry for `registry_host`, else the only entry)."""
    secret = await get_or_none(Secret, name, namespace)
    if secret is None:
        raise CredentialsError(f"Secret {namespace}/{name} not found")
    data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
    if "username" in data and "password" in data:
        return data["username"], data["password"]
    if ".dockerconfigjson" in data:
        auths = json.loads(data[".dockerconfigjson"]).get("auths", {})
        entry = auths.get(registry_host) if registry_host else None
        if entry is None and len(auths) == 1:
            entry = next(iter(auths.values()))
        if entry:
            if "username" in entry:
                return entry["username"], entry.get("password", "")
            user, _, password = base64.b64decode(entry.get("auth", "")).decode().partition(":")
            return user, password
    raise CredentialsError(
        f"Secret {namespace}/{name} has neither username/password keys nor a usable "
        ".dockerconfigjson entry"
    )
