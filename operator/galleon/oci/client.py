"""An async client of the OCI distribution API (aiohttp): just what replication needs.

Rules of this module:
- One `RegistryClient` per registry, sharing one aiohttp session per event loop
  section that owns it; `close()` ends it.
- Authentication follows the registry's challenge: HTTP Basic, or the Bearer
  token flow (`WWW-Authenticate: Bearer realm=...,service=...,scope=...`) with
  tokens cached per scope.
- Credentials go to the registry they were configured for and nowhere else: an
  Authorization header (Basic or a token) is attached only to URLs of the
  registry's own origin (scheme, host, port), a 401 from another origin (an
  absolute Location, a redirect) is not answered, aiohttp drops the header on a
  redirect to another origin, and the Basic credentials go to a token realm only
  when it is on the registry's own host (`realm_may_receive_credentials`), over
  https unless the registry itself is plain http; elsewhere the token is asked
  for anonymously.
- Blobs are streamed in `CHUNK` pieces, never held whole in memory.
- Every failure becomes a `galleon.oci.errors.RegistryError` with a reason, and its
  message is in galleon's words: the status, and the registry's error code when its
  JSON names one (`error_code`); never a remote body, which could be anything.
- Everything is bounded: every request has a connect, a per-read and a total
  deadline (`REQUEST_DEADLINE`; a blob's grows with its declared size at
  `MIN_BLOB_RATE`, so a drip-fed answer ends), and every body read whole is capped
  (manifests 4 MiB, token and tag-list answers `MAX_DOCUMENT_BYTES`, error bodies
  `MAX_ERROR_BYTES`).
- Paths are never resolved: a path (galleon's own or a registry's `Location`) with
  a `.` or `..` segment, in any encoding, is a ProtocolError, and references are
  checked against the tag and digest grammar before they go into a path.
- With an `AddressPolicy` (the operator always passes its own), every connection,
  redirect hop and token realm is checked against it (`galleon.oci.addresses`).
- Bearer token realms are https, unless the registry itself is plain http.
- A manifest is read to at most 4 MiB and checked before it is returned
  (`galleon.oci.manifest`): what the registry serves is never trusted, and a
  manifest galleon cannot use is a permanent ProtocolError saying why. Its digest
  is that of the bytes served; a registry naming another is lying (DigestMismatch).

Why a little over 400 lines: one protocol client whose auth, origin checks and
requests are read together; the copy logic is in `galleon.oci.copy`.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import ssl
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode, urljoin, urlsplit

import aiohttp

from galleon.oci import errors
from galleon.oci import manifest as checked
from galleon.oci.addresses import AddressPolicy, session_options
from galleon.oci.manifest import INDEX_TYPES, MANIFEST_TYPES

__all__ = ["CHUNK", "INDEX_TYPES", "MANIFEST_TYPES", "Manifest", "RegistryClient", "Resolution"]

CHUNK = 1024 * 1024
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
"""Longest wait for any bytes of an answer."""
REQUEST_DEADLINE = 60.0
"""Longest time of a whole request that is not a blob (a 4 MiB manifest in 60 s is
70 KB/s): a registry answering a byte at a time ends here."""
MIN_BLOB_RATE = 256 * 1024
"""Slowest average rate (bytes/s) a blob may flow at: its deadline is
`REQUEST_DEADLINE` plus its declared size at this rate (a 1 GiB layer: 69 min)."""
MAX_DOCUMENT_BYTES = 4 * 1024 * 1024
"""Largest token or tag-list answer read."""
MAX_ERROR_BYTES = 64 * 1024
"""Most bytes of an error answer read to find its error code."""
TIMEOUT = aiohttp.ClientTimeout(
    total=REQUEST_DEADLINE,
    connect=CONNECT_TIMEOUT,
    sock_connect=CONNECT_TIMEOUT,
    sock_read=READ_TIMEOUT,
)
TAG_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
"""The OCI distribution spec's tag grammar."""
ERROR_CODE_PATTERN = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
TOKEN_PATTERN = re.compile(r"[\x21-\x7e]{1,16384}")
"""A bearer token: visible ASCII, at most 16 KiB (a large JWT is a few KiB)."""


def blob_deadline(size: int, base: float = REQUEST_DEADLINE) -> float:
    """Seconds a blob of `size` bytes may take to flow.

    >>> blob_deadline(0), blob_deadline(1024**3)
    (60.0, 4156.0)
    """
    return base + size / MIN_BLOB_RATE


