import asyncio, time, tempfile, secrets
from pathlib import Path
import httpx, nats
from jhaas_launcher.stack import Stack
from bench.reads import _leader_with_request
from jhaas_runtime.rpc import RpcClient
from jhaas_schemas.rpc import RequestOps, GetRequest, HubRequest
from jhaas_schemas.model import Principal, Role


async def main():
    tmp = tempfile.mkdtemp()
    stack = Stack(
        data_dir=Path(tmp) / "data",
        extra_env={"JHAAS_ADMIN_PASSWORD": "bench-admin-password", "JHAAS_LOG_LEVEL": "WARNING"},
    )
    await stack.start()
    try:
        async with httpx.AsyncClient(base_url=stack.gateway_url) as c:
            h, rid = await _leader_with_request(c)
            me = (await c.get("/api/v1/auth/me", headers=h)).json()
        nc = await nats.connect(f"nats://127.0.0.1:{stack.nats_port}")
        cl = RpcClient(nc)
        p = Principal(
            user_id=me.get("user_id") or me.get("id"), username="bench-leader", roles=(Role.LEADER,)
        )
        n = 2000

        async def w(k):
            for i in range(k):
                await cl.call(
                    RequestOps.GET,
                    GetRequest(request_id=rid),
                    HubRequest,
                    principal=p,
                    correlation_id="x",
                )

        t = time.perf_counter()
        await asyncio.gather(*(w(n // 16) for _ in range(16)))
        print("rpc direct req/s", n / (time.perf_counter() - t))
        t = time.perf_counter()
        for i in range(300):
            await cl.call(
                RequestOps.GET,
                GetRequest(request_id=rid),
                HubRequest,
                principal=p,
                correlation_id="x",
            )
        print("rpc serial ms", (time.perf_counter() - t) / 300 * 1000)
    finally:
        stack.stop()


asyncio.run(main())
