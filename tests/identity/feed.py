"""A seeded population's source rows as the change events Debezium's snapshot would write (op
"r", all at the snapshot's LSN), for tests and the benchmark that need more rows than the real
bridge streams in their time (tests/identity/test_cdc_path.py runs the real bridge)."""

from __future__ import annotations

from typing import Any

import asyncpg

from canbao_stack.simulators import TABLES
from tests.identity.conftest import Message, change

SNAPSHOT_LSN = 5_000


async def snapshot_messages(dsn: str, *, lsn: int = SNAPSHOT_LSN) -> list[Message]:
    """Every row of every source table, as a snapshot read."""
    connection = await asyncpg.connect(dsn.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        messages = []
        for schema, table in TABLES:
            rows = await connection.fetch(f"SELECT * FROM {schema}.{table}")
            for row in rows:
                values: dict[str, Any] = {k: v for k, v in dict(row).items() if k != "updated_at"}
                messages.append(change(f"{schema}.{table}", values, op="r", lsn=lsn))
        return messages
    finally:
        await connection.close()