def check_reference(reference: str, where: str) -> str:
    """`reference` if it is a tag or a sha256 digest, else a ProtocolError.

    >>> check_reference("1.0.2", "x"), check_reference("sha256:" + "0" * 64, "x")[:8]
    ('1.0.2', 'sha256:0')
    >>> check_reference("../../b/manifests/1", "reg/os")
    Traceback (most recent call last):
    ...
    galleon.oci.errors.ProtocolError: reg/os: reference '../../b/manifests/1' is neither a tag ...
    """
    if TAG_PATTERN.fullmatch(reference) or checked.DIGEST_PATTERN.fullmatch(reference):
        return reference
    raise errors.ProtocolError(
        f"{where}: reference {reference[:80]!r} is neither a tag nor a sha256 digest"
    )


def check_path(path: str, where: str) -> str:
    """`path` (or URL) if none of its segments is `.` or `..` in any encoding (no
    path galleon sends is ever resolved), else a ProtocolError.

    >>> check_path("/v2/a/b/blobs/uploads/1?state=x", "r")
    '/v2/a/b/blobs/uploads/1?state=x'
    >>> check_path("/v2/a/%2E%2e/b/blobs/uploads/", "r")
    Traceback (most recent call last):
    ...
    galleon.oci.errors.ProtocolError: r: a path with a dot segment is never followed: '/v2/...
    """
    try:
        raw = urlsplit(path).path
    except ValueError:
        raw = path
    decoded = raw
    for _ in range(3):  # %252e%252e is %2e%2e once decoded, ".." twice
        decoded = unquote(decoded)
    if any(segment in (".", "..") for segment in re.split(r"[/\\]", decoded)):
        raise errors.ProtocolError(
            f"{where}: a path with a dot segment is never followed: {path[:120]!r}"
        )
    return path


def error_code(body: bytes) -> str:
    """The first error code of a registry's JSON error answer, if it is one of the
    distribution spec's form (upper case, at most 64 characters); else "".

    >>> error_code(b'{"errors": [{"code": "UNAVAILABLE", "message": "anything"}]}')
    'UNAVAILABLE'
    >>> error_code(b'{"errors": [{"code": "<script>"}]}'), error_code(b"<html>")
    ('', '')
    """
    try:
        document = json.loads(body)
        code = document["errors"][0]["code"]
    except (ValueError, TypeError, KeyError, IndexError):
        return ""
    return code if isinstance(code, str) and ERROR_CODE_PATTERN.fullmatch(code) else ""


