"""galleon.core.layers: the same steps give the same bytes, in every run and process; a
layer holds exactly the entries asked for, with their modes and owners; what could
escape or break an image is refused with a message naming it."""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from galleon.core import layers
from galleon.core.layers import (
    Archive,
    BuildRefused,
    Cmd,
    Directory,
    Entry,
    Entrypoint,
    Environment,
    File,
    Labels,
    Layer,
    Limits,
    User,
    WorkingDir,
)

DIGEST = "sha256:" + "ab" * 32


def listing(data: bytes) -> list[tuple[str, str, str, int, int, str]]:
    """(name, type, mode, uid, gid, link) of every entry of a (gzip) tar."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    kinds = {tarfile.REGTYPE: "file", tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "sym"}
    kinds[tarfile.LNKTYPE] = "hard"
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
        members = archive.getmembers()
        for member in members:  # every rule of a reproducible entry, for every entry
            assert (member.mtime, member.uname, member.gname) == (0, "", "")
            # PAX records only for what ustar cannot hold: no times, names or xattrs.
            assert set(member.pax_headers) <= {"path", "linkpath", "uid", "gid", "size"}
        return [(m.name, kinds[m.type], oct(m.mode), m.uid, m.gid, m.linkname) for m in members]


def tar_of(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A tar written as given: names, types and links are not checked here."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, content in members:
            if content is not None:
                info.size = len(content)
            archive.addfile(info, io.BytesIO(content) if content is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", mode: int = 0o644) -> Any:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, link, mode
    return info


def regular(name: str, content: bytes = b"x", **owner: int) -> tuple[tarfile.TarInfo, bytes]:
    info = member(name)
    for key, value in owner.items():
        setattr(info, key, value)
    return info, content


# -- reproducibility --------------------------------------------------------------------

STEPS_SCRIPT = """
import sys
from galleon.core import layers
file = layers.File("/etc/app/config.yaml", b"key: value\\n", mode=0o600, uid=1000, gid=1000)
tar = layers.tar_bytes([layers.Entry("bin2/tool", "file", 0o755, content=b"#!/bin/sh\\n"),
                        layers.Entry("bin2/link", "symlink", 0o777, link="tool")])
archive = layers.Archive("/opt/app", tar)
for compression in ("gzip", "none"):
    print(layers.file_layer(file, compression=compression).digest)
    print(layers.archive_layer(archive, compression=compression).digest)
"""

GOLDEN = [
    "sha256:96a0f5794634413356bf0003069d1fed5c94e831e18fdb5b370ba038352497f5",
    "sha256:8d9c1f068d6e26223a696c4fc87b2352c5a064f1a4472c82558f533657b0a1cf",
    "sha256:e938533d795cc59b0c5e16d37dab1d1f636e45f89a9cafd62fabe790bedc09ba",
    "sha256:ba28c800ec40959e3859a975ccd4674662c6916a65e43454ce6e2d30ad6b6bdc",
]
"""The digests STEPS_SCRIPT prints (gzip File, gzip Archive, tar File, tar Archive):
a change of Python's tarfile or of zlib that changes layer bytes fails here first."""


