"""galleon.oci.manifest: a manifest galleon cannot use is a permanent ProtocolError that
says what is wrong; one it can use yields digests and sizes status can hold."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from galleon.api.imageversion import DIGEST_MAX, ImageVersionStatus
from galleon.oci import errors
from galleon.oci import manifest as checked

IMAGE = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
DIGEST = "sha256:" + "ab" * 32


def blob(size: Any = 10, digest: Any = DIGEST) -> dict[str, Any]:
    return {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": size}


def image(**changes: Any) -> dict[str, Any]:
    document = {"schemaVersion": 2, "mediaType": IMAGE, "config": blob(2), "layers": [blob(8)]}
    document.update(changes)
    return {k: v for k, v in document.items() if v is not ...}


def encoded(document: Any) -> bytes:
    return document if isinstance(document, bytes) else json.dumps(document).encode()


def test_a_good_image_and_index_are_read() -> None:
    parsed = checked.parse(encoded(image()), IMAGE, "reg/os:1")
    assert (parsed.media_type, parsed.blob_bytes, parsed.is_index) == (IMAGE, 10, False)
    index = checked.parse(
        encoded({"schemaVersion": 2, "mediaType": INDEX, "manifests": [blob(500)]}), "", "x"
    )
    assert index.is_index and index.manifests[0].digest == DIGEST
    assert checked.total_bytes(index, [parsed, parsed], "x") == 20


BAD = [
    pytest.param(b"<html>not json</html>", IMAGE, "is not JSON", id="html"),
    pytest.param(b"\xff\xfe", IMAGE, "is not JSON", id="not-utf8"),
    pytest.param(b"[" * 100000, IMAGE, "is not JSON", id="deeply-nested"),
    pytest.param([1, 2], IMAGE, "a JSON list, not an object", id="a-list"),
    pytest.param("manifest", IMAGE, "a JSON str, not an object", id="a-string"),
    pytest.param(image(schemaVersion=1), IMAGE, "schemaVersion is 1, not 2", id="schema-1"),
    pytest.param(image(schemaVersion=True), IMAGE, "schemaVersion is True", id="schema-bool"),
    pytest.param(image(mediaType=...), "text/plain", "media type 'text/plain'", id="media-type"),
    pytest.param(image(config=...), IMAGE, "without 'config'", id="no-config"),
    pytest.param(image(layers=...), IMAGE, "without 'layers'", id="no-layers"),
    pytest.param({"schemaVersion": 2}, INDEX, "without 'manifests'", id="index-no-manifests"),
    pytest.param(image(layers={"a": 1}), IMAGE, "layers is a JSON dict", id="layers-object"),
    pytest.param(image(layers=["x"]), IMAGE, "layers[0] is a JSON str", id="layer-not-object"),
    pytest.param(image(layers=[{"digest": DIGEST}]), IMAGE, "without size", id="no-size"),
    pytest.param(image(config={"size": 1}), IMAGE, "without digest", id="no-digest"),
    pytest.param(image(layers=[blob(-1)]), IMAGE, "size -1 is not an integer", id="negative"),
    pytest.param(image(layers=[blob(2**63)]), IMAGE, "is not an integer from 0", id="over-int64"),
    pytest.param(image(layers=[blob(1.5)]), IMAGE, "size 1.5", id="fractional-size"),
    pytest.param(image(layers=[blob("10")]), IMAGE, "size '10'", id="size-as-text"),
    pytest.param(image(layers=[blob(True)]), IMAGE, "size True", id="size-bool"),
    pytest.param(
        image(layers=[blob(2**62), blob(2**62, "sha256:" + "cd" * 32)]),
        IMAGE,
        "blobs add up to",
        id="sum-over-int64",
    ),
    pytest.param(image(layers=[blob(1, "sha256:AB")]), IMAGE, "is not sha256:", id="short"),
    pytest.param(
        image(layers=[blob(1, "sha512:" + "a" * 128)]), IMAGE, "is not sha256", id="sha512"
    ),
    pytest.param(
        image(layers=[blob(1, "sha256:../../" + "a" * 58)]), IMAGE, "is not sha256", id="path"
    ),
    pytest.param(image(layers=[blob(1, 7)]), IMAGE, "digest 7", id="digest-number"),
    pytest.param(
        image(layers=[blob()] * (checked.MAX_DESCRIPTORS + 1)),
        IMAGE,
        "more than 10000",
        id="too-many-layers",
    ),
    pytest.param(
        b" " * (checked.MAX_MANIFEST_BYTES + 1), IMAGE, "more than 4194304", id="over-4-mib"
    ),
]


@pytest.mark.parametrize(("document", "content_type", "words"), BAD)
def test_bad_manifests_are_permanent_protocol_errors(
    document: Any, content_type: str, words: str
) -> None:
    with pytest.raises(errors.ProtocolError) as refused:
        checked.parse(encoded(document), content_type, "reg:5000/os:1.0.0")
    assert refused.value.permanent
    message = str(refused.value)
    assert message.startswith("reg:5000/os:1.0.0")
    assert words in message
    assert len(message) < 400


KEYS = st.sampled_from(["schemaVersion", "config", "layers", "manifests", "digest", "size"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([DIGEST, IMAGE, "x"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=20,
)


@given(JSON)
def test_any_json_is_read_or_refused_and_what_is_read_fits_status(document: Any) -> None:
    try:
        parsed = checked.parse(encoded(document), IMAGE, "x")
    except errors.ProtocolError:
        return
    for descriptor in (*parsed.blobs, *parsed.manifests):
        assert len(descriptor.digest) <= DIGEST_MAX
    ImageVersionStatus.model_validate(
        {"sourceDigest": DIGEST, "sourceMediaType": parsed.media_type, "sizeBytes": 0}
    )
