"""Tenancy at admission, on the real apiserver: the chart's user roles (aggregated
into the built-in view, edit and admin), its ValidatingAdmissionPolicy (a ScaleSet may
name another namespace's ImageDefinition only if the user may `use` it), and the
OwnerReferencesPermissionEnforcement plugin the local control plane runs.

Tenants are real users: client certificates signed by the control plane's CA, holding
only the roles the chart ships. Namespace A publishes the ImageDefinition "ubuntu";
namespace B consumes it. These tests check admission decisions and RBAC only; no
operator runs (rollouts of shared images are test_gallery_sharing.py's).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.admissionregistration_v1 import ValidatingAdmissionPolicy
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.core_v1 import Namespace, Pod
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding, Role
from lightkube.types import PatchType

from galleon.api.crd import KINDS
from galleon.kube.resources import ImageDefinition, ImageTemplate, Region, ScaleSet
from galleon_testkit.admission import POLICY_TEMPLATE, is_policy_refusal, scaleset_manifest
from galleon_testkit.chart import CHART, helm, of_kind, render
from galleon_testkit.cluster_fixtures import short_name
from galleon_testkit.controlplane import EXTRA_ADMISSION_PLUGINS
from galleon_testkit.waiting import wait_for

pytestmark = pytest.mark.integration

RBAC_TIMEOUT = 30.0  # new bindings reach the authorizer's informers within a second
AGGREGATION_TIMEOUT = 60.0  # kube-controller-manager's clusterrole-aggregation controller
USER_ROLES = ["view", "edit", "admin", "image-user", "region-viewer"]


def user_roles(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The chart's roles for people, by suffix: {"view": {...}, "edit": {...}, ...}."""
    roles = {d["metadata"]["name"]: d for d in of_kind(documents, "ClusterRole")}
    return {
        suffix: roles[f"galleon-{suffix}"] for suffix in USER_ROLES if f"galleon-{suffix}" in roles
    }


def grants(role: dict[str, Any], resource: str, verb: str) -> bool:
    return any(
        "galleon.dev" in rule.get("apiGroups", [])
        and resource in rule.get("resources", [])
        and verb in rule.get("verbs", [])
        for rule in role.get("rules") or []
    )


# -- the chart ---------------------------------------------------------------------------


def test_the_chart_renders_the_user_roles_and_the_policy() -> None:
    documents = render()
    roles = user_roles(documents)
    assert sorted(roles) == sorted(USER_ROLES)
    labels = {suffix: role["metadata"]["labels"] for suffix, role in roles.items()}
    for suffix in ("view", "edit", "admin"):
        assert labels[suffix][f"rbac.authorization.k8s.io/aggregate-to-{suffix}"] == "true"
    for suffix in ("image-user", "region-viewer"):
        assert not any(k.startswith("rbac.authorization.k8s.io/aggregate") for k in labels[suffix])
    assert grants(roles["view"], "scalesets/status", "get")
    assert not grants(roles["edit"], "scalesets/status", "patch")
    assert not grants(roles["edit"], "regions", "create")
    assert grants(roles["admin"], "imagedefinitions", "use")
    assert not grants(roles["edit"], "imagedefinitions", "use")
    assert [r["verbs"] for r in roles["image-user"]["rules"]] == [["use"]]
    # Every namespaced kind: read by view, written by edit and admin, status never;
    # the kinds only galleon writes (a region agent's tasks) are in no role for people.
    for kind in (k for k in KINDS if k.internal):
        for suffix, role in roles.items():
            for verb in ("get", "list", "create", "patch", "delete"):
                assert not grants(role, kind.plural, verb), (suffix, kind.plural, verb)
    for kind in (k for k in KINDS if k.scope == "Namespaced" and not k.internal):
        for suffix in ("view", "edit", "admin"):
            assert grants(roles[suffix], kind.plural, "get"), (suffix, kind.plural)
            assert grants(roles[suffix], f"{kind.plural}/status", "get"), (suffix, kind.plural)
            assert not grants(roles[suffix], f"{kind.plural}/status", "patch"), suffix
        assert not grants(roles["view"], kind.plural, "create"), kind.plural
        for suffix in ("edit", "admin"):
            assert grants(roles[suffix], kind.plural, "create"), (suffix, kind.plural)
            assert grants(roles[suffix], kind.plural, "delete"), (suffix, kind.plural)
    # The operator's own role: exactly `update` on scalesets/finalizers for the plugin.
    operator_role = next(
        d for d in of_kind(documents, "ClusterRole") if d["metadata"]["name"] == "galleon"
    )
    finalizers = [r for r in operator_role["rules"] if "scalesets/finalizers" in r["resources"]]
    assert finalizers == [
        {"apiGroups": ["galleon.dev"], "resources": ["scalesets/finalizers"], "verbs": ["update"]}
    ]
    policies = of_kind(documents, "ValidatingAdmissionPolicy")
    bindings = of_kind(documents, "ValidatingAdmissionPolicyBinding")
    assert len(policies) == 2 and len(bindings) == 2
    assert [b["spec"] for b in bindings] == [
        {"policyName": p["metadata"]["name"], "validationActions": ["Deny"]} for p in policies
    ]
    # The main resources only: not status, not scale.
    assert [
        [r["resources"] for r in p["spec"]["matchConstraints"]["resourceRules"]] for p in policies
    ] == [[["scalesets"]], [["imagetemplates"]]]


