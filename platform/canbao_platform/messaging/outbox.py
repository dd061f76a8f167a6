"""The outbox relay: publishes what units of work wrote to the `outbox` table, in `id` order, and
deletes each row once the broker has acknowledged it (at-least-once: a crash between the ack and
the delete publishes a row again; consumers skip it by its `ce_id`).

One relay is active per database — it holds a PostgreSQL advisory lock on its own connection —
so two service instances never interleave their sends and one key's events keep their order;
the others wait as standbys and take over when that connection goes. The active relay wakes on
the outbox trigger's NOTIFY (at commit) and at least every `poll_interval_s`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from sqlalchemy import ARRAY, BigInteger, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_contracts.envelope import KafkaRecord
from canbao_platform.background import BackgroundLoop
from canbao_platform.db import Database
from canbao_platform.messaging.failures import TRANSIENT_RETRY, Backoff, describe
from canbao_platform.messaging.metrics import runtime_metrics
from canbao_platform.messaging.producer import Producer
from canbao_platform.messaging.tables import OUTBOX_CHANNEL

log = logging.getLogger(__name__)

# Advisory locks are per database, so one fixed key serves every service ("canbao" in ASCII).
OUTBOX_LOCK_KEY = 0x63616E62616F
# The next rows to send, read positionally as the driver returns them (bytea[] as a list of
# bytes): no result processing per column and row, for every event a service publishes.
_NEXT_ROWS = text(
    "SELECT id, topic, key, value, header_names, header_values FROM outbox"
    " WHERE xid < pg_snapshot_xmin(pg_current_snapshot()) ORDER BY id LIMIT :limit"
)
_DELETE_SENT = text("DELETE FROM outbox WHERE id = ANY(:ids)").bindparams(
    bindparam("ids", type_=ARRAY(BigInteger))
)


class OutboxRelay(BackgroundLoop):
    """Asked to stop, it finishes the batch being sent (its rows are deleted once acknowledged);
    stuck sending to an unreachable broker past `shutdown_timeout_s`, it is cancelled and the
    batch's rows stay in the outbox."""

    def __init__(
        self,
        database: Database,
        producer: Producer,
        *,
        name: str = "outbox-relay",
        batch_size: int = 500,
        poll_interval_s: float = 1.0,
        retry_backoff: Backoff = TRANSIENT_RETRY,
        shutdown_timeout_s: float = 10.0,
    ) -> None:
        super().__init__()
        self.name, self.stop_timeout_s = name, shutdown_timeout_s
        self._database, self._producer = database, producer
        self._batch_size, self._poll_interval_s = batch_size, poll_interval_s
        self._retry_backoff = retry_backoff
        # Ids are handed out at INSERT but become visible at COMMIT, so a later id can be seen
        # first. Rows are taken only once every older transaction has ended (their xid below
        # the oldest still running): none of those can add a lower id any more, and each key's
        # events leave in the order they were written.
        self._next_rows = _NEXT_ROWS.bindparams(limit=batch_size)
        self.role = "stopped"  # active (holds the lock) | standby | stopped
        self.relayed = 0
        self.last_error: str | None = None

    async def stop(self) -> None:
        await super().stop()
        self.role = "stopped"

    def health(self) -> dict[str, Any]:
        return {
            "ready": self.running,
            "role": self.role,
            "relayed": self.relayed,
            "last_error": self.last_error,
        }

    async def run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                await self._lead_or_wait()
                failures = 0
            except Exception as error:  # broker or database away: nothing deleted, try again
                self.role, self.last_error = "standby", describe(error)
                delay = self._retry_backoff.delay(failures)
                failures += 1
                log.warning("%s: %s; retrying in %.1f s", self.name, self.last_error, delay)
                await self.sleep(delay)

    async def _lead_or_wait(self) -> None:
        async with self._database.engine.connect() as connection:
            connection = await connection.execution_options(isolation_level="AUTOCOMMIT")
            try:
                locked = await connection.scalar(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": OUTBOX_LOCK_KEY}
                )
                if not locked:  # another instance relays this database
                    self.role = "standby"
                    await self.sleep(self._poll_interval_s)
                    return
                self.role = "active"
                await self._relay_while_leading(connection)
            finally:
                # Close rather than return to the pool: the session's advisory lock and its
                # LISTEN must not outlive this relay's turn.
                await connection.invalidate()

    async def _relay_while_leading(self, connection: AsyncConnection) -> None:
        wake = asyncio.Event()
        raw = (await connection.get_raw_connection()).driver_connection
        assert raw is not None  # an asyncpg connection, for LISTEN
        await raw.add_listener(OUTBOX_CHANNEL, lambda *_: wake.set())
        while not self.stopping:
            wake.clear()
            if await self._relay_batch(connection) < self._batch_size:
                await self.sleep(self._poll_interval_s, wake)

    async def _relay_batch(self, connection: AsyncConnection) -> int:
        rows = (await connection.execute(self._next_rows)).all()
        if not rows:
            return 0
        await self._producer.send_many(
            KafkaRecord(topic, key, value, list(zip(names, values, strict=True)))
            for _, topic, key, value, names, values in rows
        )
        await connection.execute(_DELETE_SENT, {"ids": [row[0] for row in rows]})
        self.relayed += len(rows)
        runtime_metrics().relayed.add(len(rows))
        return len(rows)
