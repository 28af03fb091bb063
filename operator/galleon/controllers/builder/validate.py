"""Check a built image before it is published: a Pod of it on the home region's
nodes that must turn Ready, and/or a command in a Pod of it that must exit 0.

Rules of this module:
- A check's Pod lives in the template's namespace (its quota, its PodSecurity
  rules), owned by the ImageBuild, on the home Region's nodes, pulling the staged
  image by digest from the staging registry (with that registry's `pullSecretName`,
  as instances do). It gets no ServiceAccount token and no service links, cannot
  escalate privileges, and is deleted when its check ends.
- Its name is deterministic (`<build>-podready`, `<build>-command`): a restarted
  operator finds the Pod it made and goes on watching it.
- A check fails when its Pod ends otherwise (the exit code and the end of its log
  are reported, at most `OUTPUT_MAX` characters) or when `timeout` passes (with the
  last reason the Pod gave: an image pull error, Unschedulable, not Ready).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod

from galleon.api.imagebuild import OUTPUT_MAX
from galleon.api.imagetemplate import ReadinessProbe, Validation
from galleon.api.scaleset import duration_seconds
from galleon.controllers.common import as_dict
from galleon.core import builds
from galleon.kube import client as kube

POLL_SECONDS = 1.0
LOG_LINES = 40


@dataclass
class CheckResult:
    name: str
    passed: bool
    message: str
    output: str = ""
    pod: str | None = None
    node: str | None = None
    seconds: float = 0.0

    def status(self) -> dict[str, Any]:
        line: dict[str, Any] = {
            "name": self.name,
            "phase": "Succeeded" if self.passed else "Failed",
            "message": self.message[:4000],
            "durationSeconds": round(self.seconds, 3),
        }
        if self.output:
            line["output"] = self.output[-OUTPUT_MAX:]
        if self.pod:
            line["pod"] = self.pod
        if self.node:
            line["node"] = self.node
        return line


def probe(spec: ReadinessProbe) -> dict[str, Any]:
    """The Pod's readinessProbe for `spec`."""
    made: dict[str, Any] = {"periodSeconds": spec.period_seconds, "failureThreshold": 1}
    if spec.http_get is not None:
        made["httpGet"] = {"path": spec.http_get.path, "port": spec.http_get.port}
    elif spec.tcp_socket is not None:
        made["tcpSocket"] = {"port": spec.tcp_socket.port}
    elif spec.exec is not None:
        made["exec"] = {"command": list(spec.exec.command)}
    return made


def pod_manifest(
    build: Mapping[str, Any],
    check: str,
    image: str,
    node_selector: Mapping[str, str],
    pull_secret: str | None,
    validation: Validation,
) -> dict[str, Any]:
    meta = build["metadata"]
    container: dict[str, Any] = {
        "name": "image",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "securityContext": {"allowPrivilegeEscalation": False},
    }
    if check == "command":
        container["command"] = list(validation.command or [])
    elif validation.pod_ready is not None and validation.pod_ready.readiness_probe is not None:
        container["readinessProbe"] = probe(validation.pod_ready.readiness_probe)
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "nodeSelector": dict(node_selector),
        "activeDeadlineSeconds": int(duration_seconds(validation.timeout)) + 60,
        "terminationGracePeriodSeconds": 5,
        "containers": [container],
    }
    if validation.tolerations:
        spec["tolerations"] = [
            t.model_dump(by_alias=True, exclude_defaults=False, mode="json")
            for t in validation.tolerations
        ]
    if pull_secret:
        spec["imagePullSecrets"] = [{"name": pull_secret}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(meta["name"], check),
            "namespace": meta["namespace"],
            "labels": {
                builds.BUILD_LABEL: meta["name"][:63],
                builds.TEMPLATE_LABEL: str((build.get("spec") or {}).get("templateName", ""))[:63],
                "galleon.dev/check": check.lower(),
            },
            "ownerReferences": [
                {
                    "apiVersion": "galleon.dev/v1alpha1",
                    "kind": "ImageBuild",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": False,
                }
            ],
        },
        "spec": spec,
    }