def test_the_policy_and_the_user_roles_can_be_left_out() -> None:
    without = render(["--set", "admissionPolicy.enabled=false,rbac.userRoles=false"])
    assert of_kind(without, "ValidatingAdmissionPolicy") == []
    assert of_kind(without, "ValidatingAdmissionPolicyBinding") == []
    assert user_roles(without) == {}
    assert [d["metadata"]["name"] for d in of_kind(without, "ClusterRole")] == ["galleon"]
    completed = helm("template", "galleon", str(CHART), "--set", "admissionPolicy.nope=1")
    assert completed.returncode != 0
    assert "values don't meet the specifications of the schema" in completed.stderr
    assert render(["--show-only", POLICY_TEMPLATE])  # what the test kit installs


def test_the_control_plane_runs_the_chart_policy_type_checked(kube: Client) -> None:
    """The session's policy is the chart's, and the apiserver type-checked it cleanly
    (the kit already proved it enforced before the first test)."""
    for rendered in of_kind(render(), "ValidatingAdmissionPolicy"):
        name = rendered["metadata"]["name"]

        def checked(name: str = name) -> Any:
            status = kube.get(ValidatingAdmissionPolicy, name).status
            return status if status and status.observedGeneration else None

        status = wait_for(checked, timeout=30, description=f"{name}'s type checking reported")
        installed = kube.get(ValidatingAdmissionPolicy, name)
        assert installed.spec is not None
        assert installed.spec.to_dict()["validations"] == rendered["spec"]["validations"]
        warnings = status.typeChecking.expressionWarnings if status.typeChecking else None
        assert not warnings, (name, warnings)


# -- fixtures: the users and their namespaces --------------------------------------------


@dataclass
class Tenancy:
    """Namespace `publisher` (A) holding ImageDefinition "ubuntu"; namespace `consumer` (B)."""

    publisher: str
    consumer: str
    client_for: Callable[..., Client]
    kube: Client

    def bind(self, namespace: str, role: str, user: str, *, by: Client | None = None) -> str:
        """RoleBinding of ClusterRole `role` to `user` in `namespace` (as `by`, or admin)."""
        name = f"{role}-{user}"[:63]
        (by or self.kube).create(
            codecs.from_dict(
                {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "RoleBinding",
                    "metadata": {"name": name, "namespace": namespace},
                    "roleRef": {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "ClusterRole",
                        "name": role,
                    },
                    "subjects": [
                        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                    ],
                }
            )
        )
        return name

    def scaleset(self, name: str, definition_namespace: str | None, **extra: Any) -> Any:
        return codecs.from_dict(
            scaleset_manifest(
                name, self.consumer, "ubuntu", definition_namespace=definition_namespace, **extra
            )
        )


@pytest.fixture(scope="module")
def chart_user_roles(kube: Client) -> Iterator[dict[str, dict[str, Any]]]:
    """Install the chart's roles for people; wait until the built-in view, edit and
    admin have aggregated them."""
    roles = user_roles(render())
    for role in roles.values():
        kube.apply(codecs.from_dict(role), force=True)

    def aggregated(builtin: str, resource: str, verb: str) -> bool:
        rules = kube.get(ClusterRole, builtin).rules or []
        return any(
            "galleon.dev" in (r.apiGroups or [])
            and resource in (r.resources or [])
            and verb in (r.verbs or [])
            for r in rules
        )

    for builtin, resource, verb in [
        ("view", "scalesets", "get"),
        ("edit", "scalesets", "create"),
        ("admin", "imagedefinitions", "use"),
    ]:
        wait_for(
            partial(aggregated, builtin, resource, verb),
            timeout=AGGREGATION_TIMEOUT,
            description=f"built-in {builtin} to aggregate {verb} {resource}.galleon.dev",
        )
    # Kept afterwards: they are the chart's, installed for the whole session (other
    # modules' tenants rely on them, see the kit's `chart_identity`).
    yield roles


