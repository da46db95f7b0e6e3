"""A real OpenID Connect provider for the tests: npm oidc-provider (tests/idp/provider.mjs).

`TestIdp` starts it as a process on a free port and stops it; `sign_in_at_idp`
is the browser: it follows the provider's redirects and posts its login and
consent forms with httpx, and returns the URL the provider sends back to the
gateway (the callback with code and state).

`misbehave(mode)` turns the provider into a test double of a misbehaving IdP:
its own token endpoint answers, but the id_token in the answer is altered and
re-signed (provider.mjs, MISBEHAVIOUR), so each check the relying party must
make can be shown to fail for the right reason.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from jhaas_launcher.processes import free_port, wait_for_port

IDP_DIR = Path(__file__).resolve().parents[3] / "tests" / "idp"
CLIENT_SECRET = "a client secret of forty characters, at least"
# The accounts every test provider knows; sign in with the `sub` as the login.
ACCOUNTS: tuple[dict[str, Any], ...] = (
    {
        "sub": "alice",
        "email": "alice@uni.example",
        "email_verified": True,
        "name": "Alice Lovelace",
        "preferred_username": "alice",
        "groups": ["staff", "jhaas-leaders"],
        "eduPersonEntitlement": [],
    },
    {
        "sub": "bob",
        "email": "bob@students.uni.example",
        "email_verified": True,
        "name": "Bob Babbage",
        "groups": ["students"],
        "eduPersonEntitlement": ["urn:mace:uni.example:jhaas:governance"],
    },
    {
        # Claims a university's domain without the provider vouching for it.
        "sub": "mallory",
        "email": "mallory@uni.example",
        "email_verified": False,
        "name": "Mallory",
        "groups": [],
        "eduPersonEntitlement": [],
    },
    {"sub": "dave", "email": "dave@elsewhere.example", "email_verified": True, "name": "Dave"},
)


@dataclass
class TestIdp:
    workdir: Path
    redirect_uris: list[str]
    client_id: str = "jhaas-gateway"
    client_secret: str = CLIENT_SECRET
    accounts: tuple[dict[str, Any], ...] = ACCOUNTS
    claims_in_id_token: bool = False
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    __test__ = False  # not a test class, despite its name

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TestIdp:
        if shutil.which("node") is None or not (IDP_DIR / "node_modules").is_dir():
            raise RuntimeError("the test IdP needs node and `npm ci --prefix tests/idp`")
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.workdir / "idp.json"
        config.write_text(json.dumps(self._config()))
        log = (self.workdir / "idp.log").open("ab")
        self.process = subprocess.Popen(
            ["node", str(IDP_DIR / "provider.mjs"), str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, process=self.process, what="the test IdP")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def _config(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "port": self.port,
            "clients": [
                {
                    "client_id": self.client_id,
                    "client_secret": self.client_secret,
                    "redirect_uris": self.redirect_uris,
                }
            ],
            "accounts": list(self.accounts),
            "claims_in_id_token": self.claims_in_id_token,
        }

    def _admin(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(f"{self.issuer}/_test/{path}", json=body, timeout=10)
        response.raise_for_status()
        answer: dict[str, Any] = response.json()
        return answer

    def rotate(self, *, keep_old: bool = False) -> str:
        """A new signing key; the old one stays published only with keep_old. Its kid."""
        kid: str = self._admin("rotate", {"keep_old": keep_old})["kid"]
        return kid

    def misbehave(self, mode: str | None) -> None:
        self._admin("misbehave", {"mode": mode})

    def set_account(self, account: dict[str, Any]) -> None:
        """Add or replace an account: its claims from the next sign-in on."""
        self._admin("account", account)

    def jwks(self) -> dict[str, Any]:
        keys: dict[str, Any] = httpx.get(f"{self.issuer}/jwks", timeout=10).json()
        return keys


_FORM_ACTION = re.compile(r'<form[^>]*action="([^"]+)"')
_PROMPT = re.compile(r'name="prompt" value="([^"]+)"')
_ABORT = re.compile(r'href="([^"]+/abort)"')


async def sign_in_at_idp(
    authorize_url: str, login: str, *, cancel: bool = False, max_steps: int = 12
) -> str:
    """Go through the provider as a browser would; the URL it finally sends us away to.

    With `cancel` the person presses the login page's cancel link instead.
    """
    async with httpx.AsyncClient(timeout=10) as browser:
        issuer_origin = httpx.URL(authorize_url).copy_with(path="/", query=None)
        response = await browser.get(authorize_url)
        for _ in range(max_steps):
            if response.is_redirect:
                target = urljoin(str(response.url), response.headers["location"])
                if not target.startswith(str(issuer_origin)):
                    return target  # leaving the provider: back to the relying party
                response = await browser.get(target)
                continue
            abort = _ABORT.search(response.text)
            if cancel and abort is not None:
                response = await browser.get(urljoin(str(response.url), html.unescape(abort[1])))
                continue
            response = await _submit(browser, response, login)
        raise AssertionError(f"the provider never sent the browser back: {response.text[:300]}")


async def _submit(browser: httpx.AsyncClient, page: httpx.Response, login: str) -> httpx.Response:
    action, prompt = _FORM_ACTION.search(page.text), _PROMPT.search(page.text)
    if page.status_code != 200 or action is None or prompt is None:
        problem = f"no form on the provider's page ({page.status_code})"
        raise AssertionError(f"{problem}: {page.text[:300]}")
    fields = {"prompt": prompt.group(1)}
    if fields["prompt"] == "login":
        fields |= {"login": login, "password": "any password: the development login takes it"}
    url = urljoin(str(page.url), html.unescape(action.group(1)))
    return await browser.post(url, data=fields)
