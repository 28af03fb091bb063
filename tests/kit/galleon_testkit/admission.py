"""galleon's admission policy in the local control plane: the chart's own, enforced.

    seconds = install_admission_policy(plane)   # right after plane.apply_crds(...)

Rules of this module:

- The policy is the chart's `templates/admissionpolicy.yaml` rendered by the kit's
  helm, never a copy: every integration test runs against what users install.
- "Installed" means "enforced": the apiserver loads policies through a watch, so
  after applying we retry a request the policy must refuse (a server-side dry run,
  which writes nothing) until it is refused with the policy's message, within a
  bounded timeout. The probe acts as a user of its own (client certificate) allowed
  to create ScaleSets in one probe namespace and nothing else; RBAC allowing the
  request proves it is the policy, not RBAC, that refuses it.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import (
    ValidatingAdmissionPolicy,
    ValidatingAdmissionPolicyBinding,
)
from lightkube.resources.core_v1 import Namespace

# Importing the resource classes registers galleon's kinds with lightkube's codecs.
from galleon.kube.resources import ScaleSet
from galleon_testkit.binaries import MissingBinaries
from galleon_testkit.chart import helm_binary, render
from galleon_testkit.waiting import wait_for

if TYPE_CHECKING:
    from galleon_testkit.controlplane import ControlPlane

POLICY_TEMPLATE = "templates/admissionpolicy.yaml"
#: What the policy's message says when it refuses (see the template's messageExpression).
REFUSAL = "may not use imagedefinition"
PROBE_NAMESPACE = "galleon-admission-probe"
PROBE_USER = "galleon-test:admission-probe"
FIELD_MANAGER = "galleon-testing"
ENFORCED_TIMEOUT = 60.0


def policy_documents() -> list[dict[str, Any]]:
    """The chart's ValidatingAdmissionPolicy and its binding, rendered with defaults."""
    if not helm_binary().is_file():
        raise MissingBinaries(f"{helm_binary()} is missing; run `hack/envtest.sh`")
    return render(["--show-only", POLICY_TEMPLATE])


def scaleset_manifest(
    name: str,
    namespace: str,
    definition: str,
    *,
    definition_namespace: str | None = None,
    capacity: int = 1,
    region: str = "admission-test",
) -> dict[str, Any]:
    """The smallest valid ScaleSet following `definition` (of `definition_namespace`,
    when given). Admission and RBAC tests only: no Region of that name needs to exist.

    Example: `scaleset_manifest("web", "team-b", "ubuntu", definition_namespace="team-a")`.
    """
    reference: dict[str, Any] = {"imageDefinitionName": definition, "version": "latest"}
    if definition_namespace is not None:
        reference["namespace"] = definition_namespace
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ScaleSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "region": region,
            "capacity": capacity,
            "imageReference": reference,
            "template": {"spec": {"containers": [{"name": "os", "image": "set-by-galleon"}]}},
        },
    }


def is_policy_refusal(error: ApiError) -> bool:
    """True when `error` is galleon's admission policy refusing (403 with its message)."""
    return error.status.code == 403 and REFUSAL in str(error.status.message)


def _probe_rbac(name: str) -> list[dict[str, Any]]:
    rule = {"apiGroups": ["galleon.dev"], "resources": ["scalesets"], "verbs": ["create"]}
    meta = {"name": name, "namespace": PROBE_NAMESPACE}
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": meta,
            "rules": [rule],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": PROBE_USER}
            ],
        },
    ]


def install_admission_policy(
    plane: ControlPlane, *, workdir: Path | None = None, timeout: float = ENFORCED_TIMEOUT
) -> float:
    """Apply the chart's policy and wait until the apiserver enforces it.

    Returns the seconds from applying the policy until a probe request was refused by
    it (about 1 s on the 2-core machine, docs/control-plane.md).
    """
    admin = plane.client()
    documents = policy_documents()
    began = time.monotonic()
    for document in documents:
        admin.apply(codecs.from_dict(document), field_manager=FIELD_MANAGER, force=True)
    admin.apply(
        Namespace(metadata=ObjectMeta(name=PROBE_NAMESPACE)),
        field_manager=FIELD_MANAGER,
        force=True,
    )
    for document in _probe_rbac("admission-probe"):
        admin.apply(codecs.from_dict(document), field_manager=FIELD_MANAGER, force=True)
    folder = workdir or plane.workdir / "admission-probe"
    probe = plane.client_for_user(PROBE_USER, folder / "probe.kubeconfig")
    scaleset = ScaleSet.from_dict(
        scaleset_manifest(
            "probe", PROBE_NAMESPACE, "probe", definition_namespace=f"{PROBE_NAMESPACE}-elsewhere"
        )
    )

    def refused() -> bool:
        try:
            probe.create(scaleset, dry_run=True)
        except ApiError as error:
            # Why not raise on other errors: RBAC may not have seen the binding yet.
            return is_policy_refusal(error)
        return False  # admitted: the policy is not loaded yet

    try:
        wait_for(
            refused,
            timeout=timeout,
            description="the apiserver to enforce galleon's admission policy",
        )
    finally:
        probe.close()
        with contextlib.suppress(ApiError):
            admin.delete(Namespace, PROBE_NAMESPACE)
    return round(time.monotonic() - began, 2)


@contextlib.contextmanager
def namespace_policy(
    kube: Any,
    namespace: str,
    *,
    rule: dict[str, Any],
    expression: str,
    message: str,
    prefix: str = "test-policy",
) -> Iterator[str]:
    """A ValidatingAdmissionPolicy of one CEL validation, bound to `namespace` and
    matching `rule` (a resourceRule: apiGroups, apiVersions, operations, resources),
    as a hardened cluster might have one; its name while it exists, deleted after.
    The caller waits until it is enforced (the apiserver loads policies by watch)."""
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [rule]},
            "validations": [{"expression": expression, "message": message}],
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {
            "policyName": name,
            "validationActions": ["Deny"],
            "matchResources": {
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
            },
        },
    }
    for document in (policy, binding):
        kube.apply(codecs.from_dict(document), field_manager=FIELD_MANAGER, force=True)
    try:
        yield name
    finally:
        with contextlib.suppress(ApiError):
            kube.delete(ValidatingAdmissionPolicyBinding, name)
        with contextlib.suppress(ApiError):
            kube.delete(ValidatingAdmissionPolicy, name)