@pytest.fixture
def tenancy(
    control_plane: Any,
    kube: Client,
    namespace: str,
    chart_user_roles: dict[str, dict[str, Any]],
    tmp_path: Path,
) -> Iterator[Tenancy]:
    consumer = f"{namespace}-b"[:63]
    kube.create(Namespace(metadata=ObjectMeta(name=consumer)))
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "ImageDefinition",
                "metadata": {"name": "ubuntu", "namespace": namespace},
                "spec": {
                    "galleryName": "gallery",
                    "identifier": {"publisher": "galleon", "offer": "test", "sku": "ubuntu"},
                    "osType": "Linux",
                },
            }
        )
    )
    clients: list[Client] = []

    def client_for(user: str) -> Client:
        client = control_plane.client_for_user(user, tmp_path / f"{user}.kubeconfig")
        clients.append(client)
        return client

    yield Tenancy(namespace, consumer, client_for, kube)
    for client in clients:
        client.close()
    for s in kube.list(ScaleSet, namespace=consumer):
        with contextlib.suppress(ApiError):
            kube.delete(ScaleSet, s.metadata.name, namespace=consumer)
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, consumer)


def may(client: Client, verb: str, resource: str, namespace: str) -> bool:
    """`kubectl auth can-i <verb> <resource>.galleon.dev -n <namespace>` as `client`."""
    review = SelfSubjectAccessReview(
        spec=SelfSubjectAccessReviewSpec(
            resourceAttributes=ResourceAttributes(
                group="galleon.dev", resource=resource, verb=verb, namespace=namespace
            )
        )
    )
    answer = client.create(review)
    return bool(answer.status and answer.status.allowed)


def refused(attempt: Callable[[], Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        attempt()
    return caught.value


def admitted_eventually(attempt: Callable[[], Any], description: str) -> Any:
    """Retry `attempt` until it succeeds: a new RoleBinding takes a moment to apply."""

    def succeeded() -> Any:
        return attempt() or True

    return wait_for(succeeded, timeout=RBAC_TIMEOUT, description=description)


def refused_by_policy_eventually(attempt: Callable[[], Any], description: str) -> ApiError:
    """Retry `attempt` until the admission policy refuses it (RBAC may still be
    catching up with a new binding, which also answers 403, without the message)."""
    seen: list[ApiError] = []
    admitted: list[Any] = []

    def decided() -> bool:
        try:
            admitted.append(attempt())
        except ApiError as error:
            seen.append(error)
            return is_policy_refusal(error)
        return True  # admitted: stop at once, and fail below

    wait_for(decided, timeout=RBAC_TIMEOUT, description=description)
    assert not admitted, f"admitted, expected the policy to refuse: {description}"
    return seen[-1]


# -- (b) and (c): use of another namespace's definition ----------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param({}, id="no namespace"),
        pytest.param({"namespace": None}, id="namespace null"),
        pytest.param({"namespace": "own"}, id="own namespace by name"),
    ],
)
def test_an_editor_creates_scalesets_that_follow_its_own_namespace(
    tenancy: Tenancy, request: pytest.FixtureRequest, reference: dict[str, Any]
) -> None:
    user = short_name(request.node.nodeid, "editor")
    tenancy.bind(tenancy.consumer, "edit", user)
    editor = tenancy.client_for(user)
    manifest = scaleset_manifest("own", tenancy.consumer, "ubuntu")
    if "namespace" in reference:
        value = reference["namespace"]
        manifest["spec"]["imageReference"]["namespace"] = (
            tenancy.consumer if value == "own" else value
        )
    admitted_eventually(
        lambda: editor.create(codecs.from_dict(manifest)), "the editor creates a ScaleSet in B"
    )
    assert tenancy.kube.get(ScaleSet, "own", namespace=tenancy.consumer)