def test_the_same_steps_give_the_same_bytes_in_separate_processes() -> None:
    runs = {
        subprocess.run(
            [sys.executable, "-c", STEPS_SCRIPT],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(runs) == 1
    assert runs.pop().split() == GOLDEN


def test_a_layer_is_the_same_bytes_every_time_in_one_process() -> None:
    step = File("/etc/motd", b"hello\n")
    first, second = layers.file_layer(step), layers.file_layer(step)
    assert first.data == second.data
    assert (first.digest, first.diff_id) == (second.digest, second.diff_id)


def test_this_machines_deflate_gives_the_known_answer() -> None:
    assert layers.gzip_is_reproducible()


def test_the_gzip_wrapper_has_no_name_no_time_and_round_trips() -> None:
    layer = layers.file_layer(File("/etc/motd", b"hello\n"))
    header = layer.data[:10]
    assert header == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # FLG 0: no FNAME; MTIME 0
    tar = gzip.decompress(layer.data)
    assert layer.diff_id == layers.sha256(tar)
    assert layer.digest == layers.sha256(layer.data) != layer.diff_id
    assert layer.media_type == layers.LAYER_GZIP and layer.size == len(layer.data)


def test_an_uncompressed_layer_is_its_tar() -> None:
    layer = layers.file_layer(File("/etc/motd", b"hello\n"), compression="none")
    assert layer.digest == layer.diff_id == layers.sha256(layer.data)
    assert layer.media_type == layers.LAYER_TAR


entry_paths = st.lists(
    st.lists(st.sampled_from(["a", "b", "a-b", "c.d", "é"]), min_size=1, max_size=3).map("/".join),
    min_size=1,
    max_size=8,
    unique=True,
).filter(
    lambda paths: not any(p.startswith(q + "/") for p in paths for q in paths)
)  # files only: none under another


@settings(max_examples=60, deadline=None)
@given(paths=entry_paths, data=st.data())
def test_the_order_of_an_archives_entries_does_not_change_the_layer(
    paths: list[str], data: st.DataObject
) -> None:
    entries = [Entry(p, "file", 0o644, content=p.encode()) for p in paths]
    shuffled = data.draw(st.permutations(entries))
    in_order = tar_of(*(regular(e.path, e.content) for e in entries))
    reordered = tar_of(*(regular(e.path, e.content) for e in shuffled))
    assert in_order != reordered or entries == list(shuffled)
    assert (
        layers.archive_layer(Archive("/opt/x", in_order)).data
        == layers.archive_layer(Archive("/opt/x", reordered)).data
    )
    names = [name for name, *_ in listing(layers.archive_layer(Archive("/opt/x", in_order)).data)]
    assert names == sorted(names, key=layers.sort_key)


# -- what a layer holds -----------------------------------------------------------------


def test_a_file_layer_holds_its_parents_then_the_file_with_its_mode_and_owner() -> None:
    step = File("/etc/app/config.yaml", b"key: value\n", mode=0o600, uid=1000, gid=2000)
    layer = layers.file_layer(step)
    assert listing(layer.data) == [
        ("etc", "dir", "0o755", 0, 0, ""),
        ("etc/app", "dir", "0o755", 0, 0, ""),
        ("etc/app/config.yaml", "file", "0o600", 1000, 2000, ""),
    ]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer.data))) as archive:
        extracted = archive.extractfile("etc/app/config.yaml")
        assert extracted is not None and extracted.read() == b"key: value\n"
    assert gzip.decompress(layer.data)[257:265] == b"ustar\x0000"  # POSIX headers throughout


@pytest.mark.parametrize(
    ("step", "expected"),
    [
        pytest.param(
            File("/tmp/x", b""),
            [("tmp", "dir", "0o1777", 0, 0, ""), ("tmp/x", "file", "0o644", 0, 0, "")],
            id="tmp-keeps-its-sticky-mode",
        ),
        pytest.param(
            File("/root/.ssh/authorized_keys", b"", mode=0o600),
            [
                ("root", "dir", "0o700", 0, 0, ""),
                ("root/.ssh", "dir", "0o755", 0, 0, ""),
                ("root/.ssh/authorized_keys", "file", "0o600", 0, 0, ""),
            ],
            id="root-stays-private",
        ),
        pytest.param(
            File(
                "/home/app/.config/tool.toml",
                b"",
                uid=1000,
                gid=1000,
                parents=(Directory("/home/app", 0o700, 1000, 1000),),
            ),
            [
                ("home", "dir", "0o755", 0, 0, ""),
                ("home/app", "dir", "0o700", 1000, 1000, ""),
                ("home/app/.config", "dir", "0o755", 0, 0, ""),
                ("home/app/.config/tool.toml", "file", "0o644", 1000, 1000, ""),
            ],
            id="a-named-parent-takes-its-attributes",
        ),
        pytest.param(
            File("/x", b"", mode=0o4755, uid=4294967294),
            [("x", "file", "0o4755", 4294967294, 0, "")],
            id="setuid-and-the-largest-uid",
        ),
    ],
)
def test_parent_directories(step: File, expected: list[tuple[Any, ...]]) -> None:
    assert listing(layers.file_layer(step).data) == expected


