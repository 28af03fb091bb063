"""Replica reference counting, as a property: whatever sequence of publishes,
re-targets, replica-count changes, Region edits, deployments and deletions, every
image reference an instance holds stays pullable.

The registries are sets of manifests; a version is replicated by the pure pieces
the ImageVersion controller runs, in its order (`galleon.core.replication.layout`
and `plan`, copy, then `galleon.core.references.holders` before any removal), and
deleted as `controllers/imageversion/deletion.delete_copies` decides (held while an
instance pulls a copy, a copy another version shares left to it). Instances pick
their copy as `controllers/scaleset/snapshot.version_images` does (Completed, not
retained, spread by index).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from galleon.api.imageversion import PublishingProfile
from galleon.core import references as refs
from galleon.core import replication as rep
from galleon.core.replication import Location

REPOSITORY = "galleon/ns/g/os"
DIGESTS = ("sha256:" + "a" * 64, "sha256:" + "b" * 64)
HOSTS = ("h0:5000", "h1:5000", "h2:5000", "h3:5000")


@dataclass
class Version:
    digest: str
    targets: dict[str, int]
    replicas: dict[Location, tuple[str, bool]] = field(default_factory=dict)
    """Location → (state, retained)."""

    def status(self, name: str) -> dict[str, object]:
        summary: dict[str, list[dict[str, object]]] = {}
        for location, (state, retained) in self.replicas.items():
            summary.setdefault(location.region, []).append(
                {"registry": location.registry, "state": state, "retained": retained}
            )
        return {
            "metadata": {"name": name, "uid": name},
            "status": {
                "repository": REPOSITORY,
                "sourceDigest": self.digest,
                "replicationStatus": {
                    "summary": [{"region": r, "replicas": reps} for r, reps in summary.items()]
                },
            },
        }


@dataclass
class World:
    regions: dict[str, list[tuple[str, str]]] = field(
        default_factory=lambda: {
            "east": [("r0", HOSTS[0]), ("r1", HOSTS[1])],
            "west": [("r0", HOSTS[2])],
        }
    )
    """Region → its registries (name, host), in order."""
    stored: set[refs.Copy] = field(default_factory=set)
    versions: dict[str, Version] = field(default_factory=dict)
    pods: dict[str, str] = field(default_factory=dict)
    """Pod name → the image it pulls."""

    def hosts(self) -> dict[Location, str]:
        return {Location(r, n): h for r, regs in self.regions.items() for n, h in regs}

    def referenced(
        self, excluding: str
    ) -> tuple[dict[refs.Copy, list[str]], dict[refs.Copy, list[str]]]:
        pods = refs.pod_copies(
            {"metadata": {"namespace": "ns", "name": p}, "spec": {"containers": [{"image": i}]}}
            for p, i in self.pods.items()
        )
        others = refs.version_copies(
            (v.status(n) for n, v in self.versions.items() if n != excluding), self.hosts()
        )
        return pods, others

    def replicate(self, name: str) -> None:
        """One pass: plan, copy the wanted, then remove what nothing holds."""
        version = self.versions[name]
        profile = PublishingProfile.model_validate(
            {
                "targetRegions": [
                    {"name": r, "regionalReplicaCount": c} for r, c in version.targets.items()
                ]
            }
        )
        layouts = rep.layout(profile, {r: [n for n, _ in regs] for r, regs in self.regions.items()})
        recorded = [
            rep.Recorded(loc, state, version.digest) for loc, (state, _) in version.replicas.items()
        ]
        plan = rep.plan(layouts, recorded, version.digest, allow_deletion=True)
        hosts = self.hosts()
        for location in plan.keep:  # verify
            if refs.Copy(hosts[location], REPOSITORY, version.digest) not in self.stored:
                plan = rep.Plan((*plan.copy, location), plan.keep, plan.remove, plan.refused)
            else:
                version.replicas[location] = ("Completed", False)
        for location in plan.copy:
            self.stored.add(refs.Copy(hosts[location], REPOSITORY, version.digest))
            version.replicas[location] = ("Completed", False)
        pods, others = self.referenced(excluding=name)
        decided = refs.removal(
            plan.remove, [*plan.keep, *plan.copy], hosts, REPOSITORY, version.digest, pods, others
        )
        for location in decided.held or {}:
            version.replicas[location] = ("Completed", True)
        for location in decided.forget:
            del version.replicas[location]
        for location in decided.delete:
            if location in hosts:
                self.stored.discard(refs.Copy(hosts[location], REPOSITORY, version.digest))
            del version.replicas[location]

    def delete(self, name: str) -> None:
        version = self.versions[name]
        hosts = self.hosts()
        pods, others = self.referenced(excluding=name)
        locations = list(version.replicas)
        shared = refs.holders(locations, hosts, REPOSITORY, version.digest, others)
        pulled = refs.holders(locations, hosts, REPOSITORY, version.digest, pods)
        if set(pulled) - set(shared):
            return  # held: an instance still pulls a copy no other version shares
        for location in locations:
            if location not in shared and location in hosts:
                self.stored.discard(refs.Copy(hosts[location], REPOSITORY, version.digest))
        del self.versions[name]

    def deploy(self, pod: str, name: str, region: str, index: int) -> None:
        version = self.versions.get(name)
        if version is None:
            return
        hosts = self.hosts()
        completed = [
            loc
            for loc, (state, _) in version.replicas.items()
            if loc.region == region and state == "Completed" and loc in hosts
        ]
        usable = [loc for loc in completed if not version.replicas[loc][1]] or completed
        if usable:
            location = sorted(usable)[index % len(usable)]
            self.pods[pod] = f"{hosts[location]}/{REPOSITORY}@{version.digest}"

    def pullable(self) -> list[str]:
        broken = []
        for pod, image in self.pods.items():
            copy = refs.parse_image(image)
            if copy not in self.stored:
                broken.append(f"{pod}: {image}")
        return broken


names = st.sampled_from(["v1", "v2"])
regions = st.sampled_from(["east", "west"])
actions = st.one_of(
    st.tuples(
        st.just("publish"),
        names,
        st.sampled_from(DIGESTS),
        st.dictionaries(regions, st.integers(1, 2), min_size=1),
    ),
    st.tuples(st.just("retarget"), names, st.dictionaries(regions, st.integers(1, 2), min_size=1)),
    st.tuples(st.just("pass"), names),
    st.tuples(st.just("converge")),
    st.tuples(
        st.just("deploy"),
        st.sampled_from(["p0", "p1", "p2", "p3"]),
        names,
        regions,
        st.integers(0, 3),
    ),
    st.tuples(st.just("undeploy"), st.sampled_from(["p0", "p1", "p2", "p3"])),
    st.tuples(st.just("delete"), names),
    st.tuples(st.just("insert-registry"), regions, st.sampled_from(HOSTS)),
    st.tuples(st.just("drop-registry"), regions),
)


def apply(world: World, action: tuple[object, ...]) -> None:
    kind = action[0]
    if kind == "publish":
        _, name, digest, targets = action
        if name not in world.versions:
            world.versions[str(name)] = Version(str(digest), dict(targets))  # type: ignore[arg-type]
    elif kind == "retarget" and action[1] in world.versions:
        world.versions[str(action[1])].targets = dict(action[2])  # type: ignore[arg-type]
    elif kind == "pass" and action[1] in world.versions:
        world.replicate(str(action[1]))
    elif kind == "converge":  # the operator has caught up with every version
        for name in sorted(world.versions):
            world.replicate(name)
    elif kind == "deploy":
        _, pod, name, region, index = action
        world.deploy(str(pod), str(name), str(region), int(index))  # type: ignore[call-overload]
    elif kind == "undeploy":
        world.pods.pop(str(action[1]), None)
    elif kind == "delete" and action[1] in world.versions:
        world.delete(str(action[1]))
    elif kind == "insert-registry":
        registries = world.regions[str(action[1])]
        taken = {n for n, _ in registries}
        fresh = next(f"r{i}" for i in range(10) if f"r{i}" not in taken)
        registries.insert(0, (fresh, str(action[2])))
    elif kind == "drop-registry" and len(world.regions[str(action[1])]) > 1:
        world.regions[str(action[1])].pop()


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(actions, st.lists(names, max_size=3)), max_size=30))
def test_every_reference_an_instance_holds_stays_pullable(
    steps: list[tuple[tuple[object, ...], list[str]]],
) -> None:
    # Each step is a change, then the passes that ran before the next change (in any
    # order, some versions not at all: the operator is not always caught up).
    world = World()
    for step, passes in steps:
        apply(world, step)
        for name in passes:
            if name in world.versions:
                world.replicate(name)
        assert world.pullable() == [], (step, passes)


def test_the_two_versions_of_one_digest_share_their_copies() -> None:
    # The case that lost data before reference counting: deleting v1 deleted v2's copies.
    world = World()
    for step in [
        ("publish", "v1", DIGESTS[0], {"east": 2}),
        ("publish", "v2", DIGESTS[0], {"east": 2}),
        ("pass", "v1"),
        ("pass", "v2"),
        ("deploy", "p0", "v2", "east", 0),
        ("deploy", "p1", "v2", "east", 1),
        ("delete", "v1"),
    ]:
        apply(world, step)
    assert "v1" not in world.versions and world.pullable() == []
    assert len(world.stored) == 2