def test_an_editor_may_not_use_another_namespace_definition_until_granted(
    tenancy: Tenancy, request: pytest.FixtureRequest
) -> None:
    user = short_name(request.node.nodeid, "editor")
    tenancy.bind(tenancy.consumer, "edit", user)
    editor = tenancy.client_for(user)
    a = tenancy.publisher
    error = refused_by_policy_eventually(
        lambda: editor.create(tenancy.scaleset("shared", a)),
        "the policy to refuse the editor's cross-namespace ScaleSet",
    )
    assert error.status.code == 403
    assert error.status.reason == "Forbidden"
    expected = (
        f"user may not use imagedefinition {a}/ubuntu "
        f"(needs verb use on imagedefinitions.galleon.dev in {a})"
    )
    assert expected in str(error.status.message), error.status.message
    assert [s.metadata.name for s in tenancy.kube.list(ScaleSet, namespace=tenancy.consumer)] == []

    # A's namespace admin (built-in admin, with galleon-admin aggregated) shares the
    # definition: RBAC lets them bind image-user because they hold `use` in A.
    owner = short_name(request.node.nodeid, "owner")
    tenancy.bind(a, "admin", owner)
    publisher_admin = tenancy.client_for(owner)
    admitted_eventually(
        lambda: tenancy.bind(a, "galleon-image-user", user, by=publisher_admin),
        "A's admin to bind galleon-image-user for B's editor",
    )
    created = admitted_eventually(
        lambda: editor.create(tenancy.scaleset("shared", a)),
        "the same create to be admitted once the editor may use A's definition",
    )
    assert created.spec["imageReference"]["namespace"] == a
    # image-user grants `use` only: no read of A's objects.
    assert refused(lambda: editor.get(ImageDefinition, "ubuntu", namespace=a)).status.code == 403


def template_from(namespace: str, definition_namespace: str) -> Any:
    """An ImageTemplate of `namespace` that builds from ubuntu of `definition_namespace`."""
    return ImageTemplate.from_dict(
        {
            "apiVersion": "galleon.dev/v1alpha1",
            "kind": "ImageTemplate",
            "metadata": {"name": "from-shared", "namespace": namespace},
            "spec": {
                "source": {
                    "imageVersion": {
                        "imageDefinitionName": "ubuntu",
                        "namespace": definition_namespace,
                    }
                },
                "customize": [
                    {
                        "name": "motd",
                        "type": "File",
                        "file": {"destination": "/etc/motd", "content": {"inline": "hi"}},
                    }
                ],
                "distribute": {
                    "imageDefinitionName": "ubuntu-b",
                    "publishingProfile": {"targetRegions": [{"name": "admission-test"}]},
                },
            },
        }
    )


def test_an_editor_may_not_build_from_another_namespace_definition_until_granted(
    tenancy: Tenancy, request: pytest.FixtureRequest
) -> None:
    user = short_name(request.node.nodeid, "builder")
    tenancy.bind(tenancy.consumer, "edit", user)
    editor = tenancy.client_for(user)
    a = tenancy.publisher
    error = refused_by_policy_eventually(
        lambda: editor.create(template_from(tenancy.consumer, a), dry_run=True),
        "the policy to refuse the editor's template building from A",
    )
    assert error.status.code == 403 and error.status.reason == "Forbidden"
    assert f"user may not use imagedefinition {a}/ubuntu" in str(error.status.message)
    # Its own namespace's definitions need nothing more than edit.
    admitted_eventually(
        lambda: editor.create(template_from(tenancy.consumer, tenancy.consumer), dry_run=True),
        "a template building from its own namespace",
    )
    tenancy.bind(a, "galleon-image-user", user)
    admitted_eventually(
        lambda: editor.create(template_from(tenancy.consumer, a), dry_run=True),
        "the same template once the editor may use A's definition",
    )


def test_a_user_with_only_edit_in_b_may_not_grant_himself_use_in_a(
    tenancy: Tenancy, request: pytest.FixtureRequest
) -> None:
    user = short_name(request.node.nodeid, "editor")
    tenancy.bind(tenancy.consumer, "edit", user)
    editor = tenancy.client_for(user)
    admitted_eventually(
        lambda: list(editor.list(ScaleSet, namespace=tenancy.consumer)), "the editor's binding"
    )
    error = refused(lambda: tenancy.bind(tenancy.publisher, "galleon-image-user", user, by=editor))
    assert error.status.code == 403
    # Nor in B itself, pointing at A: a binding in B does not reach A's definitions.
    tenancy.bind(tenancy.consumer, "galleon-image-user", user)
    wait_for(
        lambda: may(editor, "use", "imagedefinitions", tenancy.consumer),
        timeout=RBAC_TIMEOUT,
        description="the editor's `use` in B to be effective",
    )
    assert not may(editor, "use", "imagedefinitions", tenancy.publisher)
    refused_by_policy_eventually(
        lambda: editor.create(tenancy.scaleset("shared", tenancy.publisher)),
        "the policy to refuse: use granted in B, not in A",
    )