def test_an_archive_is_unpacked_under_its_path_with_its_owners_and_links() -> None:
    tar = tar_of(
        (member("./", tarfile.DIRTYPE, mode=0o700), None),  # dropped: the destination's own
        regular("./bin2/tool", b"#!/bin/sh\n", uid=1000, gid=1000),
        (member("./bin2/run", tarfile.SYMTYPE, "tool", mode=0o777), None),
        (member("share/doc", tarfile.DIRTYPE, mode=0o750), None),
        regular("share/doc/README", b"read me\n"),
        (member("share/doc/LICENSE", tarfile.LNKTYPE, "share/doc/README"), None),
    )
    assert listing(layers.archive_layer(Archive("/opt/app", tar)).data) == [
        ("opt", "dir", "0o755", 0, 0, ""),
        ("opt/app", "dir", "0o755", 0, 0, ""),
        ("opt/app/bin2", "dir", "0o755", 0, 0, ""),
        ("opt/app/bin2/run", "sym", "0o777", 0, 0, "tool"),
        ("opt/app/bin2/tool", "file", "0o644", 1000, 1000, ""),
        ("opt/app/share", "dir", "0o755", 0, 0, ""),
        ("opt/app/share/doc", "dir", "0o750", 0, 0, ""),
        # The link sorts first: it holds the content, the file links to it.
        ("opt/app/share/doc/LICENSE", "file", "0o644", 0, 0, ""),
        ("opt/app/share/doc/README", "hard", "0o644", 0, 0, "opt/app/share/doc/LICENSE"),
    ]


def test_an_archives_owner_can_be_set_for_every_entry_and_gzip_input_is_read() -> None:
    tar = tar_of(regular("a/b", b"1", uid=5, gid=6))
    step = Archive("/srv", gzip.compress(tar), uid=7, gid=8, parents=(Directory("/srv", 0o750),))
    assert listing(layers.archive_layer(step, compression="none").data) == [
        ("srv", "dir", "0o750", 0, 0, ""),
        ("srv/a", "dir", "0o755", 7, 8, ""),
        ("srv/a/b", "file", "0o644", 7, 8, ""),
    ]


def test_an_archives_format_times_and_owner_names_do_not_change_its_layer() -> None:
    def written(format_: int, mtime: float, uname: str) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=format_) as archive:
            for name, kind in (("a", tarfile.DIRTYPE), ("a/" + "x" * 150, tarfile.REGTYPE)):
                info = member(name, kind, mode=0o755)
                info.mtime, info.uname, info.gname = mtime, uname, uname
                archive.addfile(info, io.BytesIO(b"") if kind == tarfile.REGTYPE else None)
        return buffer.getvalue()

    gnu = written(tarfile.GNU_FORMAT, 1_700_000_000, "builder")
    pax = written(tarfile.PAX_FORMAT, 1_600_000_000.25, "someone")  # a float: a PAX mtime
    assert gnu != pax
    assert layers.archive_layer(Archive("/opt", gnu)) == layers.archive_layer(Archive("/opt", pax))


def test_an_archive_at_the_root_has_no_parent_entries() -> None:
    tar = tar_of(regular("etc/issue", b"galleon\n"))
    assert [n for n, *_ in listing(layers.archive_layer(Archive("/", tar)).data)] == [
        "etc",
        "etc/issue",
    ]


# -- refusals -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "said"),
    [
        pytest.param("etc/motd", "not an absolute path", id="relative"),
        pytest.param("/etc/../shadow", "'..' component", id="dot-dot"),
        pytest.param("/etc//motd", "not normalized", id="double-slash"),
        pytest.param("/etc/./motd", "not normalized", id="dot"),
        pytest.param("/etc/motd/", "not normalized", id="trailing-slash"),
        pytest.param("/etc/mo\x00td", "NUL", id="nul"),
        pytest.param("/" + "a/" * 2048 + "b", "more than 4096", id="too-long"),
        pytest.param("/" + "a" * 256, "over 255 bytes", id="long-name"),
        pytest.param("/etc/.wh.passwd", "whiteout", id="whiteout"),
        pytest.param("/bin/tool", "use /usr/bin instead", id="merged-usr-bin"),
        pytest.param("/lib64/x.so", "use /usr/lib64 instead", id="merged-usr-lib64"),
        pytest.param("/var/run/app.sock", "use /run instead", id="var-run"),
        pytest.param("/\udcff", "not UTF-8", id="not-utf8"),
        pytest.param("/", "the image root", id="root"),
    ],
)
def test_a_file_path_is_refused(path: str, said: str) -> None:
    with pytest.raises(BuildRefused, match=said):
        File(path, b"")


