"""Whatever a user writes is refused at admission with a message, or answered by the
operator with a condition: never a silent retry loop, never a crash, never a stuck
finalizer.

Three hundred manifests are mutated from `examples/` with a fixed seed (wrong types,
missing fields, huge and negative numbers, odd versions, long names, bad durations
and timestamps, bad label keys, long strings, unknown fields and unknown
references), applied to the real API server in one batch, and watched all at once:

- a refusal is an HTTP 422 (or 400) with a message;
- an object the API server admits is answered within the timeout with a `Ready`
  condition of its current generation carrying a reason and a message. In this
  world nothing that needs a registry or a node can succeed (the registries and the
  source are a closed port, the Regions' nodes do not exist), so every admitted
  ImageVersion, ScaleSet and Region must be `Ready=False`; a Gallery or an
  ImageDefinition may be `Ready=True`, as its parents exist, when its spec is one
  the model accepts;
- the operator process is the one started at the beginning (it never restarted);
- once everything is deleted, nothing is left behind a finalizer.

And each bound the schema sets (a table, one case per bound) is refused at
admission with the words that say why, and by the model too where the model sees
the field.
"""

from __future__ import annotations

import copy
import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from lightkube import Client, codecs
from lightkube.core.exceptions import ApiError
from pydantic import ValidationError

from galleon.api.crd import kind_named
from galleon.api.scaleset import check_name
from galleon.kube.resources import (
    Gallery,
    ImageDefinition,
    ImageTemplate,
    ImageVersion,
    Region,
    ScaleSet,
)
from galleon_testkit.binaries import REPO_ROOT
from galleon_testkit.waiting import WaitTimeout, wait_for

pytestmark = pytest.mark.integration

SEED = 20260311
MANIFESTS = 300
ANSWER_TIMEOUT = 75.0
GONE_TIMEOUT = 60.0
CLOSED = "127.0.0.1:1"
"""A port nothing listens on: every registry of this world refuses connections."""
RESOURCES = {
    "Region": Region,
    "Gallery": Gallery,
    "ImageDefinition": ImageDefinition,
    "ImageVersion": ImageVersion,
    "ScaleSet": ScaleSet,
    "ImageTemplate": ImageTemplate,
}
MAY_BE_READY = {"Gallery", "ImageDefinition"}
"""Kinds whose parents exist in this world, so a valid one is rightly Ready."""

WRONG_TYPES: list[Any] = [0, -1, 1.5, "x", "", True, None, [], [1], {}, {"a": 1}]
NUMBERS: list[Any] = [-1, 0, -(2**31), 2**31, 2**53 + 1, 2**63 - 1, 10**30, 1e308, 0.5]
VERSIONS = [
    "1.0",
    "01.0.0",
    "1.0.0-rc1",
    "v1.0.0",
    "",
    " 1.0.0",
    "1.0.0.0",
    "latest",
    "9" * 50 + ".0",
    "1.0." + "9" * 48,
    "1.0." + "9" * 49,
]
DURATIONS = [
    "P9999999999D",
    "P99999999999D",
    "P24855DT3H14M8S",
    "P24855DT3H14M7S",
    "PT-5M",
    "-PT5M",
    "P1Y",
    "P1M",
    "PT5M30",
    "PT0.5S",
    "PT",
    "P",
    "",
    "30s",
    "PT" + "9" * 40 + "S",
]
TIMESTAMPS = [
    "2027-01-01T00:00:00",
    "2027-01-01",
    "2027-01-01 00:00:00Z",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+14:00",
    "soon",
    "",
    "2027-01-01T00:00:00Z",
]
BAD_KEYS = ["bad key", "a/b/c", "-x", "x" * 64, ("d" * 254) + "/x", "UPPER/case", ""]
BAD_LABEL_VALUES = ["bad value", "x" * 64, "-x", "é"]
NAME_LENGTHS = [56, 57, 58, 63, 64, 253, 254]