# -- (d): changing a cross-namespace ScaleSet --------------------------------------------


@pytest.mark.parametrize(
    ("change", "needs_use"),
    [
        pytest.param({"spec": {"capacity": 3}}, False, id="capacity"),
        pytest.param(
            {"spec": {"template": {"metadata": {"labels": {"tier": "web"}}}}},
            False,
            id="template labels",
        ),
        pytest.param({"metadata": {"labels": {"team": "b"}}}, False, id="object labels"),
        pytest.param(
            {"spec": {"imageReference": {"namespace": None}}}, False, id="back to own namespace"
        ),
        pytest.param(
            {"spec": {"imageReference": {"imageDefinitionName": "other"}}},
            True,
            id="another definition of A",
        ),
        pytest.param({"spec": {"imageReference": {"version": "1.0.2"}}}, True, id="pinned version"),
    ],
)
def test_changing_a_cross_namespace_scaleset_needs_use_only_to_change_its_reference(
    tenancy: Tenancy, request: pytest.FixtureRequest, change: dict[str, Any], needs_use: bool
) -> None:
    # The admin (who may use everything) created it; the editor of B has no `use` in A.
    tenancy.kube.create(tenancy.scaleset("shared", tenancy.publisher))
    user = short_name(request.node.nodeid, "editor")
    tenancy.bind(tenancy.consumer, "edit", user)
    editor = tenancy.client_for(user)

    def patch() -> Any:
        return editor.patch(
            ScaleSet, "shared", change, namespace=tenancy.consumer, patch_type=PatchType.MERGE
        )

    if needs_use:
        error = refused_by_policy_eventually(patch, "the policy to refuse the new reference")
        assert f"imagedefinition {tenancy.publisher}/" in str(error.status.message)
    else:
        admitted_eventually(patch, "the editor's change to be admitted")


def test_scaling_a_cross_namespace_scaleset_through_the_scale_subresource(
    tenancy: Tenancy, request: pytest.FixtureRequest
) -> None:
    tenancy.kube.create(tenancy.scaleset("shared", tenancy.publisher))
    user = short_name(request.node.nodeid, "editor")
    tenancy.bind(tenancy.consumer, "edit", user)
    editor = tenancy.client_for(user)
    admitted_eventually(
        lambda: editor.patch(
            ScaleSet.Scale,
            "shared",
            {"spec": {"replicas": 4}},
            namespace=tenancy.consumer,
            patch_type=PatchType.MERGE,
        ),
        "kubectl scale as the editor",
    )
    assert tenancy.kube.get(ScaleSet, "shared", namespace=tenancy.consumer).spec["capacity"] == 4
    # ...but the editor may not write status (the operator's alone).
    error = refused(
        lambda: editor.patch(
            ScaleSet.Status,
            "shared",
            {"status": {"observedGeneration": 99}},
            namespace=tenancy.consumer,
            patch_type=PatchType.MERGE,
        )
    )
    assert error.status.code == 403


# -- (e): viewers and regions ------------------------------------------------------------


def test_a_viewer_reads_scalesets_but_creates_nothing(
    tenancy: Tenancy, request: pytest.FixtureRequest
) -> None:
    tenancy.kube.create(tenancy.scaleset("own", None))
    user = short_name(request.node.nodeid, "viewer")
    tenancy.bind(tenancy.consumer, "view", user)
    viewer = tenancy.client_for(user)
    got = admitted_eventually(
        lambda: viewer.get(ScaleSet, "own", namespace=tenancy.consumer), "the viewer's get"
    )
    assert got.metadata.name == "own"
    assert [s.metadata.name for s in viewer.list(ScaleSet, namespace=tenancy.consumer)] == ["own"]
    assert viewer.get(ScaleSet.Status, "own", namespace=tenancy.consumer)
    for attempt in (
        lambda: viewer.create(tenancy.scaleset("mine", None)),
        lambda: viewer.patch(
            ScaleSet,
            "own",
            {"spec": {"capacity": 2}},
            namespace=tenancy.consumer,
            patch_type=PatchType.MERGE,
        ),
        lambda: viewer.delete(ScaleSet, "own", namespace=tenancy.consumer),
    ):
        error = refused(attempt)
        assert error.status.code == 403 and not is_policy_refusal(error), error.status.message