@pytest.mark.parametrize(
    ("build", "said"),
    [
        pytest.param(lambda: File("/x", b"", mode=0o10000), "not a mode", id="mode"),
        pytest.param(lambda: File("/x", b"", uid=-1), "not an integer", id="negative-uid"),
        pytest.param(lambda: File("/x", b"", gid=2**32 - 1), "not an integer", id="no-owner"),
        pytest.param(lambda: File("/x", b"", uid=True), "not an integer", id="bool-uid"),
        pytest.param(lambda: File("/x", "text"), "not bytes", id="text-content"),  # type: ignore[arg-type]
        pytest.param(
            lambda: File("/a/x", b"", parents=(Directory("/b"),)), "not one of", id="stray-parent"
        ),
        pytest.param(
            lambda: File("/a/x", b"", parents=(Directory("/a/x"),)), "not one of", id="self-parent"
        ),
        pytest.param(lambda: Environment((("A=B", "1"),)), "has '='", id="env-name"),
        pytest.param(lambda: Environment((("A", "\x00"),)), "NUL", id="env-value"),
        pytest.param(lambda: Labels((("", "1"),)), "empty", id="label-key"),
        pytest.param(lambda: User("root; rm -rf /"), "not user", id="user"),
        pytest.param(lambda: WorkingDir("app"), "absolute", id="workdir"),
        pytest.param(lambda: Cmd(("a\x00",)), "NUL", id="cmd"),
        pytest.param(lambda: Layer("Upper/Case", DIGEST), "not a repository", id="repository"),
        pytest.param(lambda: Layer("tools", "latest"), "sha256", id="layer-by-tag"),
    ],
)
def test_a_step_is_refused(build: Any, said: str) -> None:
    with pytest.raises(BuildRefused, match=said):
        build()