def pod_name(build: str, check: str) -> str:
    """`<build>-<check>`, at most 253 characters.

    >>> pod_name("hardened-g3", "podReady")
    'hardened-g3-podready'
    """
    suffix = f"-{check.lower()}"
    return build[: 253 - len(suffix)] + suffix


def _waiting_reason(pod: Mapping[str, Any]) -> str:
    status = pod.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
            return f"not scheduled: {condition.get('reason')}: {condition.get('message', '')}"
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting:
            return f"{waiting.get('reason')}: {str(waiting.get('message', ''))[:300]}"
        if not container.get("ready") and (container.get("state") or {}).get("running"):
            return "running, not Ready"
    return f"phase {status.get('phase', 'Pending')}"


def _terminated(pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated")
        if terminated:
            return dict(terminated)
    return None


def _ready(pod: Mapping[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


async def _log_tail(name: str, namespace: str) -> str:
    lines: list[str] = []
    try:
        async for line in kube.client().log(name, namespace=namespace, tail_lines=LOG_LINES):
            lines.append(line)
    except Exception:  # a log that cannot be read (ApiError or other) does not change the verdict
        return ""
    return "".join(lines)[-OUTPUT_MAX:]


async def run_check(
    build: Mapping[str, Any],
    check: str,
    image: str,
    node_selector: Mapping[str, str],
    pull_secret: str | None,
    validation: Validation,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> CheckResult:
    """Run one check to its verdict; its Pod is deleted afterwards."""
    namespace = build["metadata"]["namespace"]
    document = pod_manifest(build, check, image, node_selector, pull_secret, validation)
    name = document["metadata"]["name"]
    began = monotonic()
    timeout = duration_seconds(validation.timeout)
    try:
        await kube.client().create(codecs.from_dict(document))
    except ApiError as error:
        if error.status.code != 409:  # 409: made before a restart; watch it
            return CheckResult(
                check, False, f"the check's Pod could not be created: {error.status.message}"
            )
    try:
        last = "not created yet"
        while monotonic() - began < timeout:
            found = await kube.get_or_none(Pod, name, namespace)
            if found is None:
                return CheckResult(check, False, f"Pod {name} was deleted during the check")
            pod = as_dict(found)
            node = (pod.get("spec") or {}).get("nodeName")
            terminated = _terminated(pod)
            phase = (pod.get("status") or {}).get("phase")
            if check == "command" and phase in ("Succeeded", "Failed"):
                code = (terminated or {}).get("exitCode")
                passed = phase == "Succeeded" and code == 0
                output = "" if passed else await _log_tail(name, namespace)
                reason = (terminated or {}).get("reason") or phase
                return CheckResult(
                    check,
                    passed,
                    f"the command exited {code} ({reason})"
                    + ("" if passed else f": {validation.command}"),
                    output,
                    name,
                    node,
                    monotonic() - began,
                )
            if check == "podReady":
                if _ready(pod):
                    return CheckResult(
                        check, True, "the Pod turned Ready", "", name, node, monotonic() - began
                    )
                if terminated is not None or phase in ("Succeeded", "Failed"):
                    return CheckResult(
                        check,
                        False,
                        f"the Pod ended before it was Ready: exit code "
                        f"{(terminated or {}).get('exitCode')} "
                        f"({(terminated or {}).get('reason') or phase})",
                        await _log_tail(name, namespace),
                        name,
                        node,
                        monotonic() - began,
                    )
            last = _waiting_reason(pod)
            await sleep(POLL_SECONDS)
        return CheckResult(
            check,
            False,
            f"no verdict within {validation.timeout}: {last}",
            await _log_tail(name, namespace),
            name,
            None,
            monotonic() - began,
        )
    finally:
        try:
            await kube.client().delete(Pod, name, namespace=namespace, grace_period=0)
        except ApiError as error:
            if error.status.code != 404:
                raise