def test_regions_are_readable_only_through_a_cluster_binding(
    tenancy: Tenancy, kube: Client, request: pytest.FixtureRequest
) -> None:
    region = short_name(request.node.nodeid, "r")
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "galleon.dev/v1alpha1",
                "kind": "Region",
                "metadata": {"name": region},
                "spec": {"registries": [{"name": "r0", "url": "http://127.0.0.1:1"}]},
            }
        )
    )
    user = short_name(request.node.nodeid, "tenant")
    tenancy.bind(tenancy.consumer, "edit", user)
    tenant = tenancy.client_for(user)
    admitted_eventually(
        lambda: list(tenant.list(ScaleSet, namespace=tenancy.consumer)), "the tenant's binding"
    )
    # A RoleBinding (even to edit, which aggregates galleon-view) never grants a
    # cluster-scoped kind.
    assert refused(lambda: tenant.get(Region, region)).status.code == 403
    binding = f"region-viewer-{user}"[:63]
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": binding},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "galleon-region-viewer",
                },
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )
    )
    try:
        admitted_eventually(lambda: tenant.get(Region, region), "galleon-region-viewer's get")
        assert region in [r.metadata.name for r in tenant.list(Region)]
        for attempt in (
            lambda: tenant.patch(
                Region, region, {"metadata": {"labels": {"x": "y"}}}, patch_type=PatchType.MERGE
            ),
            lambda: tenant.delete(Region, region),
        ):
            assert refused(attempt).status.code == 403
    finally:
        with contextlib.suppress(ApiError):
            kube.delete(ClusterRoleBinding, binding)
        with contextlib.suppress(ApiError):
            kube.delete(Region, region)


# -- OwnerReferencesPermissionEnforcement ------------------------------------------------


def test_blocking_owner_deletion_needs_update_on_the_scaleset_finalizers(
    tenancy: Tenancy, kube: Client, request: pytest.FixtureRequest
) -> None:
    """What the plugin refuses, and the one rule of the chart that lets the operator in."""
    assert "OwnerReferencesPermissionEnforcement" in EXTRA_ADMISSION_PLUGINS
    namespace = tenancy.consumer
    owner = kube.create(tenancy.scaleset("owner", None))
    user = short_name(request.node.nodeid, "pods")
    role = f"pods-{user}"[:63]
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": role, "namespace": namespace},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}],
            }
        )
    )
    kube.create(
        codecs.from_dict(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": {"name": role, "namespace": namespace},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
                "subjects": [
                    {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}
                ],
            }
        )
    )
    creator = tenancy.client_for(user)
    pod = Pod.from_dict(
        {
            "metadata": {
                "name": "owner-0",
                "namespace": namespace,
                "ownerReferences": [
                    {
                        "apiVersion": "galleon.dev/v1alpha1",
                        "kind": "ScaleSet",
                        "name": "owner",
                        "uid": owner.metadata.uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": {"containers": [{"name": "os", "image": "registry.invalid/os:1"}]},
        }
    )
    seen: list[ApiError] = []
    admitted: list[Any] = []

    def decided() -> bool:
        try:
            admitted.append(creator.create(pod, dry_run=True))
        except ApiError as error:  # RBAC may not have seen the binding yet
            seen.append(error)
            return "cannot set blockOwnerDeletion" in str(error.status.message)
        return True

    wait_for(decided, timeout=RBAC_TIMEOUT, description="the plugin to refuse the pod")
    assert not admitted, "admitted without update on scalesets/finalizers"
    assert "can't set finalizers on" in str(seen[-1].status.message)
    kube.patch(
        Role,
        role,
        {
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]},
                {
                    "apiGroups": ["galleon.dev"],
                    "resources": ["scalesets/finalizers"],
                    "verbs": ["update"],
                },
            ]
        },
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    admitted_eventually(
        lambda: creator.create(pod, dry_run=True),
        "the same pod admitted with update on scalesets/finalizers",
    )
