"""What the benchmarks share: the settings of a deployer-svc under measurement."""

from __future__ import annotations

from pathlib import Path

from jhaas_runtime.settings import RuntimeSettings


def deployer_runtime(nats_url: str, database_url: str, root: Path, pool: int) -> RuntimeSettings:
    """deployer-svc's runtime settings for a benchmark: quiet logs, one stream replica."""
    return RuntimeSettings(
        service="deployer-svc",
        nats_url=nats_url,
        database_url=database_url,
        db_pool_size=pool,
        data_dir=root,
        stream_replicas=1,
        rpc_timeout_seconds=5,
        max_deliver=5,
        ack_wait_seconds=30,
        log_level="WARNING",
        log_format="json",
    )
