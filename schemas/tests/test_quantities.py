"""What counts as a CPU quantity, a size and an OCI image reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jhaas_schemas.quantities import (
    byte_size,
    cpu_millicores,
    digest_problem,
    image_reference_problem,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("raw", "millis"), [("500m", 500), ("1", 1000), ("2.5", 2500), ("0.25", 250)]
)
def test_cpu(raw: str, millis: int) -> None:
    assert cpu_millicores(raw) == millis


@pytest.mark.parametrize("raw", ["", "1.2.3", "-1", "1 core", "1Gi", "0.0001"])
def test_cpu_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="CPU quantity"):
        cpu_millicores(raw)


@pytest.mark.parametrize(
    ("raw", "size"),
    [
        ("4Gi", 4 * 2**30),
        ("512Mi", 512 * 2**20),
        ("10G", 10**10),
        ("1.5Gi", int(1.5 * 2**30)),
        ("0", 0),
    ],
)
def test_sizes(raw: str, size: int) -> None:
    assert byte_size(raw) == size


@pytest.mark.parametrize("raw", ["4GB", "Gi", "four", "1e3", "-1Gi"])
def test_sizes_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        byte_size(raw)


@pytest.mark.parametrize(
    "ref",
    [
        "ubuntu",
        "jupyter/scipy-notebook",
        "quay.io/jupyter/scipy-notebook:2024-12-02",
        "registry.example.org:5000/team/image:v1.2",
        "localhost:5000/img",
        "ghcr.io/org/img@sha256:" + "a" * 64,
        "ghcr.io/org/img:tag@sha256:" + "b" * 64,
        "docker.io/library/python:3.11-slim",
    ],
)
def test_valid_image_references(ref: str) -> None:
    assert image_reference_problem(ref) is None


@pytest.mark.parametrize(
    "ref",
    [
        "",
        " ubuntu",
        "Ubuntu:latest",
        "ubuntu:latest:x",
        "img@sha256:short",
        "img:",
        "/img",
        "registry.example.org:port/img",
        "img:" + "t" * 129,
        "a/" + "b" * 260,
        "img@sha256:" + "A" * 64,
        "img:tag\n",
        "img:t\u00e4g",
    ],
)
def test_invalid_image_references(ref: str) -> None:
    assert image_reference_problem(ref) is not None


# --- digests (OCI image spec, descriptor.md "Digests") ------------------------

LOWER_HEX = "0123456789abcdef"


@given(encoded=st.text(LOWER_HEX, min_size=64, max_size=64))
def test_a_lower_case_sha256_digest_is_accepted(encoded: str) -> None:
    assert digest_problem(f"sha256:{encoded}") is None
    assert image_reference_problem(f"quay.io/jupyter/base@sha256:{encoded}") is None


@given(
    encoded=st.text(LOWER_HEX, min_size=64, max_size=64).filter(
        lambda hex_digits: any(c.isalpha() for c in hex_digits)
    ),
    data=st.data(),
)
def test_upper_case_hex_is_refused(encoded: str, data: st.DataObject) -> None:
    letters = [i for i, c in enumerate(encoded) if c.isalpha()]
    upper = set(data.draw(st.lists(st.sampled_from(letters), min_size=1)))
    shouted = "".join(c.upper() if i in upper else c for i, c in enumerate(encoded))
    assert digest_problem(f"sha256:{shouted}") is not None
    assert image_reference_problem(f"img@sha256:{shouted}") is not None


@given(length=st.integers(0, 200).filter(lambda n: n not in (64,)))
def test_a_sha256_digest_has_exactly_64_digits(length: int) -> None:
    assert digest_problem("sha256:" + "a" * length) is not None


@pytest.mark.parametrize(
    "digest",
    [
        "sha512:" + "b" * 128,
        "blake3:" + "c" * 64,
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
    ],
)
def test_the_spec_examples_are_accepted(digest: str) -> None:
    # An algorithm the spec does not register passes when it fits the grammar.
    assert digest_problem(digest) is None


@pytest.mark.parametrize(
    "digest",
    [
        "SHA256:" + "a" * 64,  # the algorithm is lower case
        "sha512:" + "b" * 64,
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63 + "g",
        "sha256:" + "a" * 64 + "\n",
        "sha256+:" + "a" * 64,
        "sha256:" + "a" * 32 + " " + "a" * 31,
    ],
)
def test_digests_off_the_grammar_are_refused(digest: str) -> None:
    assert digest_problem(digest) is not None
