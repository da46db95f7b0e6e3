"""What counts as a CPU quantity, a size and an OCI image reference."""

from __future__ import annotations

import pytest

from jhaas_schemas.quantities import byte_size, cpu_millicores, image_reference_problem

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
    ],
)
def test_invalid_image_references(ref: str) -> None:
    assert image_reference_problem(ref) is not None