# The world ------------------------------------------------------------------------


def examples() -> list[dict[str, Any]]:
    documents = []
    for path in sorted((REPO_ROOT / "examples").glob("*.yaml")):
        documents += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return [d for d in documents if d["apiVersion"].startswith("galleon.dev/")]


def localized(document: dict[str, Any], tag: str, namespace: str) -> dict[str, Any]:
    """An example moved into this test's world: its namespace, Regions named after the
    test (they are cluster-scoped), every registry and source on the closed port."""
    document = copy.deepcopy(document)
    meta, spec = document["metadata"], document["spec"]
    if document["kind"] == "Region":
        meta["name"] = f"{tag}-{meta['name']}"
        for registry in spec.get("registries") or []:
            registry["url"] = f"http://{CLOSED}"
    else:
        meta["namespace"] = namespace
    if document["kind"] == "Gallery":
        spec["location"] = f"{tag}-{spec['location']}"
    if document["kind"] == "ImageVersion":
        for target in spec["publishingProfile"]["targetRegions"]:
            target["name"] = f"{tag}-{target['name']}"
        image = spec["source"]["image"]
        spec["source"]["image"] = CLOSED + image[image.index("/") :]
    if document["kind"] == "ScaleSet":
        spec["region"] = f"{tag}-{spec['region']}"
    return document


# Mutations ------------------------------------------------------------------------

Path = tuple[Any, ...]


