"""`kubectl galleon`'s image builder, its pure parts: what `get imagebuild`, `get
imagebuilds` and `builds TEMPLATE` print for builds as the builder writes them, when a
build is done for `status` and `build --wait`, and the observations the loops read (a
watch made again from the last version seen, bounded by the time left)."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
import typer
from rich.console import Console, RenderableType

from galleon.cli import polling, render
from galleon.cli.cluster import Expired, Unreachable
from galleon.cli.outcome import Outcome, decide, imagebuild_outcome
from galleon.cli.render.imagebuild import MESSAGE_WIDTH

NOW = datetime(2026, 11, 23, 13, 50, tzinfo=UTC)


def digest(hex_digit: str) -> str:
    return "sha256:" + hex_digit * 64


def printed(renderable: RenderableType) -> str:
    console = Console(record=True, width=160)
    console.print(renderable)
    return console.export_text()


def flat(renderable: RenderableType) -> str:
    return " ".join(printed(renderable).split())


def rows(renderable: RenderableType) -> list[list[str]]:
    return [line.split() for line in printed(renderable).splitlines() if line.strip()]


def build(name: str = "web-x7k2p", created: str = "2026-11-23T13:39:58Z", **status: Any) -> dict:
    return {
        "apiVersion": "galleon.dev/v1alpha1",
        "kind": "ImageBuild",
        "metadata": {
            "name": name,
            "namespace": "platform",
            "creationTimestamp": created,
            "resourceVersion": "1",
            "labels": {"galleon.dev/template": "web"},
        },
        "spec": {"templateName": "web", "reason": "Manual"},
        "status": status,
    }


def succeeded() -> dict[str, Any]:
    return build(
        phase="Succeeded",
        startTime="2026-11-23T13:40:00Z",
        completionTime="2026-11-23T13:42:10Z",
        sourceDigest=digest("a"),
        outputDigest=digest("b"),
        stagingImage="registry.example.com/galleon/platform/contoso/os__staging:web-x7k2p",
        imageVersion={"name": "os-1-0-3", "version": "1.0.3"},
        steps=[
            {
                "name": "motd",
                "type": "File",
                "phase": "Succeeded",
                "durationSeconds": 0.4,
                "layerDigest": digest("c"),
                "sizeBytes": 312,
                "message": "1 file",
            },
            {
                "name": "agent",
                "type": "Archive",
                "phase": "Succeeded",
                "durationSeconds": 12.4,
                "layerDigest": digest("d"),
                "sizeBytes": 31457280,
                "message": "412 files",
            },
            {"name": "user", "type": "User", "phase": "Skipped", "message": "already nobody"},
        ],
        inputs=[
            {"name": "source", "digest": digest("a")},
            {"name": "agent", "digest": digest("e")},
        ],
        message="published os 1.0.3",
    )


# -- what is printed ----------------------------------------------------------------------


def test_a_succeeded_build_shows_digests_the_version_and_each_step() -> None:
    out = flat(render.imagebuild_view(succeeded()))
    assert out.startswith("ImageBuild web-x7k2p in platform template web reason Manual")
    assert "phase Succeeded started 2026-11-23T13:40:00Z" in out
    assert "completed 2026-11-23T13:42:10Z (took 2m10s)" in out
    assert f"source digest {digest('a')} output digest {digest('b')}" in out
    assert "published imageversion os-1-0-3 (version 1.0.3)" in out
    assert "STEPS 2 of 3 succeeded" in out
    table = rows(render.imagebuild_view(succeeded()))
    assert ["NAME", "TYPE", "PHASE", "DURATION", "LAYER", "SIZE", "MESSAGE"] in table
    assert [
        "motd",
        "File",
        "Succeeded",
        "0.4s",
        "sha256:cccccccccccc",
        "312",
        "B",
        "1",
        "file",
    ] in (table)
    assert ["agent", "Archive", "Succeeded", "12s", "sha256:dddddddddddd", "30.0", "MiB"] in [
        row[:7] for row in table
    ]
    assert ["user", "User", "Skipped", "-", "-", "-", "already", "nobody"] in table
    assert ["agent", digest("e")] in table  # INPUTS


def test_a_build_without_status_prints_dashes_not_errors() -> None:
    bare = build()
    del bare["status"]
    out = flat(render.imagebuild_view(bare))
    assert "phase Pending started - completed -" in out
    assert "published -" in out and "no steps reported yet" in out
    assert "INPUTS" not in out and "CONDITIONS" not in out


def test_a_failed_build_says_why_and_shows_its_conditions() -> None:
    failed = build(
        phase="Failed",
        message="step agent: https://downloads.example.com/agent.tgz: 404 Not Found",
        conditions=[
            {
                "type": "Ready",
                "status": "False",
                "reason": "BuildFailed",
                "message": "step agent failed",
                "lastTransitionTime": "2026-11-23T13:45:00Z",
            }
        ],
    )
    out = flat(render.imagebuild_view(failed))
    assert "message step agent: https://downloads.example.com/agent.tgz: 404 Not Found" in out
    assert "CONDITIONS TYPE STATUS REASON SINCE MESSAGE Ready False BuildFailed" in out


def test_builds_are_listed_newest_first_with_duration_digest_and_a_cut_message() -> None:
    old = succeeded()
    running = build(
        "web-b2",
        created="2026-11-23T13:49:00Z",
        phase="Building",
        startTime="2026-11-23T13:49:15Z",
        message="building step agent: " + "downloading " * 10,
    )
    queued = build("web-a1", created="2026-11-23T13:49:00Z")  # same second, not started
    listed = render.builds_view("web", [old, running, queued], {"metadata": {}}, NOW)
    table = rows(listed)
    assert table[0] == [
        "NAME", "REASON", "PHASE", "VERSION", "DURATION", "DIGEST", "AGE", "MESSAGE",
    ]  # fmt: skip
    assert [row[0] for row in table[1:]] == ["web-a1", "web-b2", "web-x7k2p"]
    assert table[1] == ["web-a1", "Manual", "Pending", "-", "-", "-", "1m", "-"]
    assert table[2][:6] == ["web-b2", "Manual", "Building", "-", "45s", "-"]
    line = next(line for line in printed(listed).splitlines() if line.startswith("web-b2"))
    assert "building step agent: downloading" in line and "…" in line
    assert len(render.truncate(running["status"]["message"])) == MESSAGE_WIDTH
    assert table[3][:6] == [
        "web-x7k2p",
        "Manual",
        "Succeeded",
        "1.0.3",
        "2m10s",
        "sha256:bbbbbbbbbbbb",
    ]


def test_builds_of_a_template_with_none_or_without_the_template() -> None:
    assert flat(render.builds_view("web", [], {"metadata": {}}, NOW)) == "no builds of web yet"
    orphans = flat(render.builds_view("web", [succeeded()], None, NOW))
    assert "web-x7k2p" in orphans and orphans.endswith("imagetemplate web not found")


def test_imagebuild_list() -> None:
    table = rows(render.imagebuild_list([succeeded()], NOW))
    assert table == [
        ["NAME", "TEMPLATE", "REASON", "PHASE", "VERSION", "DIGEST", "AGE"],
        ["web-x7k2p", "web", "Manual", "Succeeded", "1.0.3", "sha256:bbbbbbbbbbbb", "10m2s"],
    ]


def test_small_pieces() -> None:
    assert render.short_digest(digest("f")) == "sha256:ffffffffffff"
    assert render.short_digest("") == "-"
    assert render.truncate("a  b\n c", 10) == "a b c"
    assert render.truncate("x" * 61) == "x" * 59 + "…"


# -- when a build is done ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (
            succeeded()["status"],
            Outcome(
                "done",
                "Succeeded in 2m10s: published imageversion os-1-0-3 (version 1.0.3), "
                f"image {digest('b')}",
            ),
        ),
        ({"phase": "Failed", "message": "the source: 401"}, Outcome("failed", "the source: 401")),
        (
            {"phase": "Failed", "steps": [{"name": "agent", "phase": "Failed", "message": "404"}]},
            Outcome("failed", "step agent failed: 404"),
        ),
        ({"phase": "Failed"}, Outcome("failed", "the build failed")),
        ({}, Outcome("waiting", "Pending: not started by the builder yet")),
        (
            {"phase": "Resolving", "message": "resolving os:latest"},
            Outcome("waiting", "Resolving: resolving os:latest"),
        ),
        (
            {
                "phase": "Building",
                "message": "old news",
                "steps": [
                    {"name": "motd", "phase": "Succeeded"},
                    {"name": "agent", "phase": "Running"},
                    {"name": "user", "phase": "Pending"},
                ],
            },
            Outcome("waiting", "Building: step 2 of 3 (agent)"),
        ),
        ({"phase": "Pushing"}, Outcome("waiting", "Pushing")),
    ],
)
def test_imagebuild_outcomes(status: dict[str, Any], expected: Outcome) -> None:
    obj = build(**status)
    assert imagebuild_outcome(obj) == expected
    assert decide(obj, imagebuild_outcome) == expected  # no Stalled: the build's own say


# -- the observations the loops read -----------------------------------------------------------


def version(rv: str, phase: str | None = None) -> dict[str, Any]:
    obj = copy.deepcopy(build(**({"phase": phase} if phase else {})))
    obj["metadata"]["resourceVersion"] = rv
    return obj


class Script:
    """A fake API: `fetch` returns the next of `reads`; each watch request plays the next
    of `watches` (objects to yield, or an exception to raise after them)."""

    def __init__(self, reads: list[Mapping[str, Any]], watches: list[list[Any]]) -> None:
        self.reads, self.watches = list(reads), list(watches)
        self.requests: list[tuple[str, int]] = []
        self.slept: list[float] = []

    def fetch(self) -> Mapping[str, Any]:
        return self.reads.pop(0)

    def changes(self, resource_version: str, seconds: int) -> Iterator[Mapping[str, Any]]:
        self.requests.append((resource_version, seconds))
        for item in self.watches.pop(0) if self.watches else []:
            if isinstance(item, BaseException):
                raise item
            yield item

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def rvs(observations: list[Any]) -> list[str]:
    return [
        type(o).__name__ if isinstance(o, Exception) else o["metadata"]["resourceVersion"]
        for o in observations
    ]


def test_watched_reads_once_then_each_change_and_watches_again_from_the_last_version() -> None:
    api = Script(
        [version("1"), version("7"), version("9")],
        [
            [version("2"), version("3")],  # the server ends the request: watch again from 3
            [version("4"), Expired("410 Gone")],  # too old: read again
            [version("8"), Unreachable("cannot reach the API server")],  # said, retried
            [],
        ],
    )
    seen: list[Any] = []
    for observation in polling.watched(api.fetch, api.changes, None, api.sleep):
        seen.append(observation)
        if len(seen) == 8:
            break
    assert rvs(seen) == ["1", "2", "3", "4", "7", "8", "Unreachable", "9"]
    assert [rv for rv, _ in api.requests] == ["1", "3", "7"]
    assert {seconds for _, seconds in api.requests} == {polling.WATCH_SECONDS}
    assert api.slept == [polling.POLL_SECONDS]  # only after the unreachable server


def test_watched_is_bounded_by_the_timeout() -> None:
    api = Script([version("1")], [])
    assert rvs(list(polling.watched(api.fetch, api.changes, 0, api.sleep))) == ["1"]
    assert api.requests == []  # no time left: no watch
    api = Script([version("1")], [[version("2")]])
    assert rvs(list(polling.watched(api.fetch, api.changes, 0.5, api.sleep))) == ["1", "2"]
    assert api.requests[0] == ("1", 1)  # the time left, rounded up to a whole second


def test_wait_exits_with_the_outcome_of_the_first_observation_that_decides() -> None:
    def waited(*observations: Any) -> int:
        with pytest.raises(typer.Exit) as exited:
            polling.wait(iter(observations), imagebuild_outcome, "imagebuild web-1", 60)
        return exited.value.exit_code

    assert waited(version("1"), version("2", "Building"), version("3", "Succeeded")) == 0
    assert waited(Unreachable("down"), version("2", "Failed"), version("3", "Succeeded")) == 1
    assert waited(version("1"), version("2", "Building")) == 2  # they ended: the timeout