def shown(path: str) -> str:
    """A path for a message: without its query (upload locations carry session
    state) and at most 120 characters.

    >>> shown("/v2/a/blobs/uploads/9?_state=secret")
    '/v2/a/blobs/uploads/9'
    """
    return path.split("?", 1)[0][:120]


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry served it (bytes kept exactly: they are the digest)."""

    data: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class Resolution:
    """What an image reference resolves to, every part checked: what an ImageVersion's
    status records (sourceDigest, sourceMediaType, sizeBytes)."""

    digest: str
    media_type: str
    size: int
    """Bytes of every blob (of every child, for an index), 0 to 2**63 - 1."""


DOCKER_HUB_REALMS = {"registry-1.docker.io": "auth.docker.io", "index.docker.io": "auth.docker.io"}
"""The one token realm on another host that is given credentials: Docker Hub's
registry sends its clients to auth.docker.io (the host `docker login` credentials
are meant for)."""


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL, lower case, with the scheme's default port.

    >>> origin("https://Reg.example.com/v2/"), origin("http://127.0.0.1:5000/x")
    (('https', 'reg.example.com', 443), ('http', '127.0.0.1', 5000))
    >>> origin("http://[::1/v2/")
    ('http', '', -1)
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # not a URL ("http://[::1") or not a port: an origin nothing matches
        return url.partition(":")[0].lower(), "", -1
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or ""), port or (443 if scheme == "https" else 80)


def realm_may_receive_credentials(realm: str, base_url: str) -> bool:
    """Whether the Basic credentials of the registry at `base_url` may go to token
    realm `realm`: the same host and port (or Docker Hub's auth host), over https
    unless the registry itself is reached over plain http.

    >>> realm_may_receive_credentials("https://reg.example.com/token", "https://reg.example.com")
    True
    >>> realm_may_receive_credentials("https://evil.example/token", "https://reg.example.com")
    False
    >>> realm_may_receive_credentials("http://reg.example.com/token", "https://reg.example.com")
    False
    >>> realm_may_receive_credentials("https://auth.docker.io/token", "https://registry-1.docker.io")
    True
    """
    realm_scheme, realm_host, realm_port = origin(realm)
    base_scheme, base_host, base_port = origin(base_url)
    if realm_scheme != "https" and not (realm_scheme == "http" and base_scheme == "http"):
        return False
    if DOCKER_HUB_REALMS.get(base_host) == realm_host and realm_port == 443:
        return True
    return bool(realm_host) and (realm_host, realm_port) == (base_host, base_port)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """Split a `WWW-Authenticate` header into its scheme and parameters.

    >>> parse_challenge('Bearer realm="https://a/token",service="reg",scope="repository:x:pull"')
    ('bearer', {'realm': 'https://a/token', 'service': 'reg', 'scope': 'repository:x:pull'})
    """
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistryClient:
    """Talk to one registry. Example:

    client = RegistryClient("http://127.0.0.1:5000")
    manifest = await client.get_manifest("sources/ubuntu", "1.0.0")
    await client.close()
    """

    def __init__(
        self,
        base_url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        insecure_skip_verify: bool = False,
        connections: int = 16,
        policy: AddressPolicy | None = None,
        deadline: float = REQUEST_DEADLINE,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = self.base_url.split("://", 1)[-1]
        self._basic = basic_header(username, password or "") if username is not None else None
        self._tokens: dict[str, str] = {}
        self._basic_challenged = False
        """The registry asked for Basic once: send it up front from then on (a streamed
        upload cannot be replayed after a 401)."""
        self._withheld_from: str | None = None
        """The token realm's host the credentials were not sent to, if any (for the
        message when the anonymous token is not enough)."""
        context: ssl.SSLContext | bool = True
        if insecure_skip_verify:
            context = False
        elif ca_file:
            context = ssl.create_default_context(cafile=ca_file)
        self._ssl = context
        self._connections = connections
        self.policy = policy
        """Where this client may connect (None: anywhere; the operator always has one)."""
        self.deadline = deadline
        """Longest time of a request that is not a blob (`REQUEST_DEADLINE`)."""
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            options = session_options(self.policy)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._connections, ssl=self._ssl, resolver=options["resolver"]
                ),
                timeout=TIMEOUT,
                trust_env=False,
                auto_decompress=False,
                middlewares=options["middlewares"],
                max_line_size=8190,
                max_field_size=8190,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    # -- plumbing ------------------------------------------------------------------

    def _url(self, path: str) -> str:
        check_path(path, self.host)
        if path.startswith(("http://", "https://")):
            return path
        if not path.startswith("/"):
            raise errors.ProtocolError(f"{self.host}: location {shown(path)!r} is not a path")
        try:
            return urljoin(self.base_url, path)
        except ValueError as error:  # the registry's URL is no URL: no request can succeed
            raise errors.ProtocolError(f"{self.base_url!r} is not a URL: {error}") from error

    def _own(self, url: str) -> bool:
        """Whether `url` is on the registry's own origin (where its credentials may go)."""
        return origin(url) == origin(self.base_url)

    async def _authorize(self, challenge: str, scope_hint: str) -> str | None:
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if self._basic is None:
                return None
            self._basic_challenged = True
            return self._basic
        if scheme != "bearer" or "realm" not in params:
            return None
        scope = params.get("scope") or scope_hint
        query = {k: v for k, v in (("service", params.get("service")), ("scope", scope)) if v}
        realm = params["realm"]
        realm_scheme = origin(realm)[0]
        if realm_scheme not in ("https", "http") or (
            realm_scheme == "http" and not self.base_url.startswith("http://")
        ):
            raise errors.ProtocolError(
                f"{self.host}: token realm {shown(realm)[:100]!r} is not https; galleon "
                "asks for tokens over https only (or plain http for a plain-http registry)"
            )
        check_path(realm, self.host)
        basic = self._basic
        if basic is not None and not realm_may_receive_credentials(realm, self.base_url):
            # Another host (or a downgrade to http): ask anonymously; a public image
            # still reads, a private one fails with a message saying why.
            basic, self._withheld_from = None, origin(realm)[1] or realm[:100]
        separator = "&" if "?" in realm else "?"
        try:
            async with self.session.get(
                f"{realm}{separator}{urlencode(query)}",
                headers={"Authorization": basic} if basic else None,
            ) as response:
                if response.status in (401, 403):
                    raise errors.Unauthorized(
                        f"{self.host}: token request refused ({response.status})",
                        status=response.status,
                    )
                if response.status != 200:
                    raise errors.for_status(
                        response.status,
                        f"{self.host}: token request failed ({response.status})",
                    )
                data = await read_at_most(
                    response, MAX_DOCUMENT_BYTES, f"{self.host}: token answer"
                )
        except (TimeoutError, aiohttp.ClientError, OSError) as error:
            raise errors.Unavailable(f"{self.host}: token request: {error!r}"[:300]) from error
        try:
            body = json.loads(data)
            token = body.get("token") or body.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
            raise errors.ProtocolError(
                f"{self.host}: the token answer holds no token (JSON with a token of "
                "visible ASCII, at most 16 KiB)"
            )
        # Cached under the scope galleon asks for, which is what the lookup uses (a
        # registry wording its scope otherwise would leave uploads unauthenticated).
        self._tokens[scope_hint or scope] = f"Bearer {token}"
        return self._tokens[scope_hint or scope]

    async def request(
        self,
        method: str,
        path: str,
        *,
        scope: str = "",
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        ok: tuple[int, ...] = (200,),
        stream: bool = False,
        deadline: float | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one request, answering an auth challenge once; raise on a status not in `ok`.

        `deadline` (default: the client's) bounds the whole request, reading the
        answer included. With `stream=True` the caller must release the response.
        """
        url = self._url(path)
        deadline = self.deadline if deadline is None else deadline
        timeout = aiohttp.ClientTimeout(
            total=deadline,
            connect=CONNECT_TIMEOUT,
            sock_connect=CONNECT_TIMEOUT,
            sock_read=READ_TIMEOUT,
        )
        own = self._own(url)
        headers = dict(headers or {})
        headers.pop("Authorization", None)  # set here only, for the registry's own URLs
        if own and scope in self._tokens:
            headers["Authorization"] = self._tokens[scope]
        elif own and self._basic is not None and (scope == "" or self._basic_challenged):
            headers["Authorization"] = self._basic
        for attempt in (1, 2):
            try:
                response = await self.session.request(
                    method,
                    url,
                    headers=headers,
                    data=data,
                    allow_redirects=True,
                    max_redirects=5,
                    timeout=timeout,
                )
            except (aiohttp.InvalidURL, ValueError) as error:
                # Why permanent: the same text is no more a URL on the next try.
                raise errors.ProtocolError(
                    f"{self.host}: {method} {shown(path)}: not a URL: {type(error).__name__}"
                ) from error
            except aiohttp.TooManyRedirects as error:
                raise errors.ProtocolError(
                    f"{self.host}: {method} {shown(path)}: more than 5 redirects"
                ) from error
            except TimeoutError as error:
                raise errors.Unavailable(
                    f"{self.host}: {method} {shown(path)}: no complete answer within "
                    f"{deadline:.0f}s"
                ) from error
            except (aiohttp.ClientError, OSError) as error:
                raise errors.Unavailable(
                    f"{self.host}: {method} {shown(path)}: {type(error).__name__}: "
                    f"{str(error)[:200]}"
                ) from error
            if (
                response.status == 401
                and attempt == 1
                and not callable(getattr(data, "__anext__", None))
            ):
                challenge = response.headers.get("WWW-Authenticate", "")
                answered_by = origin(str(response.url))
                response.release()
                if not own or not self._own(str(response.url)):
                    # Another origin asks for credentials (an absolute Location or a
                    # redirect elsewhere): they are not its to have.
                    raise errors.Unauthorized(
                        f"{self.host}: {method} {shown(path)}: 401 from {answered_by[1]}, "
                        f"another host than the registry's; its credentials are not sent there",
                        status=401,
                    )
                authorization = await self._authorize(challenge, scope)
                if authorization is None:
                    raise errors.Unauthorized(
                        f"{self.host}: {method} {shown(path)}: 401", status=401
                    )
                headers["Authorization"] = authorization
                continue
            if response.status not in ok:
                try:
                    code = error_code(await read_at_most(response, MAX_ERROR_BYTES, self.host))
                except errors.RegistryError:
                    code = ""  # an endless or slow error body says nothing more
                finally:
                    response.release()
                text = f" {code}" if code else ""
                if response.status == 401 and not self._own(str(response.url)):
                    text += (
                        f" (from {origin(str(response.url))[1]} after a redirect to another "
                        f"host: credentials are not sent there)"
                    )
                elif response.status == 401 and self._withheld_from:
                    text += (
                        f" (credentials were not sent to token realm host {self._withheld_from}:"
                        f" only to {self.host} itself)"
                    )
                raise errors.for_status(
                    response.status,
                    f"{self.host}: {method} {shown(path)}: {response.status}{text}",
                )
            if not stream:
                try:
                    if method != "HEAD":  # a HEAD's Content-Length is the resource's
                        await read_at_most(response, MAX_DOCUMENT_BYTES, self.host)
                finally:
                    response.release()
            return response
        raise AssertionError("unreachable")

    # -- the API ------------------------------------------------------------------

    async def ping(self) -> None:
        """GET /v2/ (authenticating if asked); raise when it is not a working registry."""
        await self.request("GET", "/v2/")

    async def get_manifest(self, repository: str, reference: str) -> Manifest:
        """The manifest, checked (`galleon.oci.manifest`); ProtocolError when it is not
        one galleon can copy, DigestMismatch when it is not what its digest says."""
        where = f"{self.host}/{repository}:{reference}"
        check_reference(reference, f"{self.host}/{repository}")
        response = await self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull",
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
            stream=True,
        )
        try:
            data = await read_at_most(response, checked.MAX_MANIFEST_BYTES, where, "the manifest")
        finally:
            response.release()
        media_type = checked.parse(
            data, response.headers.get("Content-Type", "").split(";")[0].strip(), where
        ).media_type
        digest = sha256_digest(data)
        named = response.headers.get("Docker-Content-Digest")
        for claimed in (named, reference if reference.startswith("sha256:") else None):
            if claimed is not None and claimed != digest:
                checked.check_digest(claimed, where)  # a claim that is no digest says so
                raise errors.DigestMismatch(
                    f"{where}: the manifest served is {digest}, not {claimed}"
                )
        return Manifest(data, media_type, digest)

    async def resolve(self, repository: str, reference: str) -> Resolution:
        """The digest, media type and total blob size of an image (an index's children
        read too), each checked so that status can hold them."""
        where = f"{self.host}/{repository}:{reference}"
        top = await self.get_manifest(repository, reference)
        document = checked.parse(top.data, top.media_type, where)
        children = []
        for child in document.manifests:
            fetched = await self.get_manifest(repository, child.digest)
            children.append(checked.parse(fetched.data, fetched.media_type, where))
        return Resolution(
            top.digest, top.media_type, checked.total_bytes(document, children, where)
        )

    async def has_manifest(self, repository: str, reference: str) -> bool:
        check_reference(reference, f"{self.host}/{repository}")
        try:
            await self.request(
                "HEAD",
                f"/v2/{repository}/manifests/{reference}",
                scope=f"repository:{repository}:pull",
                headers={"Accept": ", ".join(MANIFEST_TYPES)},
            )
        except errors.NotFound:
            return False
        return True

    async def put_manifest(self, repository: str, reference: str, manifest: Manifest) -> str | None:
        """Push `manifest` under `reference`; the registry's `OCI-Subject` answer (the
        subject digest it indexed as a referrer), if it gave one."""
        check_reference(reference, f"{self.host}/{repository}")
        response = await self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            scope=f"repository:{repository}:pull,push",
            headers={"Content-Type": manifest.media_type},
            data=manifest.data,
            ok=(201, 202),
        )
        subject = response.headers.get("OCI-Subject")
        return subject if subject and checked.DIGEST_PATTERN.fullmatch(subject) else None

    async def delete_manifest(self, repository: str, digest: str) -> bool:
        """Delete by digest; False when it was not there."""
        checked.check_digest(digest, f"{self.host}/{repository}")
        try:
            await self.request(
                "DELETE",
                f"/v2/{repository}/manifests/{digest}",
                scope=f"repository:{repository}:delete",
                ok=(200, 202),
            )
        except errors.NotFound:
            return False
        return True

    async def has_blob(self, repository: str, digest: str) -> bool:
        checked.check_digest(digest, f"{self.host}/{repository}")
        try:
            await self.request(
                "HEAD", f"/v2/{repository}/blobs/{digest}", scope=f"repository:{repository}:pull"
            )
        except errors.NotFound:
            return False
        return True

    async def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount in this registry; False when the registry did not mount."""
        query = urlencode({"mount": digest, "from": from_repository})
        response = await self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/?{query}",
            scope=f"repository:{repository}:pull,push",
            ok=(201, 202),
        )
        if response.status == 202:  # an upload session was opened instead; drop it
            location = response.headers.get("Location")
            if location:
                with contextlib.suppress(errors.RegistryError):
                    await self.request("DELETE", location, ok=(204, 200, 404))
            return False
        return True

    async def open_blob(
        self, repository: str, digest: str, size: int | None = None
    ) -> aiohttp.ClientResponse:
        """A streaming GET of a blob of declared `size` (its deadline grows with it; a
        Content-Length above it is a ProtocolError); release the response when done."""
        where = f"{self.host}/{repository}@{checked.check_digest(digest, self.host)}"
        response = await self.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            scope=f"repository:{repository}:pull",
            stream=True,
            deadline=blob_deadline(size or 0, self.deadline),
        )
        if size is not None and (response.content_length or 0) > size:
            response.release()
            raise errors.ProtocolError(
                f"{where}: the blob is served as {response.content_length} bytes, more than "
                f"the {size} its descriptor declares"
            )
        return response

    async def upload_blob(
        self, repository: str, digest: str, size: int, body: AsyncIterator[bytes] | bytes
    ) -> None:
        """Monolithic upload (POST, then one streamed PUT with the digest)."""
        scope = f"repository:{repository}:pull,push"
        started = await self.request(
            "POST", f"/v2/{repository}/blobs/uploads/", scope=scope, ok=(202,)
        )
        location = started.headers.get("Location")
        if not location:
            raise errors.ProtocolError(f"{self.host}: upload without a Location")
        separator = "&" if "?" in location else "?"
        await self.request(
            "PUT",
            f"{location}{separator}{urlencode({'digest': digest})}",
            scope=scope,
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            data=body,
            ok=(201,),
            deadline=blob_deadline(size, self.deadline),
        )

    async def list_tags(self, repository: str) -> list[str]:
        """The repository's tags (first page; tags not of the OCI grammar dropped)."""
        where = f"{self.host}/{repository}"
        response = await self.request(
            "GET",
            f"/v2/{repository}/tags/list",
            scope=f"repository:{repository}:pull",
            stream=True,
        )
        try:
            data = await read_at_most(response, MAX_DOCUMENT_BYTES, where, "the tag list")
        finally:
            response.release()
        try:
            tags = json.loads(data).get("tags") or []
        except (ValueError, AttributeError):
            raise errors.ProtocolError(f"{where}: the tag list is not a JSON object") from None
        if not isinstance(tags, list):
            raise errors.ProtocolError(f"{where}: the tag list's tags are not a list")
        return [t for t in tags if isinstance(t, str) and TAG_PATTERN.fullmatch(t)]


async def read_at_most(
    response: aiohttp.ClientResponse, limit: int, where: str, what: str = "the answer"
) -> bytes:
    """The body of `response`, or a ProtocolError once it passes `limit` bytes (an
    endless or oversized answer is never held whole); Unavailable when it stops or
    passes the request's deadline."""
    declared = response.content_length
    if declared is not None and declared > limit:
        raise errors.ProtocolError(f"{where}: {what} is {declared} bytes, more than {limit}")
    data = bytearray()
    try:
        async for chunk in response.content.iter_chunked(CHUNK):
            data += chunk
            if len(data) > limit:
                raise errors.ProtocolError(f"{where}: {what} is more than {limit} bytes")
    except TimeoutError as error:
        raise errors.Unavailable(f"{where}: reading {what}: no complete answer in time") from error
    except (aiohttp.ClientError, OSError) as error:
        raise errors.Unavailable(
            f"{where}: reading {what}: {type(error).__name__}: {str(error)[:200]}"
        ) from error
    return bytes(data)


def sha256_digest(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic_header(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