def device(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    return member(name, kind), None


ARCHIVE_REFUSALS = [
    pytest.param(tar_of(regular("/etc/passwd")), "absolute path", id="absolute"),
    pytest.param(tar_of(regular("../etc/passwd")), "'..' component", id="dot-dot"),
    pytest.param(tar_of(regular("a/../../x")), "'..' component", id="inner-dot-dot"),
    pytest.param(tar_of(regular("a//b")), "not a normalized", id="empty-component"),
    pytest.param(tar_of(regular(".wh.passwd")), "whiteout", id="whiteout"),
    pytest.param(
        tar_of((member("x", tarfile.SYMTYPE, "../../etc"), None)), "leads out", id="symlink-up"
    ),
    pytest.param(
        tar_of((member("x", tarfile.SYMTYPE, "/etc/shadow"), None)),
        "leads out",
        id="symlink-absolute",
    ),
    pytest.param(
        tar_of(
            (member("lib2", tarfile.SYMTYPE, "."), None),
            (member("x", tarfile.SYMTYPE, "lib2/lib2/../.."), None),
        ),
        "leads out",
        id="symlink-through-a-symlink",
    ),
    pytest.param(
        tar_of((member("loop", tarfile.SYMTYPE, "loop/x"), None)), "leads out", id="symlink-loop"
    ),
    pytest.param(
        tar_of((member("x", tarfile.SYMTYPE, "/opt"), None)), "leads out", id="symlink-to-parent"
    ),
    pytest.param(
        tar_of((member("x", tarfile.SYMTYPE, "etc"), None), regular("x/passwd")),
        "under /opt/app/x, a symlink",
        id="write-through-a-symlink",
    ),
    pytest.param(
        tar_of((member("x", tarfile.LNKTYPE, "missing"), None)), "earlier regular", id="hard-gone"
    ),
    pytest.param(
        tar_of((member("x", tarfile.LNKTYPE, "y"), None), regular("y")),
        "earlier regular",
        id="hard-before-target",
    ),
    pytest.param(
        tar_of((member("x", tarfile.LNKTYPE, "../../etc/shadow"), None)),
        "'..' component",
        id="hard-out",
    ),
    pytest.param(
        tar_of((member("d", tarfile.DIRTYPE), None), (member("x", tarfile.LNKTYPE, "d"), None)),
        "earlier regular",
        id="hard-to-directory",
    ),
    pytest.param(tar_of(device("tty", tarfile.CHRTYPE)), "character device", id="char-device"),
    pytest.param(tar_of(device("sda", tarfile.BLKTYPE)), "block device", id="block-device"),
    pytest.param(tar_of(device("pipe", tarfile.FIFOTYPE)), "a FIFO", id="fifo"),
    pytest.param(tar_of(regular("a"), regular("./a")), "appears twice", id="duplicate"),
    pytest.param(tar_of(regular("a"), regular("a/b")), "under /opt/app/a, a file", id="file-dir"),
    pytest.param(tar_of(regular("a")) + b"\x01" * 1024, "unreadable data", id="trailing-data"),
    pytest.param(b"not a tar at all" * 64, "not a readable tar", id="not-a-tar"),
    pytest.param(gzip.compress(b"x" * 10)[:-4], "truncated|not valid gzip", id="cut-gzip"),
    pytest.param(
        gzip.compress(tar_of(regular("a"))) + b"junk", "follow the gzip", id="gzip-trailing"
    ),
]


@pytest.mark.parametrize(("data", "said"), ARCHIVE_REFUSALS)
def test_an_archive_is_refused(data: bytes, said: str) -> None:
    with pytest.raises(BuildRefused, match=said):
        layers.archive_layer(Archive("/opt/app", data))


def test_an_archive_at_the_root_may_not_replace_merged_usr_links() -> None:
    with pytest.raises(BuildRefused, match="use /usr/bin instead"):
        layers.archive_layer(Archive("/", tar_of((member("bin", tarfile.DIRTYPE), None))))
    with pytest.raises(BuildRefused, match="leads out"):  # above the image root itself
        layers.archive_layer(Archive("/", tar_of((member("x", tarfile.SYMTYPE, "../x"), None))))


@pytest.mark.parametrize(
    ("data", "limits", "said"),
    [
        pytest.param(
            tar_of(*(regular(f"f{i}") for i in range(4))),
            Limits(entries=3),
            "more than 3 entries",
            id="entries",
        ),
        pytest.param(
            tar_of(regular("a", b"x" * 600), regular("b", b"x" * 600)),
            Limits(bytes=1000),
            "more than 1000 bytes",
            id="content",
        ),
        pytest.param(
            gzip.compress(b"\0" * (4 << 20)),
            Limits(bytes=1 << 20),
            "more than 1048576 bytes once gunzipped",
            id="gzip-bomb",
        ),
        pytest.param(
            tar_of(regular("a/b/c/d")), Limits(entries=4), "5 entries, more than 4", id="implied"
        ),
    ],
)
def test_an_archive_over_its_limits_is_refused(data: bytes, limits: Limits, said: str) -> None:
    with pytest.raises(BuildRefused, match=said):
        layers.archive_layer(Archive("/opt", data), limits=limits)


def test_a_refusal_never_carries_content() -> None:
    step = File("/etc/secret", b"s3cret-token")
    assert "s3cret" not in repr(step)
    assert "s3cret" not in repr(layers.file_layer(step))
    with pytest.raises(BuildRefused) as refused:
        layers.file_layer(step, limits=Limits(bytes=4))
    assert "s3cret" not in str(refused.value)


# -- the image config ---------------------------------------------------------------------

BASE = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "Env": ["PATH=/usr/bin", "HOME", "LANG=C"],
        "Cmd": ["bash"],
        "Labels": {"vendor": "base"},
        "WorkingDir": "/",
    },
    "rootfs": {"type": "layers", "diff_ids": [DIGEST]},
    "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "base"}],
}


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param(
            [Environment.of({"LANG": "C.UTF-8", "APP": "1"}), Environment.of({"PATH": "/opt"})],
            {"Env": ["PATH=/opt", "HOME", "LANG=C.UTF-8", "APP=1"]},
            id="env-merges-by-name-in-place",
        ),
        pytest.param(
            [Labels.of({"vendor": "galleon", "team": "os"})],
            {"Labels": {"vendor": "galleon", "team": "os"}},
            id="labels-merge",
        ),
        pytest.param([Entrypoint(("/init",))], {"Entrypoint": ["/init"], "Cmd": None}, id="ep"),
        pytest.param(
            [Cmd(("serve",)), Entrypoint(("/init",))],
            {"Entrypoint": ["/init"], "Cmd": ["serve"]},
            id="ep-keeps-a-cmd-of-this-build",
        ),
        pytest.param(
            [Entrypoint(("/init",)), Cmd(("serve",))],
            {"Entrypoint": ["/init"], "Cmd": ["serve"]},
            id="cmd-after-ep",
        ),
        pytest.param([Cmd(())], {"Cmd": None}, id="empty-cmd-removes-it"),
        pytest.param(
            [WorkingDir("/srv"), User("1000:1000")],
            {"WorkingDir": "/srv", "User": "1000:1000"},
            id="workdir-and-user",
        ),
        pytest.param([File("/x", b"")], {}, id="layer-steps-change-no-setting"),
    ],
)
def test_config_steps(steps: Sequence[Any], expected: dict[str, Any]) -> None:
    before = json.dumps(BASE)
    edited = layers.apply_config(BASE, steps)
    assert json.dumps(BASE) == before  # the base is not changed
    settings_ = dict(BASE["config"])  # type: ignore[call-overload]
    for key, value in expected.items():
        if value is None:
            settings_.pop(key, None)
        else:
            settings_[key] = value
    assert edited["config"] == settings_


