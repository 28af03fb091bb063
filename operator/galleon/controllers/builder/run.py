"""One ImageBuild, start to end: template → source → inputs → layers → staging push →
ImageVersion.

Rules of this module:
- A build's record is its status; phases only move forward and a finished build
  (Succeeded, Failed) is never run again. An operator restarted mid-build runs it
  again from the start (its phase not finished): the same inputs give the same
  bytes, blobs already pushed are skipped, and the version is created under a
  deterministic name, so the restart publishes once. `startTime` is kept, so the
  build timeout counts from the first start, across restarts.
- One build of a template runs at a time (the older first); a build waits for its
  parents (definition, gallery, home Region) and for a gallery source version with a
  completed replica while its timeout allows.
- A run reads its parents, the Region and the gallery source from the kopf indexes
  (`sources`), once: what it found is handed along (`Target`, `GallerySource`), never
  read again. Fresh reads are GETs of the build and its template (the record and the
  generation it builds) and the LISTs of the template's builds and, to publish, of the
  definition's versions.
- The output is pushed to the definition's staging repository in the first
  registry of the gallery's home region (`galleon.core.builds.staging_repository`),
  by digest and under the build's name as tag; the ImageVersion's source is that
  image by digest, which replication reads with that registry's access.
- A build publishes nothing when an ImageVersion of the definition already has its
  output digest (Succeeded, reason Unchanged): the same inputs publish once.
- The build's provenance (template, generation, source, each input's digest) is
  pushed as an OCI referrer of the image before its version is created, so the
  version's replication copies it; the version's annotations name it.
- The ImageVersion is not owned by the build (pruning history never deletes a
  version); it carries the provenance annotations of `galleon.core.builds`.
- The template's checks (`validate`) run after the push, on the home region's
  nodes (`galleon.controllers.builder.validate`); a failed check publishes nothing
  unless `continueDistributeOnFailure`, and the build says which check and how.
- Every failure ends the build Failed with a reason, a message (never a Secret's
  value) and one Event; a transient registry failure is retried (3 attempts, with
  backoff) before it fails the build.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import kopf
from lightkube.core.exceptions import ApiError
from pydantic import ValidationError

from galleon import clock
from galleon.api.customize import CustomizeStep
from galleon.api.imagetemplate import ImageTemplateSpec, Validation
from galleon.api.region import RegistryEndpoint, node_selector
from galleon.api.scaleset import duration_seconds
from galleon.controllers.builder import sources
from galleon.controllers.builder import validate as validating
from galleon.controllers.builder.sources import BuildFailed, GallerySource
from galleon.controllers.builder.status import write_status
from galleon.controllers.common import as_dict
from galleon.controllers.imageversion.reconcile import MAX_REPOSITORY_CHARS, spec_errors
from galleon.controllers.loop import backoff
from galleon.controllers.scaleset.snapshot import Sources
from galleon.controllers.shared import Runtime
from galleon.core import builds, layers, reasons, times
from galleon.core.conditions import kstatus
from galleon.core.layers import Limits
from galleon.kube import client as kube
from galleon.kube.resources import ImageBuild, ImageTemplate, ImageVersion
from galleon.metrics import BUILD_DURATION, BUILD_STEP_DURATION, BUILDS, BUILDS_RUNNING
from galleon.oci import RegistryClient, referrers
from galleon.oci import errors as oci_errors
from galleon.oci.build import BuildResult, build_image
from galleon.oci.download import DownloadRefused, download
from galleon.oci.reference import InvalidReference, parse

logger = logging.getLogger(__name__)

WAIT_SECONDS = 5.0
ATTEMPTS = 3
MAX_MESSAGE = 4096


def _message(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


def failure_reason(error: oci_errors.RegistryError, phase: str | None) -> str:
    """The reason a build fails with when a registry error is not retried (again).

    >>> failure_reason(oci_errors.NotFound("gone"), "Resolving")
    'SourceNotFound'
    >>> failure_reason(oci_errors.NotFound("gone"), "Pushing")
    'PushFailed'
    """
    if isinstance(error, DownloadRefused):
        return reasons.DOWNLOAD_FAILED
    if phase == "Pushing":
        return reasons.PUSH_FAILED
    if isinstance(error, oci_errors.NotFound):
        return reasons.SOURCE_NOT_FOUND
    return error.reason


@dataclass(frozen=True)
class Target:
    """Where a build goes, as its run read it once (`BuildRun.target`)."""

    home: str
    """The name of the gallery's home Region: checks run on its nodes."""
    region: Mapping[str, Any]
    """That Region's spec (its registries, its nodeSelector)."""
    staging: RegistryEndpoint
    """The Region's first usable registry: the build pushes its output there."""
    repository: str
    """The definition's staging repository in that registry."""


