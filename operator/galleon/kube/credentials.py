"""What a registry Secret's data says, for one registry host: no I/O here.

Rules of this module:
- A Secret's values are read only when bounded: a value larger than
  `MAX_SECRET_VALUE_BYTES` (decoded) is refused before it is decoded, and bad
  base64, UTF-8 or JSON is a `CredentialsError` that names the Secret and the key.
- `username`/`password` keys are the credentials of whatever registry the Secret is
  named for (the reference says which).
- A `.dockerconfigjson` holds credentials for many hosts: only the `auths` entry
  whose key is the registry's host is used, compared as `host[:port]` without
  scheme, path or trailing slash, case-insensitively (Docker Hub's spellings are one
  host). There is no "the only entry" fallback: an entry for another host is never
  sent to this one.
- Error messages name the Secret, the key and the hosts, never a credential.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

MAX_SECRET_VALUE_BYTES = 1 << 20
"""Largest Secret value read (1 MiB, the API server's limit for a whole Secret)."""
_MAX_ENCODED = 4 * -(-MAX_SECRET_VALUE_BYTES // 3)
"""Longest base64 text of a value of at most MAX_SECRET_VALUE_BYTES bytes."""
MAX_LISTED_ENTRIES = 10
"""Hosts of a .dockerconfigjson named in an error message, at most."""

DOCKER_HUB = "docker.io"
DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
"""Spellings of Docker Hub in docker config files (`https://index.docker.io/v1/` is the
classic key `docker login` writes)."""

DOCKER_CONFIG_KEY = ".dockerconfigjson"


class CredentialsError(RuntimeError):
    """A credentials Secret is missing or unusable (the message says which and why)."""


def registry_host(text: str) -> str:
    """The `host[:port]` a registry URL or docker config key stands for, lower case;
    Docker Hub's spellings are all `docker.io`.

    >>> registry_host("https://Registry.Example.com:5000/v1/")
    'registry.example.com:5000'
    >>> registry_host("https://index.docker.io/v1/"), registry_host("registry-1.docker.io")
    ('docker.io', 'docker.io')
    """
    host = text.strip()
    for scheme in ("https://", "http://"):
        if host.lower().startswith(scheme):
            host = host[len(scheme) :]
            break
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in DOCKER_HUB_ALIASES else host


def secret_value(data: Mapping[str, str], key: str, where: str) -> bytes | None:
    """The decoded value of `key` of a Secret's `data` (None when absent), bounded.

    >>> secret_value({"ca.crt": "aGVsbG8="}, "ca.crt", "ns/ca")
    b'hello'
    >>> secret_value({"ca.crt": "not base64!"}, "ca.crt", "ns/ca")
    Traceback (most recent call last):
    ...
    galleon.kube.credentials.CredentialsError: Secret ns/ca key ca.crt is not valid base64
    """
    encoded = data.get(key)
    if encoded is None:
        return None
    if len(encoded) > _MAX_ENCODED:
        raise CredentialsError(
            f"Secret {where} key {key} is larger than {MAX_SECRET_VALUE_BYTES} bytes"
        )
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise CredentialsError(f"Secret {where} key {key} is not valid base64") from error


def _text(value: bytes, where: str, what: str) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError as error:
        raise CredentialsError(f"Secret {where} {what} is not UTF-8 text") from error


def registry_credentials(data: Mapping[str, str], host: str, where: str) -> tuple[str, str]:
    """(username, password) for registry `host` from a Secret's `data` (base64 values,
    as the API returns them); `where` is `namespace/name`, for messages.

    >>> def b64(text): return base64.b64encode(text.encode()).decode()
    >>> config = '{"auths": {"https://reg.example.com/v1/": {"auth": "%s"}}}' % b64("u:p")
    >>> registry_credentials({".dockerconfigjson": b64(config)}, "REG.example.com", "ns/pull")
    ('u', 'p')
    >>> try:
    ...     registry_credentials({".dockerconfigjson": b64(config)}, "evil.example", "ns/pull")
    ... except CredentialsError as error:
    ...     print(error)
    Secret ns/pull has no .dockerconfigjson entry for host evil.example (entries: reg.example.com)
    """
    username = secret_value(data, "username", where)
    password = secret_value(data, "password", where)
    if username is not None and password is not None:
        return _text(username, where, "key username"), _text(password, where, "key password")
    config = secret_value(data, DOCKER_CONFIG_KEY, where)
    if config is None:
        raise CredentialsError(
            f"Secret {where} has neither username/password keys nor a {DOCKER_CONFIG_KEY}"
        )
    return _docker_config_credentials(config, host, where)


def _docker_config_credentials(config: bytes, host: str, where: str) -> tuple[str, str]:
    try:
        document = json.loads(config)
    except (UnicodeDecodeError, ValueError) as error:
        message = f"Secret {where} key {DOCKER_CONFIG_KEY} is not valid JSON"
        raise CredentialsError(message) from error
    auths = document.get("auths") if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise CredentialsError(f"Secret {where} key {DOCKER_CONFIG_KEY} has no auths object")
    wanted = registry_host(host)
    # An exact key first (its spelling is the most deliberate), then any equivalent one.
    keys = sorted(auths, key=lambda key: (key != host, key))
    match = next((key for key in keys if registry_host(str(key)) == wanted), None)
    if match is None:
        hosts = sorted({registry_host(str(key)) for key in auths})
        listed = ", ".join(hosts[:MAX_LISTED_ENTRIES]) or "none"
        if len(hosts) > MAX_LISTED_ENTRIES:
            listed += f", and {len(hosts) - MAX_LISTED_ENTRIES} more"
        raise CredentialsError(
            f"Secret {where} has no {DOCKER_CONFIG_KEY} entry for host {wanted} (entries: {listed})"
        )
    return _entry_credentials(auths[match], where, wanted)


def _entry_credentials(entry: Any, where: str, host: str) -> tuple[str, str]:
    what = f"{DOCKER_CONFIG_KEY} entry for host {host}"
    if not isinstance(entry, dict):
        raise CredentialsError(f"Secret {where} {what} is not an object")
    username, password = entry.get("username"), entry.get("password")
    if isinstance(username, str) and username:
        if not isinstance(password, str):
            raise CredentialsError(f"Secret {where} {what} has a username but no password")
        return username, password
    auth = entry.get("auth")
    if not isinstance(auth, str) or not auth:
        raise CredentialsError(f"Secret {where} {what} has neither username/password nor auth")
    try:
        decoded = base64.b64decode(auth, validate=True)
    except (binascii.Error, ValueError) as error:
        raise CredentialsError(f"Secret {where} {what}: auth is not valid base64") from error
    user, colon, secret = _text(decoded, where, f"{what}: auth").partition(":")
    if not colon or not user:
        raise CredentialsError(f"Secret {where} {what}: auth is not username:password")
    return user, secret
