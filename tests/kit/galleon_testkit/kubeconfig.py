"""kubeconfig files for the local control plane.

Rules of this module: a kubeconfig written here is self-contained (certificates
and keys are embedded as base64 data, so the file can be copied or read by any
client), has exactly one cluster, one user and one current context, and is
written with 0600 permissions.
"""

from __future__ import annotations

import base64
from pathlib import Path

import yaml


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode("ascii")


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_cert: Path,
    client_cert: Path | None = None,
    client_key: Path | None = None,
    token: str | None = None,
    user: str = "admin",
    namespace: str | None = None,
) -> Path:
    """Write a kubeconfig that authenticates with a client certificate or a bearer token.

    Example: `write_kubeconfig(p, server="https://127.0.0.1:6443", ca_cert=ca,
    client_cert=crt, client_key=key)` gives a context named "galleon-test".
    """
    if token is None and (client_cert is None or client_key is None):
        raise ValueError("a kubeconfig needs a token or a client certificate and key")
    credentials: dict[str, str] = {}
    if token is not None:
        credentials["token"] = token
    else:
        assert client_cert is not None and client_key is not None
        credentials["client-certificate-data"] = _b64(client_cert)
        credentials["client-key-data"] = _b64(client_key)
    context: dict[str, str] = {"cluster": "galleon-test", "user": user}
    if namespace:
        context["namespace"] = namespace
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "galleon-test",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "galleon-test", "context": context}],
        "current-context": "galleon-test",
        "preferences": {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path
