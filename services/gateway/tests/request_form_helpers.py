"""The request form's tests (issue 11): NATS, request-svc, governance-svc and the
gateway as real processes (jhaas_launcher.stack.Stack) under one policy file, and
people made through the API as the first admin would."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from jhaas_launcher import second_factor
from jhaas_launcher.natsauth import NATS_ADMIN, apply_streams
from jhaas_launcher.stack import Stack

ADMIN_PASSWORD = "form-admin-password-0123"
LEA = ("lea", "lea's password 1234")  # a course leader
PIA = ("pia", "pia's password 1234")  # a participant, nothing more
LEO = ("leo", "leo's password 1234")  # another course leader
# A course leader whose profile chose German: a signed-in person's pages speak it.
LENA = ("lena", "lena's password 1234")

# A policy whose limits the form shows; auto-approval lets a small course be approved
# by the system (the change form needs an approved course), no reviewer needed.
POLICY = """\
limits:
  cpu: {min: 250m, max: 4}
  memory: {min: 512Mi, max: 16Gi}
  storage: {min: 1Gi, max: 50Gi}
  gpus: {max: 0}
course:
  max_participants: 200
  max_duration_days: 120
  max_advance_days: 365
  min_lead_time_hours: 48
images:
  allow_custom: true
  allowed: ["quay.io/jupyter/*"]
presets:
  - name: datascience
    title: Data science
    description: Python with pandas, scikit-learn and matplotlib.
    image: quay.io/jupyter/scipy-notebook:2024-12-02
    resources: {cpu: 1, memory: 2Gi, storage: 5Gi}
  - name: r-stats
    title: Statistics with R
    description: R with the tidyverse.
    image: quay.io/jupyter/r-notebook:2024-12-02
    resources: {cpu: 500m, memory: 1536Mi, storage: 2Gi}
auto_approval:
  enabled: true
  max_participants: 50
  max_per_user: {cpu: 2, memory: 4Gi, storage: 10Gi, gpus: 0}
  max_duration_days: 120
  presets_only: false
"""


@dataclass(frozen=True)
class FormStack:
    url: str
    stack: Stack

    def api(self, who: tuple[str, str]) -> dict[str, str]:
        """Bearer headers of `who` (signed in through the API); in a thread of its own,
        as a test driving Playwright's sync API has an event loop running."""
        with ThreadPoolExecutor(max_workers=1) as thread:
            return thread.submit(asyncio.run, _bearer(self.url, who)).result()

    def requests_of(self, who: tuple[str, str]) -> list[dict[str, Any]]:
        headers = self.api(who)
        found = httpx.get(f"{self.url}/api/v1/requests", headers=headers, timeout=15)
        assert found.status_code == 200, found.text
        items: list[dict[str, Any]] = found.json()["items"]
        return items


async def _bearer(url: str, who: tuple[str, str]) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        return await second_factor.sign_in(client, *who)


async def _make_people(url: str) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=15) as client:
        admin = await second_factor.sign_in(client, "admin", ADMIN_PASSWORD)
        people = ((LEA, ["leader"]), (PIA, []), (LEO, ["leader"]), (LENA, ["leader"]))
        for (name, password), roles in people:
            made = await client.post(
                "/api/v1/users",
                headers=admin,
                json={"username": name, "password": password, "roles": roles},
            )
            assert made.status_code == 201, made.text
        lena = await second_factor.sign_in(client, *LENA)
        german = await client.patch("/api/v1/me", headers=lena, json={"preferred_language": "de"})
        assert german.status_code == 200, german.text


@contextmanager
def form_stack(folder: Path) -> Iterator[FormStack]:
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    stack = Stack(data_dir=folder / "data")
    url = f"http://localhost:{stack.gateway_port}"
    stack.extra_env = {
        "JHAAS_PUBLIC_URL": url,
        "JHAAS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "JHAAS_LOG_FORMAT": "console",
        "JHAAS_POLICY_FILE": str(policy),
    }
    try:
        stack.start_nats()
        seed = stack.credentials.seed_file(NATS_ADMIN)
        asyncio.run(apply_streams(stack.nats_url, seed, replicas=1))
        asyncio.run(stack.start_service("request-svc"))
        asyncio.run(stack.start_service("governance-svc"))
        asyncio.run(stack.start_service("gateway"))
        asyncio.run(_make_people(url))
        yield FormStack(url=url, stack=stack)
    finally:
        stack.stop()


def csrf_of(page: httpx.Response) -> str:
    return page.text.split('name="csrf" value="')[1].split('"')[0]


@contextmanager
def browser_session(url: str, who: tuple[str, str]) -> Iterator[httpx.Client]:
    """A client signed in with the sign-in form, as a browser is (its session cookie)."""
    with httpx.Client(base_url=url, timeout=15, follow_redirects=False) as client:
        form = client.get("/signin", params={"next": "/"})
        assert form.status_code == 200, form.text
        signed_in = client.post(
            "/signin",
            data={"csrf": csrf_of(form), "next": "/", "username": who[0], "password": who[1]},
        )
        assert signed_in.status_code == 303, signed_in.text
        yield client