def test_a_base_without_config_settings_gets_them() -> None:
    assert layers.apply_config({"config": None}, [User("app")])["config"] == {"User": "app"}


def test_the_built_config_appends_diff_ids_and_history_and_fixes_created() -> None:
    new = "sha256:" + "cd" * 32
    other = ["sha256:" + "01" * 32, "sha256:" + "02" * 32]
    steps = [File("/x", b""), User("app"), Layer("tools", DIGEST)]
    built = layers.image_config(BASE, steps, [[new], [], other])
    assert built["rootfs"] == {"type": "layers", "diff_ids": [DIGEST, new, *other]}
    assert built["created"] == layers.EPOCH
    assert built["history"] == [
        {"created": "2024-01-01T00:00:00Z", "created_by": "base"},
        {"created": layers.EPOCH, "created_by": "galleon File /x mode 0644 owner 0:0"},
        {"created": layers.EPOCH, "created_by": "galleon User app", "empty_layer": True},
        {"created": layers.EPOCH, "created_by": f"galleon Layer tools@{DIGEST} (layer 1 of 2)"},
        {"created": layers.EPOCH, "created_by": f"galleon Layer tools@{DIGEST} (layer 2 of 2)"},
    ]
    assert built["config"]["User"] == "app"
    assert sum(not h.get("empty_layer") for h in built["history"]) == len(
        built["rootfs"]["diff_ids"]
    )


def test_a_base_without_history_gets_one_entry_a_layer_and_created_can_be_left_out() -> None:
    base = {"rootfs": {"type": "layers", "diff_ids": [DIGEST, DIGEST]}, "created": "2020"}
    built = layers.image_config(base, [User("app")], [[]], created=None)
    assert "created" not in built
    assert [h.get("empty_layer", False) for h in built["history"]] == [False, False, True]
    assert all("created" not in h for h in built["history"])


@pytest.mark.parametrize(
    ("config", "steps", "added", "said"),
    [
        pytest.param({"rootfs": {"type": "layers"}}, [], [], "not a list", id="no-diff-ids"),
        pytest.param({}, [], [], "no rootfs", id="no-rootfs"),
        pytest.param(BASE, [User("x")], [], "1 steps but diff_ids for 0", id="misaligned"),
        pytest.param(BASE, [User("x")], [[DIGEST]], "adds no layer", id="config-step-layer"),
        pytest.param(BASE, [File("/x", b"")], [[]], "one layer expected", id="file-no-layer"),
        pytest.param(BASE, [File("/x", b"")], [["md5:1"]], "not sha256", id="bad-diff-id"),
    ],
)
def test_a_config_that_cannot_be_built_is_refused(
    config: dict[str, Any], steps: list[Any], added: list[list[str]], said: str
) -> None:
    with pytest.raises(BuildRefused, match=said):
        layers.image_config(config, steps, added)