def nodes(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every (path, value) under `value`, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from nodes(item, (*path, index))


def put(document: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = document
    for key in path[:-1]:
        if isinstance(node, dict) and not isinstance(node.get(key), dict | list):
            node[key] = {}
        node = node[key]
    node[path[-1]] = value


def spec_paths(document: dict[str, Any], wanted: Callable[[Any], bool]) -> list[Path]:
    return [("spec", *p) for p, v in nodes(document["spec"]) if p and wanted(v)]


class Mutator:
    """Seeded mutations of one manifest; each says what it did (for failure messages)."""

    def __init__(self, rng: random.Random, index: int, tag: str) -> None:
        self.rng, self.index, self.tag = rng, index, tag

    def any_path(self, document: dict[str, Any]) -> Path:
        return self.rng.choice(spec_paths(document, lambda _: True))

    def wrong_type(self, document: dict[str, Any]) -> str:
        path = self.any_path(document)
        old = self._get(document, path)
        value = self.rng.choice([v for v in WRONG_TYPES if type(v) is not type(old)])
        put(document, path, value)
        return f"{self._shown(path)}={value!r}"

    def missing(self, document: dict[str, Any]) -> str:
        path = self.any_path(document)
        parent = self._get(document, path[:-1])
        if isinstance(parent, list):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
        return f"without {self._shown(path)}"

    def number(self, document: dict[str, Any]) -> str:
        paths = spec_paths(document, lambda v: isinstance(v, int) and not isinstance(v, bool))
        path = self.rng.choice(paths) if paths else ("spec", "capacity")
        value = self.rng.choice(NUMBERS)
        put(document, path, value)
        return f"{self._shown(path)}={value!r}"

    def version(self, document: dict[str, Any]) -> str:
        value = self.rng.choice(VERSIONS)
        if document["kind"] == "ScaleSet":
            path: Path = ("spec", "imageReference", "version")
        else:
            path = ("spec", "version")
        put(document, path, value)
        return f"{self._shown(path)}={value!r}"

    def long_name(self, document: dict[str, Any]) -> str:
        length = self.rng.choice(NAME_LENGTHS)
        start = document["metadata"]["name"] + "-"
        name = (start + "n" * length)[:length]
        targets: list[Path] = [("metadata", "name")]
        spec = document["spec"]
        if document["kind"] == "ScaleSet":
            targets += [("spec", "dataDisks", 0, "name"), ("spec", "osContainerName")]
            targets += [("spec", "imageReference", "imageDefinitionName")]
        if document["kind"] == "ImageVersion":
            targets += [("spec", "publishingProfile", "targetRegions", 0, "name")]
        if document["kind"] == "Region" and spec.get("registries"):
            targets += [("spec", "registries", 0, "name")]
        if document["kind"] == "Gallery":
            targets += [("spec", "location"), ("spec", "repositoryPrefix")]
        path = self.rng.choice(targets)
        put(document, path, name)
        return f"{self._shown(path)} of {length} characters"

    def duration(self, document: dict[str, Any]) -> str:
        if document["kind"] != "ScaleSet":
            return self.wrong_type(document)
        field = self.rng.choice(["pauseTimeBetweenBatches", "upgradedInstanceHealthTimeout"])
        value = self.rng.choice(DURATIONS)
        put(document, ("spec", "upgradePolicy", "rollingUpgradePolicy", field), value)
        return f"{field}={value!r}"

    def timestamp(self, document: dict[str, Any]) -> str:
        value = self.rng.choice(TIMESTAMPS)
        if document["kind"] == "ImageVersion":
            path: Path = ("spec", "publishingProfile", "endOfLifeDate")
        elif document["kind"] == "ImageDefinition":
            path = ("spec", "endOfLifeDate")
        else:
            return self.number(document)
        put(document, path, value)
        return f"{self._shown(path)}={value!r}"

    def labels(self, document: dict[str, Any]) -> str:
        key, value = self.rng.choice(BAD_KEYS), "v"
        if self.rng.random() < 0.4:
            key, value = "app", self.rng.choice(BAD_LABEL_VALUES)
        if document["kind"] == "ScaleSet":
            field = self.rng.choice(["labels", "annotations"])
            path: Path = ("spec", "template", "metadata", field)
        elif document["kind"] == "Region":
            path = ("spec", "nodeSelector")
        elif document["kind"] == "Gallery":
            path = ("spec", "sharingProfile")
            put(document, path, {"permissions": "Namespaces", "namespaces": [key or "x"]})
            return f"sharingProfile namespaces [{key!r}]"
        else:
            return self.long_string(document)
        put(document, path, {key: value})
        return f"{self._shown(path)}={{{key!r}: {value!r}}}"

    def long_string(self, document: dict[str, Any]) -> str:
        paths = spec_paths(document, lambda v: isinstance(v, str))
        path = self.rng.choice(paths)
        length = self.rng.choice([64, 254, 1025, 5000, 70000])
        put(document, path, "x" * length)
        return f"{self._shown(path)} of {length} characters"

    def unknown_field(self, document: dict[str, Any]) -> str:
        paths = [("spec",), *spec_paths(document, lambda v: isinstance(v, dict))]
        path = self.rng.choice(paths)
        put(document, (*path, "mystery"), self.rng.choice(WRONG_TYPES))
        return f"{self._shown(path)}.mystery"

    def reference(self, document: dict[str, Any]) -> str:
        kind, spec = document["kind"], document["spec"]
        if kind == "ScaleSet":
            choices: list[tuple[Path, Any]] = [
                (("spec", "region"), "nowhere"),
                (("spec", "imageReference", "imageDefinitionName"), "missing"),
                (("spec", "imageReference", "namespace"), "no-such-namespace"),
                (("spec", "osContainerName"), "absent"),
            ]
        elif kind == "ImageVersion":
            choices = [
                (("spec", "imageDefinitionName"), "missing"),
                (("spec", "publishingProfile", "targetRegions"), [{"name": "nowhere"}]),
                (("spec", "source", "image"), f"{CLOSED}/none/none:1.0.0"),
                (("spec", "source", "image"), "not a reference"),
                (("spec", "source", "image"), f"{CLOSED}/x@sha256:zz"),
                (("spec", "source", "credentialsSecretRef"), {"name": "no-such-secret"}),
            ]
        elif kind == "ImageDefinition":
            choices = [(("spec", "galleryName"), "missing")]
        elif kind == "Gallery":
            choices = [(("spec", "location"), "nowhere")]
        else:
            registries = spec.get("registries") or [{}]
            choices = [
                (("spec", "registries"), [{**registries[0], "url": "ftp://x"}]),
                (("spec", "registries"), [{"name": "a", "url": "http://[::1"}]),
                (("spec", "registries"), []),
            ]
        path, value = self.rng.choice(choices)
        put(document, path, value)
        return f"{self._shown(path)}={value!r}"

    MUTATIONS = (
        "wrong_type",
        "missing",
        "number",
        "version",
        "long_name",
        "duration",
        "timestamp",
        "labels",
        "long_string",
        "unknown_field",
        "reference",
    )

    def mutate(self, document: dict[str, Any]) -> list[str]:
        done = []
        for _ in range(self.rng.choice([1, 1, 2, 3])):
            name = self.rng.choice(self.MUTATIONS)
            try:
                done.append(getattr(self, name)(document))
            except (IndexError, KeyError, TypeError):
                done.append(f"{name}: nothing to mutate")
        return done

    @staticmethod
    def _get(document: Any, path: Path) -> Any:
        node = document
        for key in path:
            node = node[key]
        return node

    @staticmethod
    def _shown(path: Path) -> str:
        return ".".join(str(p) for p in path)[:80]


def mutants(tag: str, namespace: str) -> list[tuple[dict[str, Any], list[str]]]:
    rng = random.Random(SEED)
    bases = [localized(d, tag, namespace) for d in examples()]
    result = []
    for index in range(MANIFESTS):
        document = copy.deepcopy(rng.choice(bases))
        meta = document["metadata"]
        meta["name"] = f"{tag}-m{index}" if document["kind"] == "Region" else f"m{index}"
        result.append((document, Mutator(rng, index, tag).mutate(document)))
    return result


# Observing ------------------------------------------------------------------------


def key_of(document: dict[str, Any]) -> tuple[str, str]:
    return document["kind"], document["metadata"]["name"]


def ready_condition(obj: dict[str, Any]) -> dict[str, Any] | None:
    """The Ready condition, if it answers the object's current generation."""
    generation = obj["metadata"].get("generation")
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") != "Ready":
            continue
        observed = condition.get("observedGeneration")
        if observed is not None and generation is not None and observed != generation:
            return None
        return dict(condition)
    return None


def model_accepts(kind: str, spec: Any) -> bool:
    try:
        kind_named(kind).spec.model_validate(spec)
    except ValidationError:
        return False
    return True


def test_what_the_api_admits_is_answered_and_what_it_refuses_says_why(
    kube: Client, namespace: str, operator: Any
) -> None:
    tag = "f" + hashlib.sha256(namespace.encode()).hexdigest()[:6]
    pid = operator.pid
    created: dict[tuple[str, str], tuple[dict[str, Any], list[str]]] = {}
    parents = [localized(d, tag, namespace) for d in examples()]
    parents = [d for d in parents if d["kind"] in ("Region", "Gallery", "ImageDefinition")]
    refusals: Counter[str] = Counter()
    problems: list[str] = []
    try:
        for parent in parents:
            kube.create(codecs.from_dict(parent))
        for document, done in mutants(tag, namespace):
            try:
                kube.create(codecs.from_dict(document))
            except ApiError as error:
                message = error.status.message or ""
                if error.status.code not in (400, 422) or not message.strip():
                    problems.append(
                        f"{key_of(document)} {done}: HTTP {error.status.code} {message!r}"
                    )
                refusals[document["kind"]] += 1
                continue
            created[key_of(document)] = (document, done)
        assert not problems, "\n".join(problems)
        assert len(created) >= 50, f"only {len(created)} of {MANIFESTS} admitted: mutate less"
        assert sum(refusals.values()) >= 50, f"only {dict(refusals)} refused: mutate more"

        def unanswered() -> list[tuple[str, str]]:
            answered = set()
            for kind, resource in RESOURCES.items():
                scope = {} if kind == "Region" else {"namespace": namespace}
                for obj in kube.list(resource, **scope):
                    obj = dict(obj)
                    condition = ready_condition(obj)
                    if condition and condition.get("reason") and condition.get("message"):
                        answered.add((kind, obj["metadata"]["name"]))
            return sorted(set(created) - answered)

        pending: list[tuple[str, str]] = []

        def all_answered() -> bool:
            pending[:] = unanswered()
            return not pending

        try:
            wait_for(
                all_answered,
                timeout=ANSWER_TIMEOUT,
                description=f"a Ready condition with a reason and a message on all "
                f"{len(created)} admitted objects",
            )
        except WaitTimeout as timeout:
            details = [f"{kind}/{name} {created[kind, name][1]}" for kind, name in pending]
            raise AssertionError(f"{timeout}; unanswered:\n" + "\n".join(details)) from None
        for (kind, name), (_, done) in sorted(created.items()):
            scope = {} if kind == "Region" else {"namespace": namespace}
            obj = dict(kube.get(RESOURCES[kind], name, **scope))
            condition = ready_condition(obj) or {}
            if condition.get("status") == "True" and not (
                kind in MAY_BE_READY and model_accepts(kind, obj["spec"])
            ):
                problems.append(f"{kind}/{name} {done}: Ready=True in a world where it cannot be")
            if condition.get("status") not in ("True", "False"):
                problems.append(f"{kind}/{name} {done}: Ready={condition.get('status')}")
        assert not problems, "\n".join(problems)
        assert operator.process.running() and operator.pid == pid, "the operator restarted"
    finally:
        everything = [*parents, *(document for document, _ in created.values())]
        for document in everything:
            kind, name = key_of(document)
            scope = {} if kind == "Region" else {"namespace": namespace}
            try:
                kube.delete(RESOURCES[kind], name, **scope)
            except ApiError as error:
                if error.status.code != 404:
                    raise

    def left() -> list[str]:
        names = {key_of(d) for d in everything}
        remaining = []
        for kind, resource in RESOURCES.items():
            scope = {} if kind == "Region" else {"namespace": namespace}
            for obj in kube.list(resource, **scope):
                if (kind, obj.metadata.name) in names:
                    finalizers = obj.metadata.finalizers or []
                    remaining.append(f"{kind}/{obj.metadata.name} finalizers={finalizers}")
        return remaining

    wait_for(
        lambda: not left(),
        timeout=GONE_TIMEOUT,
        description="every object gone once deleted (no finalizer left behind)",
    )
    assert operator.process.running() and operator.pid == pid, "the operator restarted"


# Each bound, one case ----------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """`value` written at `path` of an example."""

    path: Path
    value: Any

    def __call__(self, document: dict[str, Any]) -> None:
        put(document, self.path, self.value)


def setting(*path: Any, value: Any) -> Setting:
    return Setting(path, value)


BOUNDS = [
    pytest.param(
        "ScaleSet", setting("metadata", "name", value="w" * 58), "at most 57", id="scaleset-name"
    ),
    pytest.param(
        "ScaleSet", setting("metadata", "name", value="web.v1"), "DNS label", id="scaleset-dots"
    ),
    pytest.param(
        "Region", setting("metadata", "name", value="r" * 64), "DNS label", id="region-name"
    ),
    pytest.param(
        "Region", setting("metadata", "name", value="east.us"), "DNS label", id="region-dots"
    ),
    pytest.param(
        "ImageVersion",
        setting("spec", "version", value="1.0." + "9" * 49),
        "52",
        id="version-over-revision-label",
    ),
    pytest.param(
        "ScaleSet",
        setting("spec", "imageReference", "version", value="1.0." + "9" * 49),
        "52",
        id="pinned-version-over-revision-label",
    ),
    pytest.param(
        "ScaleSet",
        setting("spec", "dataDisks", 0, "name", value="d" * 59),
        "58",
        id="disk-name-over-volume-name",
    ),
    pytest.param(
        "ScaleSet",
        setting(
            "spec",
            "upgradePolicy",
            "rollingUpgradePolicy",
            "pauseTimeBetweenBatches",
            value="P9999999999D",
        ),
        "at most 2147483647 seconds",
        id="pause-overflows",
    ),
    pytest.param(
        "ScaleSet",
        setting(
            "spec",
            "upgradePolicy",
            "rollingUpgradePolicy",
            "upgradedInstanceHealthTimeout",
            value="P24855DT3H14M8S",
        ),
        "at most 2147483647 seconds",
        id="health-timeout-one-second-over",
    ),
    pytest.param(
        "ScaleSet",
        setting(
            "spec",
            "upgradePolicy",
            "rollingUpgradePolicy",
            "pauseTimeBetweenBatches",
            value="P99999999999D",
        ),
        "ISO 8601 duration",
        id="pause-eleven-digits",
    ),
    pytest.param(
        # Refused before galleon bounded anything: the API server's date-time format
        # wants a zone. Kept as the guard of that assumption (times.parse relies on it).
        "ImageVersion",
        setting("spec", "publishingProfile", "endOfLifeDate", value="2027-01-01T00:00:00"),
        "date-time",
        id="zone-less-end-of-life",
    ),
    pytest.param(
        "ScaleSet",
        setting("spec", "template", "metadata", "labels", value={"bad key": "x"}),
        "qualified names",
        id="label-key",
    ),
    pytest.param(
        "ScaleSet",
        setting("spec", "template", "metadata", "labels", value={"app": "bad value"}),
        "should match",
        id="label-value",
    ),
    pytest.param(
        "ScaleSet",
        setting(
            "spec",
            "template",
            "metadata",
            "annotations",
            value={f"k{i}": "x" * 8000 for i in range(40)},
        ),
        "262144 bytes",
        id="annotations-total",
    ),
    pytest.param(
        "Region",
        setting("spec", "nodeSelector", value={"a/b/c": "x"}),
        "qualified names",
        id="node-selector-key",
    ),
    pytest.param(
        "Region",
        setting("spec", "registries", 0, "url", value="http://[::1"),
        "must be a URL",
        id="registry-url-not-a-url",
    ),
    pytest.param(
        "ScaleSet",
        setting("spec", "dataDisks", 0, "storageClassName", value="Fast_SSD"),
        "should match",
        id="storage-class-name",
    ),
    pytest.param(
        "ScaleSet",
        setting("spec", "osContainerName", value="OS"),
        "should match",
        id="os-container",
    ),
    pytest.param(
        "ImageVersion",
        setting("spec", "source", "credentialsSecretRef", value={"name": "a/b"}),
        "should match",
        id="secret-name",
    ),
]


@pytest.mark.parametrize(("kind", "change", "words"), BOUNDS)
def test_each_bound_is_refused_at_admission_with_its_reason(
    kube: Client, namespace: str, kind: str, change: Setting, words: str
) -> None:
    document = next(localized(d, "fb", namespace) for d in examples() if d["kind"] == kind)
    change(document)
    with pytest.raises(ApiError) as refused:
        kube.create(codecs.from_dict(document), dry_run=True)
    assert refused.value.status.code == 422
    assert words in (refused.value.status.message or ""), refused.value.status.message
    # The operator and the CLI parse with the models: they refuse what admission does.
    if change.path[0] == "spec":
        assert not model_accepts(kind, document["spec"])
    elif kind == "ScaleSet":
        with pytest.raises(ValueError, match=words):
            check_name(document["metadata"]["name"])
