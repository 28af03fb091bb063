"""From galleon's resources to registry clients: credentials, TLS, and the calls
the controllers make (ping, resolve, fan-out copy, presence, delete).

Rules of this module: credentials come from Secrets at the moment of use (never
cached beyond one call), clients are closed after each call, and every registry
failure surfaces as a `RegistryError` with a reason. Which namespace a Secret is
read from is decided here, once per kind: a Region's (cluster-scoped) where it says,
else the operator's; an ImageVersion's always its own (`source_access`). The
credentials are those of the registry's host only (`galleon.kube.credentials`).
A version whose source is its own definition's staging repository in a registry of
its gallery's home region (an image galleon built: `staged_endpoint`) is read with
that registry's access: the repository is derived from the version's own namespace,
so no tenant reaches another's staged images that way.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from galleon.api.common import LocalSecretReference, SecretReference
from galleon.api.imageversion import ImageSource
from galleon.api.region import RegistryEndpoint
from galleon.core.replication import Location
from galleon.kube import client as kube
from galleon.kube.credentials import registry_host
from galleon.oci import RegistryClient, Target, copy_image_to_many, referrers
from galleon.oci import errors as oci_errors
from galleon.oci.addresses import AddressPolicy
from galleon.oci.copy import CopyResult
from galleon.oci.reference import InvalidReference, parse

RegistryError = oci_errors.RegistryError
PING_TIMEOUT = 5.0


@dataclass(frozen=True)
class Destination:
    location: Location
    endpoint: RegistryEndpoint


@dataclass(frozen=True)
class Resolved:
    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class SecretName:
    """A Secret the operator reads, with its namespace already decided."""

    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Access:
    """How to reach one registry: its Secrets (namespaces decided by the caller, see
    `Registries`) and TLS verification."""

    credentials: SecretName | None = None
    ca: SecretName | None = None
    insecure_skip_verify: bool = False


async def _credentials(secret: SecretName | None, host: str) -> tuple[str, str] | None:
    if secret is None:
        return None
    try:
        return await kube.registry_credentials(secret.name, secret.namespace, host)
    except kube.CredentialsError as error:
        raise oci_errors.Unauthorized(str(error)) from error


@contextlib.asynccontextmanager
async def _ca_file(secret: SecretName | None) -> AsyncIterator[str | None]:
    """The CA bundle of Secret `secret` (key `ca.crt`) as a temporary file, if any."""
    if secret is None:
        yield None
        return
    try:
        bundle = await kube.ca_bundle(secret.name, secret.namespace)
    except kube.CredentialsError as error:
        raise oci_errors.Unauthorized(f"CA {error}") from error
    with tempfile.NamedTemporaryFile("wb", suffix=".pem") as holder:
        holder.write(bundle)
        holder.flush()
        yield holder.name


@contextlib.asynccontextmanager
async def _client(url: str, access: Access, policy: AddressPolicy) -> AsyncIterator[RegistryClient]:
    credentials = await _credentials(access.credentials, registry_host(url))
    async with _ca_file(access.ca) as ca_file:
        client = RegistryClient(
            url,
            username=credentials[0] if credentials else None,
            password=credentials[1] if credentials else None,
            ca_file=ca_file,
            insecure_skip_verify=access.insecure_skip_verify,
            policy=policy,
        )
        try:
            yield client
        finally:
            await client.close()


def endpoint_access(endpoint: RegistryEndpoint, operator_namespace: str) -> Access:
    """A Region registry's Secrets: where the Region says, else the operator's namespace
    (Regions are cluster-scoped: only a cluster administrator writes them).

    >>> endpoint = RegistryEndpoint.model_validate(
    ...     {"name": "a", "url": "https://r", "credentialsSecretRef": {"name": "push"}}
    ... )
    >>> str(endpoint_access(endpoint, "galleon-system").credentials)
    'galleon-system/push'
    """
    tls = endpoint.tls

    def located(ref: SecretReference | None) -> SecretName | None:
        return None if ref is None else SecretName(ref.namespace or operator_namespace, ref.name)

    return Access(
        credentials=located(endpoint.credentials_secret_ref),
        ca=located(tls.ca_secret_ref if tls else None),
        insecure_skip_verify=bool(tls and tls.insecure_skip_verify),
    )


def source_access(source: ImageSource, namespace: str) -> Access:
    """An ImageVersion source's Secrets: always of the version's own `namespace`.

    The API refuses a namespace on these references (admission and the model); one
    that arrives anyway (an object stored before the rule, a model built without
    validation) is ignored, so a tenant never gets another namespace's Secret read.

    >>> source = ImageSource.model_construct(
    ...     image="evil.example/x:1",
    ...     credentials_secret_ref=LocalSecretReference.model_construct(
    ...         name="push", namespace="galleon-system"
    ...     ),
    ...     tls=None,
    ... )
    >>> str(source_access(source, "tenant-a").credentials)
    'tenant-a/push'
    """
    tls = source.tls

    def located(ref: LocalSecretReference | None) -> SecretName | None:
        return None if ref is None else SecretName(namespace, ref.name)

    return Access(
        credentials=located(source.credentials_secret_ref),
        ca=located(tls.ca_secret_ref if tls else None),
        insecure_skip_verify=bool(tls and tls.insecure_skip_verify),
    )


def _source_url(source: ImageSource) -> tuple[str, str, str]:
    try:
        reference = parse(source.image)
    except InvalidReference as error:
        raise oci_errors.NotFound(str(error)) from error
    scheme = "http" if source.plain_http else "https"
    return f"{scheme}://{reference.host}", reference.repository, reference.reference


def staged_endpoint(
    source: ImageSource, staging_repository: str, endpoints: Sequence[RegistryEndpoint]
) -> RegistryEndpoint | None:
    """The registry of `endpoints` that `source` names the staging repository of, if
    it names exactly `staging_repository` there (host, scheme and path); else None.

    >>> e = RegistryEndpoint.model_validate({"name": "r0", "url": "http://reg:5000"})
    >>> s = ImageSource.model_validate(
    ...     {"image": "reg:5000/g/ns/gal/os__staging@sha256:" + "a" * 64, "plainHTTP": True}
    ... )
    >>> staged_endpoint(s, "g/ns/gal/os__staging", [e]).name
    'r0'
    >>> staged_endpoint(s, "g/other/gal/os__staging", [e]) is None
    True
    """
    try:
        reference = parse(source.image)
    except InvalidReference:
        return None
    if reference.repository != staging_repository:
        return None
    scheme = "http" if source.plain_http else "https"
    for endpoint in endpoints:
        parts = urlsplit(endpoint.url)
        if (
            parts.scheme == scheme
            and parts.netloc.lower() == reference.host.lower()
            and parts.path in ("", "/")
        ):
            return endpoint
    return None


async def copy_referrers(
    source: RegistryClient,
    repository: str,
    digest: str,
    copied: Sequence[tuple[Destination, Target]],
    outcomes: dict[Location, Any],
) -> None:
    """Copy the referrers of `repository@digest` (a build's provenance, signatures,
    SBOMs) to every destination the image reached, and list them there (the
    referrers API, else the fallback tag). A referrer the source lists but does not
    hold is skipped; any other failure becomes that destination's outcome (retried
    like a failed copy)."""
    try:
        found = await referrers.listed(source, repository, digest)
    except RegistryError as error:
        outcomes.update({d.location: error for d, _ in copied})
        return
    if not found:
        return
    live = list(copied)
    kept: list[referrers.Referrer] = []
    for referrer in found:
        try:
            results = await copy_image_to_many(
                source,
                repository,
                referrer.digest,
                [Target(t.client, t.repository) for _, t in live],
            )
        except oci_errors.NotFound:
            continue  # listed, not there: nothing to copy
        except RegistryError as error:
            outcomes.update({d.location: error for d, _ in live})
            return
        kept.append(referrer)
        for (destination, _), result in zip(live, results, strict=True):
            if isinstance(result, RegistryError):
                outcomes[destination.location] = result
        live = [
            (d, t)
            for (d, t), r in zip(live, results, strict=True)
            if not isinstance(r, RegistryError)
        ]
    for destination, target in live:
        try:
            if not await referrers.supports_api(target.client, target.repository, digest):
                await referrers.add_to_fallback(target.client, target.repository, digest, kept)
        except RegistryError as error:
            outcomes[destination.location] = error


class Registries:
    """The registry calls of the controllers, with the operator's namespace as the home
    of cluster-scoped Regions' Secrets and the operator's address policy for every
    connection (sources and Regions' registries alike). One per operator, made at
    start-up."""

    def __init__(self, operator_namespace: str, policy: AddressPolicy | None = None) -> None:
        self.operator_namespace = operator_namespace
        self.policy = policy or AddressPolicy.of()

    @contextlib.asynccontextmanager
    async def endpoint_client(self, endpoint: RegistryEndpoint) -> AsyncIterator[RegistryClient]:
        """A client of a Region's registry (its Secrets default to the operator's namespace)."""
        access = endpoint_access(endpoint, self.operator_namespace)
        async with _client(endpoint.url, access, self.policy) as client:
            yield client

    @contextlib.asynccontextmanager
    async def source_client(
        self, source: ImageSource, namespace: str, staged: RegistryEndpoint | None = None
    ) -> AsyncIterator[RegistryClient]:
        """A client of an ImageVersion's source registry (Secrets of the version's
        `namespace` only, whatever the references say), or of the home region's
        registry `staged` that `staged_endpoint` found the source in."""
        if staged is not None:
            async with self.endpoint_client(staged) as client:
                yield client
            return
        url, _, _ = _source_url(source)
        async with _client(url, source_access(source, namespace), self.policy) as client:
            yield client

    async def ping(self, endpoint: RegistryEndpoint) -> tuple[bool, str]:
        """(reachable, why not)."""
        try:
            async with self.endpoint_client(endpoint) as client:
                await asyncio.wait_for(client.ping(), PING_TIMEOUT)
        except TimeoutError:
            return False, f"no answer within {PING_TIMEOUT:.0f}s"
        except RegistryError as error:
            return False, f"{error.reason}: {error}"
        return True, ""

    async def resolve_source(
        self, source: ImageSource, namespace: str, staged: RegistryEndpoint | None = None
    ) -> Resolved:
        """The digest, media type and total blob size of the source image."""
        _, repository, reference = _source_url(source)
        async with self.source_client(source, namespace, staged) as client:
            resolution = await client.resolve(repository, reference)
        return Resolved(resolution.digest, resolution.media_type, resolution.size)

    async def fan_out(
        self,
        source: ImageSource,
        namespace: str,
        digest: str,
        destinations: Sequence[Destination],
        repository: str,
        *,
        tags: Sequence[str],
        progress: Callable[[Location, int, int], None],
        staged: RegistryEndpoint | None = None,
    ) -> Mapping[Location, Any]:
        """Copy the source image (pinned to `digest`) to every destination at once."""
        _, source_repository, _ = _source_url(source)
        async with contextlib.AsyncExitStack() as stack:
            try:
                source_client_ = await stack.enter_async_context(
                    self.source_client(source, namespace, staged)
                )
            except RegistryError as error:
                return {d.location: error for d in destinations}
            targets: list[Target] = []
            outcomes: dict[Location, Any] = {}
            live: list[Destination] = []
            for destination in destinations:
                try:
                    client = await stack.enter_async_context(
                        self.endpoint_client(destination.endpoint)
                    )
                except RegistryError as error:
                    outcomes[destination.location] = error
                    continue
                targets.append(Target(client, repository, tuple(tags)))
                live.append(destination)
            if not targets:
                return outcomes
            try:
                results = await copy_image_to_many(
                    source_client_,
                    source_repository,
                    digest,
                    targets,
                    progress=lambda i, done, total: progress(live[i].location, done, total),
                )
            except RegistryError as error:
                return {**outcomes, **{d.location: error for d in live}}
            outcomes.update({d.location: r for d, r in zip(live, results, strict=True)})
            copied = [
                (d, t)
                for d, t, r in zip(live, targets, results, strict=True)
                if isinstance(r, CopyResult)
            ]
            if copied:
                await copy_referrers(source_client_, source_repository, digest, copied, outcomes)
            return outcomes

    async def has_manifest(self, endpoint: RegistryEndpoint, repository: str, digest: str) -> bool:
        async with self.endpoint_client(endpoint) as client:
            return await client.has_manifest(repository, digest)

    async def delete_image(self, endpoint: RegistryEndpoint, repository: str, digest: str) -> None:
        async with self.endpoint_client(endpoint) as client:
            await client.delete_manifest(repository, digest)
