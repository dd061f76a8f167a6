"""The bridge fails loudly: a non-zero exit, so the local stack's supervisor shows and restarts
it, never a process that looks alive and publishes nothing."""

from __future__ import annotations

import subprocess

from canbao_platform.local.postgres import free_port
from tests.stack.conftest import Cdc


def test_the_bridge_exits_non_zero_when_the_source_database_is_unreachable(cdc: Cdc) -> None:
    nowhere = f"postgresql://canbao@127.0.0.1:{free_port()}/{cdc.database}"
    bridge = cdc.start_bridge("--source-dsn", nowhere)
    try:
        code = bridge.process.wait(90)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running; log:\n{bridge.log()[-3000:]}") from None
    assert code == 1, bridge.log()[-3000:]
    assert bridge.status()["state"] == "failed"
    assert "the Debezium engine stopped on its own" in bridge.log()
