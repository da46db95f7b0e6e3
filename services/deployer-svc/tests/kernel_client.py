"""Run Python in a Jupyter server's kernel through the hub's proxy, as the server's user.

Only what the isolation tests need: start a kernel over the REST API, send one
`execute_request` over the kernel's websocket (the JSON protocol), collect what
it printed until the kernel is idle again.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def run_in_kernel(server_url: str, token: str, code: str, *, timeout: float = 120) -> str:
    """`code`'s stdout from a fresh kernel of the server at `server_url` (…/user/<name>/)."""
    headers = {"Authorization": f"token {token}"}
    async with httpx.AsyncClient(base_url=server_url, headers=headers, timeout=60) as client:
        started = await client.post("api/kernels", json={"name": "python3"})
        started.raise_for_status()
        kernel = started.json()["id"]
        try:
            return await _execute(server_url, kernel, token, code, timeout)
        finally:
            await client.delete(f"api/kernels/{kernel}")


async def _execute(server_url: str, kernel: str, token: str, code: str, timeout: float) -> str:
    ws_url = server_url.replace("http://", "ws://", 1) + f"api/kernels/{kernel}/channels"
    request = HTTPRequest(
        ws_url, headers={"Authorization": f"token {token}"}, request_timeout=timeout
    )
    conn = await websocket_connect(request)
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps(_execute_request(msg_id, code)))
    out: list[str] = []
    try:
        while True:
            raw = await conn.read_message()
            if raw is None:
                raise RuntimeError(f"kernel connection closed; output so far: {''.join(out)}")
            msg: dict[str, Any] = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                raise RuntimeError(f"{content['ename']}: {content['evalue']}")
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
    finally:
        conn.close()


def _execute_request(msg_id: str, code: str) -> dict[str, Any]:
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
        "buffers": [],
    }
