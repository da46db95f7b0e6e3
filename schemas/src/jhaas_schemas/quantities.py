"""Kubernetes resource quantities and OCI image references: what counts as valid.

Pure functions shared by the services that check a request (request-svc) and
the one that turns it into a hub (deployer-svc).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_CPU = re.compile(r"^(?P<num>\d+(\.\d{1,3})?)(?P<milli>m)?$")
_BYTES = re.compile(r"^(?P<num>\d+(\.\d+)?)(?P<unit>Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$")
_UNITS = {
    None: 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}


def cpu_millicores(quantity: str) -> int:
    """``"500m"`` -> 500, ``"2"`` -> 2000, ``"0.5"`` -> 500; ValueError otherwise."""
    match = _CPU.match(quantity.strip())
    if not match:
        raise ValueError(f"{quantity!r} is not a CPU quantity such as 500m, 1 or 2.5")
    number = Decimal(match["num"])
    return int(number) if match["milli"] else int(number * 1000)


def byte_size(quantity: str) -> int:
    """``"4Gi"`` -> 4294967296, ``"512M"`` -> 512000000; ValueError otherwise."""
    match = _BYTES.match(quantity.strip())
    if not match:
        raise ValueError(
            f"{quantity!r} is not a size such as 512Mi, 4Gi or 10G (units Ki Mi Gi Ti, k M G T)"
        )
    try:
        return int(Decimal(match["num"]) * _UNITS[match["unit"]])
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"{quantity!r} is not a number") from None


# The reference grammar of the OCI distribution spec (distribution/reference):
# [registry[:port]/]path[:tag][@digest]
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
_TAG = r"[\w][\w.-]{0,127}"
# Digests as the OCI image spec defines them (descriptor.md, "Digests"):
# algorithm ":" encoded, where the registered algorithms fix the encoding to
# lower-case hex of the hash's length; an algorithm it does not register passes
# when it fits the grammar, as the spec asks.
_DIGEST = r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+"
_REGISTERED_DIGESTS = {
    "sha256": re.compile(r"[a-f0-9]{64}"),
    "sha512": re.compile(r"[a-f0-9]{128}"),
    "blake3": re.compile(r"[a-f0-9]{64}"),  # registered by image-spec v1.1
}
# ASCII: in the grammar `\w` is [A-Za-z0-9_], not every letter of Unicode.
_REFERENCE = re.compile(rf"^{_NAME}(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$", re.ASCII)


def digest_problem(digest: str) -> str | None:
    """None when `digest` is a valid OCI digest (``sha256:<64 lower-case hex>``), else why not."""
    if not re.fullmatch(_DIGEST, digest):
        return "is not a digest such as sha256:<64 lower-case hex digits>"
    algorithm, encoded = digest.split(":", 1)
    expected = _REGISTERED_DIGESTS.get(algorithm)
    if expected is not None and not expected.fullmatch(encoded):
        length = 128 if algorithm == "sha512" else 64
        return f"a {algorithm} digest is {length} lower-case hex digits"
    return None


def image_reference_problem(reference: str) -> str | None:
    """None when `reference` is a valid OCI image reference, else what is wrong."""
    if reference != reference.strip() or not reference:
        return "must not be empty or have surrounding spaces"
    match = _REFERENCE.fullmatch(reference)
    if not match:
        return (
            "is not a valid image reference such as quay.io/jupyter/scipy-notebook:2024-12-02, "
            "registry.example.org:5000/team/image:tag or name@sha256:<64 lower-case hex digits>"
        )
    name_length = len(match["path"]) + (len(match["domain"]) + 1 if match["domain"] else 0)
    if name_length > 255:
        return "has a repository name longer than 255 characters"
    if match["digest"] is not None:
        problem = digest_problem(match["digest"])
        return None if problem is None else f"has a digest that is not valid: {problem}"
    return None
