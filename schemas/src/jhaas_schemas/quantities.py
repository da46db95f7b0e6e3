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
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"^{_NAME}(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?$")


def image_reference_problem(reference: str) -> str | None:
    """None when `reference` is a valid OCI image reference, else what is wrong."""
    if reference != reference.strip() or not reference:
        return "must not be empty or have surrounding spaces"
    match = _REFERENCE.match(reference)
    if not match:
        return (
            "is not a valid image reference such as quay.io/jupyter/scipy-notebook:2024-12-02, "
            "registry.example.org:5000/team/image:tag or name@sha256:<hex digest>"
        )
    name_length = len(match["path"]) + (len(match["domain"]) + 1 if match["domain"] else 0)
    if name_length > 255:
        return "has a repository name longer than 255 characters"
    return None