class BuildRun:
    """Runs one ImageBuild; `run_once` returns None once it has ended."""

    def __init__(self, namespace: str, name: str, runtime: Runtime, lookup: Sources) -> None:
        self.namespace, self.name, self.runtime = namespace, name, runtime
        self.lookup = lookup
        """The kopf indexes: the versions, Regions, definitions and galleries."""
        self.body: dict[str, Any] = {}
        self.status: dict[str, Any] = {}

    # -- status ----------------------------------------------------------------

    async def write(self, updates: list[Any] | None = None, **fields: Any) -> None:
        generation = self.body["metadata"].get("generation")
        self.status.update(
            await write_status(
                ImageBuild,
                self.name,
                self.namespace,
                self.status,
                generation,
                updates,
                clock.now(),
                **fields,
            )
        )

    async def waiting(self, message: str) -> float:
        if self.status.get("phase") != "Pending" or self.status.get("message") != message:
            await self.write(
                kstatus(False, reasons.BUILD_WAITING, message, progressing=True),
                phase="Pending",
                message=message,
            )
        return WAIT_SECONDS

    async def fail(self, reason: str, message: str, step: str | None = None) -> None:
        message = _message(message)
        steps = self.status.get("steps") or []
        if step is not None:
            steps = [
                {**s, "phase": "Failed", "message": message[:4000]} if s["name"] == step else s
                for s in steps
            ]
        steps = [
            {**s, "phase": "Skipped"} if s.get("phase") in ("Pending", "Running") else s
            for s in steps
        ]
        kopf.warn(cast(Any, self.body), reason=reasons.BUILD_FAILED, message=message)
        await self.write(
            kstatus(False, reason, message, stalled=True),
            phase="Failed",
            message=message,
            completionTime=times.format(clock.now()),
            steps=steps,
        )
        self.count("Failed", reason)

    def count(self, result: str, reason: str) -> None:
        BUILDS.labels(self.namespace, result, reason).inc()
        started = times.parse(self.status.get("startTime"))
        if started is not None:
            BUILD_DURATION.labels(result).observe((clock.now() - started).total_seconds())

    # -- the pass --------------------------------------------------------------

    async def run_once(self) -> float | None:
        found = await kube.get_or_none(ImageBuild, self.name, self.namespace)
        if found is None:
            return None
        self.body = as_dict(found)
        self.status = dict(self.body.get("status") or {})
        if self.body["metadata"].get("deletionTimestamp"):
            return None
        if self.status.get("phase") in builds.TERMINAL_PHASES:
            return None
        try:
            return await self.attempt()
        except BuildFailed as failure:
            await self.fail(failure.reason, failure.message, failure.step)
            return None

    def deadline(self, spec: ImageTemplateSpec) -> float:
        """Seconds left of the build timeout (counted from the first start)."""
        began = times.parse(self.status.get("startTime")) or times.parse(
            self.body["metadata"].get("creationTimestamp")
        )
        elapsed = (clock.now() - began).total_seconds() if began else 0.0
        return duration_seconds(spec.build_timeout) - elapsed

    async def attempt(self) -> float | None:
        spec_ = self.body.get("spec") or {}
        template_name = spec_.get("templateName", "")
        template = await kube.get_or_none(ImageTemplate, template_name, self.namespace)
        if template is None:
            raise BuildFailed(
                reasons.TEMPLATE_NOT_FOUND,
                f'ImageTemplate "{template_name}" does not exist in namespace {self.namespace}',
            )
        template_body = as_dict(template)
        generation = int(template_body["metadata"].get("generation") or 1)
        wanted = spec_.get("templateGeneration")
        if wanted is not None and int(wanted) != generation:
            raise BuildFailed(
                reasons.TEMPLATE_CHANGED,
                f"this build is of generation {wanted} of ImageTemplate {template_name}, which "
                f"is now at generation {generation}: the template's controller builds the new "
                "spec (or create another ImageBuild)",
            )
        try:
            spec = ImageTemplateSpec.model_validate(template_body.get("spec") or {})
        except ValidationError as error:
            raise BuildFailed(reasons.INVALID_SPEC, spec_errors(error)) from error
        if self.deadline(spec) <= 0:
            raise BuildFailed(
                reasons.BUILD_TIMED_OUT, f"the build did not end within {spec.build_timeout}"
            )
        older = [
            b
            for b in builds.running(
                [
                    builds.BuildFacts.of(as_dict(b))
                    async for b in kube.client().list(
                        ImageBuild,
                        namespace=self.namespace,
                        labels={builds.TEMPLATE_LABEL: template_name},
                    )
                ]
            )
            if (b.created, b.name) < (self.body["metadata"]["creationTimestamp"], self.name)
        ]
        if older:
            return await self.waiting(
                f"waiting for build {older[0].name} of template {template_name} to end"
            )
        target = self.target(spec)
        if isinstance(target, str):
            return await self.waiting(target)
        chosen: GallerySource | None = None
        if spec.source.image_version is not None:
            try:
                chosen = await sources.gallery_source(
                    self.namespace, spec.source.image_version, target.staging, self.lookup
                )
            except BuildFailed as failure:
                if failure.reason != reasons.SOURCE_NOT_FOUND:
                    raise
                # Applied together with its source (GitOps): wait for a replica.
                return await self.waiting(f"{failure.message}; waiting for one")
        if self.runtime.builds.locked():
            await self.waiting("waiting for a build slot (--build-concurrency)")
        async with self.runtime.builds:
            BUILDS_RUNNING.inc()
            try:
                await self.started(spec, generation)
                try:
                    await asyncio.wait_for(
                        self.build(spec, template_name, generation, target, chosen),
                        timeout=max(1.0, self.deadline(spec)),
                    )
                except TimeoutError as error:
                    raise BuildFailed(
                        reasons.BUILD_TIMED_OUT,
                        f"the build did not end within {spec.build_timeout}",
                    ) from error
            finally:
                BUILDS_RUNNING.dec()
        return None

    def target(self, spec: ImageTemplateSpec) -> str | Target:
        """Where the build goes, from the indexes (one read of each parent and of the
        home Region), or why the build waits."""
        definition_name = spec.distribute.image_definition_name
        definition = self.lookup.definition(self.namespace, definition_name)
        if definition is None:
            return f'waiting for ImageDefinition "{definition_name}" of namespace {self.namespace}'
        gallery_name = (definition.get("spec") or {}).get("galleryName", "")
        gallery_body = self.lookup.gallery(self.namespace, gallery_name)
        if gallery_body is None:
            return f'waiting for Gallery "{gallery_name}" of namespace {self.namespace}'
        home = str((gallery_body.get("spec") or {}).get("location", ""))
        region = self.lookup.region(home)
        endpoints = sources.region_endpoints(region)
        if region is None or not endpoints:
            return f'waiting for Region "{home}" (the gallery\'s home) to have a usable registry'
        repository = builds.staging_repository(
            (gallery_body.get("spec") or {}).get("repositoryPrefix", "galleon"),
            self.namespace,
            gallery_name,
            definition_name,
        )
        if len(repository) > MAX_REPOSITORY_CHARS:
            raise BuildFailed(
                reasons.INVALID_SPEC,
                f"the staging repository {repository[:64]}... is {len(repository)} characters; "
                f"registries accept at most {MAX_REPOSITORY_CHARS}",
            )
        return Target(home, dict(region.get("spec") or {}), endpoints[0], repository)

    async def started(self, spec: ImageTemplateSpec, generation: int) -> None:
        first = not self.status.get("startTime")
        steps = [
            {"name": step.name, "type": step.type, "phase": "Pending"} for step in spec.customize
        ]
        message = "resolving the source and the inputs"
        await self.write(
            kstatus(False, reasons.BUILD_RUNNING, message, progressing=True),
            phase="Resolving",
            message=message,
            startTime=self.status.get("startTime") or times.format(clock.now()),
            templateGeneration=generation,
            steps=steps,
        )
        if first:
            kopf.info(cast(Any, self.body), reason=reasons.BUILD_STARTED, message="build started")

    # -- building --------------------------------------------------------------

    async def build(
        self,
        spec: ImageTemplateSpec,
        template: str,
        generation: int,
        target: Target,
        chosen: GallerySource | None,
    ) -> None:
        """Build, retrying a transient registry failure; `chosen` is the gallery source
        the run resolved (None: the source is an image)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self.build_once(spec, template, generation, target, chosen)
                return
            except oci_errors.RegistryError as error:
                if error.permanent or attempt == ATTEMPTS:
                    reason = failure_reason(error, self.status.get("phase"))
                    raise BuildFailed(reason, f"{error}") from error
                wait = backoff(attempt)
                logger.info(
                    "build %s/%s: %s; retrying in %.1fs", self.namespace, self.name, error, wait
                )
                await asyncio.sleep(wait)
            except layers.BuildRefused as error:
                raise BuildFailed(reasons.BUILD_REFUSED, str(error)) from error

    async def build_once(
        self,
        spec: ImageTemplateSpec,
        template: str,
        generation: int,
        target: Target,
        chosen: GallerySource | None,
    ) -> None:
        registries = self.runtime.registries
        staging, repository = target.staging, target.repository
        async with contextlib.AsyncExitStack() as stack:
            destination = await stack.enter_async_context(registries.endpoint_client(staging))
            # The source.
            source_version: str | None = None
            if chosen is not None:
                source_client = (
                    destination
                    if chosen.endpoint.url == staging.url
                    else await stack.enter_async_context(
                        registries.endpoint_client(chosen.endpoint)
                    )
                )
                source_repository, source_digest = chosen.repository, chosen.digest
                source_version = chosen.version
                where = (
                    f"ImageVersion {chosen.namespace}/{chosen.name} ({chosen.version}): "
                    f"{source_client.host}/{source_repository}@{source_digest}"
                )
            else:
                image = spec.source.image
                assert image is not None
                try:
                    reference = parse(image.image)
                except InvalidReference as error:
                    raise BuildFailed(reasons.SOURCE_NOT_FOUND, str(error)) from error
                source_client = await stack.enter_async_context(
                    registries.source_client(image, self.namespace)
                )
                source_repository = reference.repository
                source_digest = (
                    await source_client.resolve(reference.repository, reference.reference)
                ).digest
                where = f"{image.image}: {reference.host}/{source_repository}@{source_digest}"
            inputs = [{"name": "source", "digest": source_digest}]
            # The inputs.
            contents: dict[str, bytes] = {}
            images: dict[str, builds.LayerImage] = {}
            extra: dict[str, RegistryClient] = {}
            for step in spec.customize:
                digest = await self.input(step, contents, images, extra, stack)
                if digest is not None:
                    inputs.append({"name": step.name, "digest": digest})
            await self.write(
                phase="Building",
                message="building the layers and pushing them",
                source=where[:2048],
                sourceDigest=source_digest,
                inputs=inputs,
            )
            try:
                steps = builds.build_steps(spec.customize, contents, images)
            except layers.BuildRefused as error:
                raise BuildFailed(reasons.BUILD_REFUSED, str(error)) from error
            result = await build_image(
                source_client,
                source_repository,
                source_digest,
                steps,
                destination,
                repository,
                builds.staging_tag(self.name),
                registries=extra,
                limits=Limits(bytes=self.runtime.config.build_max_step_bytes),
            )
        host = urlsplit(staging.url).netloc
        staged = f"{host}/{repository}@{result.digest}"
        await self.write(
            outputDigest=result.digest,
            stagingImage=staged,
            steps=self.step_statuses(spec.customize, result),
        )
        if spec.validate_ is not None:
            await self.validate(spec.validate_, staged, target)
        await self.write(phase="Publishing", message="publishing the image version")
        await self.publish(spec, template, generation, staging, staged, result, source_version)

    async def input(
        self,
        step: CustomizeStep,
        contents: dict[str, bytes],
        images: dict[str, builds.LayerImage],
        extra: dict[str, RegistryClient],
        stack: contextlib.AsyncExitStack,
    ) -> str | None:
        """Read one step's input; its digest (None: a config step)."""
        if step.layer is not None:
            image = step.layer.image
            try:
                reference = parse(image.image)
            except InvalidReference as error:
                raise BuildFailed(
                    reasons.SOURCE_NOT_FOUND, f"step {step.name}: {error}", step.name
                ) from error
            client = await stack.enter_async_context(
                self.runtime.registries.source_client(image, self.namespace)
            )
            try:
                digest = (await client.resolve(reference.repository, reference.reference)).digest
            except oci_errors.NotFound as error:
                raise BuildFailed(
                    reasons.SOURCE_NOT_FOUND, f"step {step.name}: {error}", step.name
                ) from error
            extra[step.name] = client
            images[step.name] = builds.LayerImage(step.name, reference.repository, digest)
            return digest
        kind_ref = sources.step_reference(step)
        if kind_ref is None:
            return None
        kind, ref = kind_ref
        if kind == "inline":
            data = str(ref).encode()
        elif kind == "configMap":
            data = await sources.config_map_bytes(ref, self.namespace, step.name)
        elif kind == "secret":
            data = await sources.secret_bytes(ref, self.namespace, step.name)
        else:
            try:
                data = await download(
                    ref.url,
                    ref.sha256_checksum,
                    limit=self.runtime.config.build_max_step_bytes,
                    policy=self.runtime.registries.policy,
                )
            except DownloadRefused as error:
                reason = (
                    reasons.CHECKSUM_MISMATCH
                    if "sha256 is" in str(error)
                    else reasons.DOWNLOAD_FAILED
                )
                raise BuildFailed(reason, f"step {step.name}: {error}", step.name) from error
            except oci_errors.RegistryError as error:
                if error.permanent:
                    raise BuildFailed(
                        reasons.DOWNLOAD_FAILED, f"step {step.name}: {error}", step.name
                    ) from error
                raise
        limit = self.runtime.config.build_max_step_bytes
        if len(data) > limit:
            raise BuildFailed(
                reasons.BUILD_REFUSED,
                f"step {step.name}: its {kind} input is {len(data)} bytes, more than the "
                f"operator's --build-max-step-mib ({limit >> 20} MiB)",
                step.name,
            )
        contents[step.name] = data
        return "sha256:" + hashlib.sha256(data).hexdigest()

    async def validate(self, validation: Validation, staged: str, target: Target) -> None:
        """Run the template's checks on the home region's nodes; raise BuildFailed when
        one fails (unless continueDistributeOnFailure)."""
        checks = [
            name
            for name, wanted in (
                ("podReady", validation.pod_ready is not None),
                ("command", validation.command is not None),
            )
            if wanted
        ]
        results: list[dict[str, Any]] = [{"name": c, "phase": "Pending"} for c in checks]
        await self.write(
            phase="Validating",
            message=f"validating the image on the nodes of region {target.home}",
            validation=results,
        )
        failed: list[validating.CheckResult] = []
        for index, check in enumerate(checks):
            results[index] = {"name": check, "phase": "Running"}
            await self.write(validation=results)
            result = await validating.run_check(
                self.body,
                check,
                staged,
                node_selector(target.region, target.home),
                target.staging.pull_secret_name,
                validation,
            )
            results[index] = result.status()
            await self.write(validation=results)
            if not result.passed:
                failed.append(result)
                break
        if not failed:
            await self.write(
                [(reasons.VALIDATED, "True", reasons.VALIDATION_PASSED, "every check passed")]
            )
            return
        first = failed[0]
        message = f"validation {first.name} failed: {first.message}"
        if first.output:
            message += f"; its output ends: {first.output[-1000:]}"
        if not validation.continue_distribute_on_failure:
            raise BuildFailed(reasons.VALIDATION_FAILED, message)
        kopf.warn(cast(Any, self.body), reason=reasons.VALIDATION_FAILED, message=message)
        await self.write(
            [(reasons.VALIDATED, "False", reasons.VALIDATION_FAILED, _message(message))]
        )

    def step_statuses(
        self, steps: list[CustomizeStep], result: BuildResult
    ) -> list[dict[str, Any]]:
        statuses = []
        for step, done in zip(steps, result.steps, strict=True):
            BUILD_STEP_DURATION.labels(step.type).observe(done.seconds)
            line: dict[str, Any] = {
                "name": step.name,
                "type": step.type,
                "phase": "Succeeded",
                "durationSeconds": round(done.seconds, 3),
                "message": done.description[:4000],
            }
            if done.layers:
                line["layerDigest"] = done.layers[0].digest
                line["sizeBytes"] = done.bytes
                hows = sorted({layer.how for layer in done.layers})
                line["message"] = f"{done.description[:3900]} ({', '.join(hows)})"
            statuses.append(line)
        return statuses

    # -- publishing ------------------------------------------------------------

    async def publish(
        self,
        spec: ImageTemplateSpec,
        template: str,
        generation: int,
        staging: RegistryEndpoint,
        staged: str,
        result: BuildResult,
        source_version: str | None,
    ) -> None:
        definition = spec.distribute.image_definition_name
        for _ in range(ATTEMPTS):
            versions = await sources.definition_versions(self.namespace, definition)
            mine = next(
                (
                    v
                    for v in versions
                    if (v["metadata"].get("annotations") or {}).get(
                        builds.PROVENANCE_ANNOTATIONS["build"]
                    )
                    == self.name
                ),
                None,
            )
            if mine is not None:  # created before a restart
                await self.succeeded(mine, result, reasons.PUBLISHED)
                return
            same = next(
                (
                    v
                    for v in versions
                    if (v.get("status") or {}).get("sourceDigest") == result.digest
                    or (v.get("spec") or {}).get("source", {}).get("image") == staged
                ),
                None,
            )
            if same is not None:
                await self.succeeded(same, result, reasons.UNCHANGED)
                return
            try:
                version = builds.next_version(
                    spec.distribute.versioning,
                    [str((v.get("spec") or {}).get("version")) for v in versions],
                    source_version,
                )
            except builds.VersionRefused as error:
                raise BuildFailed(reasons.VERSION_REFUSED, str(error)) from error
            attached = await self.attach_provenance(template, generation, staging, staged, result)
            document = self.version_document(
                spec, template, generation, staging, staged, result, version
            )
            document["metadata"]["annotations"][builds.PROVENANCE_ANNOTATIONS["provenance"]] = (
                attached
            )
            try:
                created = await kube.client().create(ImageVersion(document))
            except ApiError as error:
                if error.status.code == 409:
                    continue  # another version took the name: read again
                raise
            await self.succeeded(as_dict(created), result, reasons.PUBLISHED)
            return
        raise BuildFailed(
            reasons.VERSION_REFUSED,
            f"could not create a version of {definition}: the names were taken {ATTEMPTS} times",
        )

    async def attach_provenance(
        self,
        template: str,
        generation: int,
        staging: RegistryEndpoint,
        staged: str,
        result: BuildResult,
    ) -> str:
        """Push the build's provenance as a referrer of its image (before the version
        exists, so its replication copies it); the referrer's digest."""
        document = builds.provenance(
            namespace=self.namespace,
            template=template,
            generation=generation,
            build=self.name,
            source=str(self.status.get("source", ""))[:2048],
            source_digest=str(self.status.get("sourceDigest", "")),
            inputs=list(self.status.get("inputs") or []),
            output_digest=result.digest,
        )
        subject = referrers.Subject(
            result.manifest.media_type, result.digest, len(result.manifest.data)
        )
        manifest = referrers.artifact(
            subject,
            referrers.PROVENANCE_TYPE,
            [(referrers.PROVENANCE_TYPE, document)],
            {builds.PROVENANCE_ANNOTATIONS["build"]: self.name},
        )
        repository = parse(staged).repository
        async with self.runtime.registries.endpoint_client(staging) as client:
            await referrers.push(client, repository, subject, manifest, [document])
        return manifest.digest

    def version_document(
        self,
        spec: ImageTemplateSpec,
        template: str,
        generation: int,
        staging: RegistryEndpoint,
        staged: str,
        result: BuildResult,
        version: str,
    ) -> dict[str, Any]:
        definition = spec.distribute.image_definition_name
        annotations = builds.PROVENANCE_ANNOTATIONS
        return {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ImageVersion",
            "metadata": {
                "name": builds.version_object_name(definition, version),
                "namespace": self.namespace,
                "labels": {builds.TEMPLATE_LABEL: template, builds.BUILD_LABEL: self.name[:63]},
                "annotations": {
                    annotations["template"]: template,
                    annotations["generation"]: str(generation),
                    annotations["build"]: self.name,
                    annotations["source"]: str(self.status.get("sourceDigest", "")),
                    "galleon.dev/build-inputs": json.dumps(
                        self.status.get("inputs") or [], separators=(",", ":")
                    ),
                },
            },
            "spec": {
                "imageDefinitionName": definition,
                "version": version,
                "source": {
                    "image": staged,
                    "plainHTTP": urlsplit(staging.url).scheme == "http",
                },
                "publishingProfile": spec.distribute.publishing_profile.model_dump(
                    by_alias=True, exclude_none=True, mode="json"
                ),
            },
        }

    async def succeeded(self, version: Mapping[str, Any], result: BuildResult, reason: str) -> None:
        name = str(version["metadata"]["name"])
        number = str((version.get("spec") or {}).get("version", ""))
        if reason == reasons.UNCHANGED:
            message = (
                f"unchanged: ImageVersion {name} ({number}) already publishes {result.digest}; "
                "nothing new was published"
            )
        else:
            message = (
                f"published ImageVersion {name} ({number}): {result.digest}, "
                f"{result.bytes_uploaded} bytes uploaded, {result.bytes_mounted} mounted, "
                f"{result.bytes_copied} copied, {result.bytes_skipped} already there"
            )
        kopf.info(cast(Any, self.body), reason=reasons.BUILD_SUCCEEDED, message=message)
        await self.write(
            kstatus(True, reason, message),
            phase="Succeeded",
            message=message,
            imageVersion={"name": name, "version": number},
            completionTime=times.format(clock.now()),
        )
        self.count("Unchanged" if reason == reasons.UNCHANGED else "Succeeded", reason)
