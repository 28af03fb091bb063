"""One pass of an ImageTemplate: count its finished builds, start the builds its
triggers ask for, forget the oldest, say where it stands.

Rules of this module:
- The template's status is the controller's memory (`triggeredGeneration`,
  `triggeredSourceDigest`, the failed builds counted): a build is created for a
  generation or a source digest once, under a deterministic name
  (`galleon.core.builds.build_name`), so a restart between creating it and writing
  the status meets the same build (409), never a second one.
- A template builds on creation (reason Created) and on each change of its spec
  (TemplateUpdate); with `triggers.sourceImageUpdate`, when its source's latest
  version has another digest than the one last built for (SourceImageUpdate),
  unless that trigger is suspended after failed builds in a row, a build is running
  (it resolves the source itself) or the newest finished build was of that digest.
- Builds are owned by their template (deleting it deletes them); finished ones past
  `historyLimit` are deleted oldest first, after counting, never a running one.
- A pass reads the template (GET) and its builds (LIST by label) as stored now; the
  source's versions and its sharing come from the kopf indexes (`sources`). Its
  status is written once, and not at all when nothing in it changed.
"""

from __future__ import annotations

from typing import Any, cast

import kopf
from lightkube.core.exceptions import ApiError
from pydantic import ValidationError

from galleon import clock
from galleon.api.imagetemplate import FAILED_BUILDS_TO_SUSPEND, ImageTemplateSpec
from galleon.controllers.builder import sources
from galleon.controllers.builder.status import write_status
from galleon.controllers.common import as_dict, post_once
from galleon.controllers.imageversion.reconcile import spec_errors
from galleon.controllers.scaleset.snapshot import Sources
from galleon.core import builds, reasons
from galleon.core.conditions import kstatus
from galleon.kube import client as kube
from galleon.kube.resources import ImageBuild, ImageTemplate

BUSY_SECONDS = 5.0
IDLE_SECONDS = 15.0
INVALID_SECONDS = 300.0


class TemplatePass:
    """The controller of one ImageTemplate, one pass at a time."""

    def __init__(self, namespace: str, name: str, lookup: Sources) -> None:
        self.namespace, self.name = namespace, name
        self.lookup = lookup
        """The kopf indexes: the source's versions and its sharing."""

    async def run_once(self) -> float:
        found = await kube.get_or_none(ImageTemplate, self.name, self.namespace)
        if found is None:
            return IDLE_SECONDS
        body = as_dict(found)
        if body["metadata"].get("deletionTimestamp"):
            return IDLE_SECONDS
        status = dict(body.get("status") or {})
        generation = int(body["metadata"].get("generation") or 1)
        try:
            spec = ImageTemplateSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            message = spec_errors(error)
            post_once(body, status, reasons.READY, False, reasons.INVALID_SPEC, message)
            await self.write(
                body, status, kstatus(False, reasons.INVALID_SPEC, message, stalled=True)
            )
            return INVALID_SECONDS
        facts = await self.read_builds()
        streak = builds.count_failures(
            facts, int(status.get("failedBuildsInARow") or 0), status.get("countedBuild")
        )
        fields: dict[str, Any] = {
            "failedBuildsInARow": streak.failed,
            "countedBuild": streak.counted,
        }
        created = await self.trigger(body, status, spec, generation, streak, fields, facts)
        if created is not None:
            facts = [*facts, created]
        for name in builds.to_prune(facts, spec.history_limit):
            try:
                await kube.client().delete(ImageBuild, name, namespace=self.namespace)
            except ApiError as error:
                if error.status.code != 404:
                    raise
            facts = [f for f in facts if f.name != name]
        ordered = builds.in_order(facts)
        last = ordered[-1] if ordered else None
        success = builds.latest_success(facts)
        fields["builds"] = len(facts)
        fields["lastBuild"] = (
            None
            if last is None
            else {
                k: v
                for k, v in {
                    "name": last.name,
                    "phase": last.phase,
                    "outputDigest": last.output_digest,
                    "version": last.version,
                }.items()
                if v is not None
            }
        )
        fields["latestOutputDigest"] = success.output_digest if success else None
        updates = self.conditions(body, status, spec, last, streak)
        await self.write(body, status, updates, **fields)
        return BUSY_SECONDS if builds.running(facts) else IDLE_SECONDS

    async def read_builds(self) -> list[builds.BuildFacts]:
        return [
            builds.BuildFacts.of(as_dict(b))
            async for b in kube.client().list(
                ImageBuild, namespace=self.namespace, labels={builds.TEMPLATE_LABEL: self.name}
            )
        ]

    async def trigger(
        self,
        body: dict[str, Any],
        status: dict[str, Any],
        spec: ImageTemplateSpec,
        generation: int,
        streak: builds.Streak,
        fields: dict[str, Any],
        facts: list[builds.BuildFacts],
    ) -> builds.BuildFacts | None:
        """Create the build a trigger asks for, if one does; record what it was for."""
        source = spec.source.image_version
        triggered = status.get("triggeredGeneration")
        if triggered is None or int(triggered) < generation:
            reason = "Created" if triggered is None else "TemplateUpdate"
            if source is not None:
                fields["triggeredSourceDigest"] = await sources.latest_source_digest(
                    self.namespace, source, self.lookup
                )
            fields["triggeredGeneration"] = generation
            fields["failedBuildsInARow"] = 0  # a new spec: its builds start a new streak
            return await self.create(body, reason, str(generation), generation)
        if not spec.triggers.source_image_update or source is None:
            return None
        if builds.suspended(streak) or builds.running(facts):
            return None  # a running build resolves the source itself
        digest = await sources.latest_source_digest(self.namespace, source, self.lookup)
        finished = [b for b in builds.in_order(facts) if b.finished]
        built = finished[-1].source_digest if finished else None
        if digest is None or digest in (status.get("triggeredSourceDigest"), built):
            return None
        fields["triggeredSourceDigest"] = digest
        return await self.create(body, "SourceImageUpdate", digest, generation)

    async def create(
        self, body: dict[str, Any], reason: str, key: str, generation: int
    ) -> builds.BuildFacts:
        name = builds.build_name(self.name, reason, key)
        document = {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ImageBuild",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {builds.TEMPLATE_LABEL: self.name},
                "ownerReferences": [
                    {
                        "apiVersion": "galleon.dev/v1alpha1",
                        "kind": "ImageTemplate",
                        "name": self.name,
                        "uid": body["metadata"]["uid"],
                        "controller": True,
                        "blockOwnerDeletion": False,
                    }
                ],
            },
            "spec": {"templateName": self.name, "templateGeneration": generation, "reason": reason},
        }
        try:
            made = as_dict(await kube.client().create(ImageBuild(document)))
        except ApiError as error:
            if error.status.code != 409:
                raise
            found = await kube.get_or_none(ImageBuild, name, self.namespace)
            return builds.BuildFacts.of(as_dict(found) if found is not None else document)
        message = f"created ImageBuild {name} ({reason})"
        kopf.info(cast(Any, body), reason=reasons.BUILD_STARTED, message=message)
        return builds.BuildFacts.of(made)

    def conditions(
        self,
        body: dict[str, Any],
        status: dict[str, Any],
        spec: ImageTemplateSpec,
        last: builds.BuildFacts | None,
        streak: builds.Streak,
    ) -> list[Any]:
        if last is None:
            updates = kstatus(False, reasons.NO_BUILD_YET, "no build yet", progressing=True)
        elif not last.finished:
            updates = kstatus(
                False,
                reasons.BUILD_RUNNING,
                f"build {last.name} is {last.phase or 'Pending'}",
                progressing=True,
            )
        elif last.phase == "Failed":
            message = f"build {last.name} failed (kubectl galleon get imagebuild {last.name})"
            post_once(body, status, reasons.READY, False, reasons.BUILD_FAILED, message)
            updates = kstatus(False, reasons.BUILD_FAILED, message)
        else:
            message = f"build {last.name} succeeded" + (
                f": version {last.version}" if last.version else ""
            )
            updates = kstatus(True, reasons.BUILD_SUCCEEDED, message)
        if spec.triggers.source_image_update:
            if builds.suspended(streak):
                message = (
                    f"the source-update trigger is off: {streak.failed} builds failed in a row "
                    f"(at most {FAILED_BUILDS_TO_SUSPEND}); a successful build (kubectl galleon "
                    "build) or a change of the spec turns it on again"
                )
                post_once(
                    body,
                    status,
                    reasons.TRIGGERS_SUSPENDED,
                    True,
                    reasons.FAILED_IN_A_ROW,
                    message,
                    warning=True,
                )
                updates.append(
                    (reasons.TRIGGERS_SUSPENDED, "True", reasons.FAILED_IN_A_ROW, message)
                )
            else:
                updates.append((reasons.TRIGGERS_SUSPENDED, "False", reasons.TRIGGERS_ACTIVE, ""))
        return updates

    async def write(
        self, body: dict[str, Any], status: dict[str, Any], updates: list[Any], **fields: Any
    ) -> None:
        generation = body["metadata"].get("generation")
        await write_status(
            ImageTemplate,
            self.name,
            self.namespace,
            status,
            generation,
            updates,
            clock.now(),
            **fields,
        )
