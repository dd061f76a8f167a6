"""The restore drill (44号 Art.26 容灾备份; deploy/README.md "Restoring a service's database"):
a service database backed up continuously by pgBackRest, restored to a point in time, and its
consumer group rewound with canbao_platform.recovery, ends up as it was before the restore:
nothing lost, nothing applied twice. Real parts throughout: a PostgreSQL cluster archiving its
WAL to a pgBackRest repository, the Kafka-protocol test broker, the messaging runtime.

`make restore-drill` runs it alone and shows the figures it prints."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from canbao_platform.db import Database, migrate_async
from canbao_platform.local.backup import PgBackRest, archive_settings, wait_promoted
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_platform.messaging import ConsumerRunner, Producer
from canbao_platform.recovery import rewind
from tests.platform.conftest import (
    FAST,
    EffectsBase,
    Recorder,
    committed_offsets,
    effects,
    event,
    wait_until,
)

pytestmark = pytest.mark.skipif(
    shutil.which("pgbackrest") is None,
    reason="pgBackRest not installed (`make restore-drill` installs it)",
)

BEFORE_BACKUP, AFTER_BACKUP, AFTER_TARGET = 300, 200, 100
# A crash-safe WAL (full pages) as production has; fsync stays off to keep the drill quick.
RECOVERABLE = {"full_page_writes": "on"}
# The rewinding member's session as short as the runner's: on the test broker the next member
# joins only once the last one's session would have expired.
SESSION = {"session_timeout_ms": FAST.session_timeout_ms,
           "heartbeat_interval_ms": FAST.heartbeat_interval_ms}  # fmt: skip


@pytest.fixture
def drill_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="canbao-drill-") as tmp:
        os.chmod(tmp, 0o755)  # the server and pgBackRest may run as `postgres`
        yield Path(tmp)


async def test_a_database_restored_to_a_point_in_time_catches_up_from_kafka(
    kafka: MockKafkaCluster, make_topic: Callable[..., str], drill_dir: Path
) -> None:
    data = drill_dir / "data"
    cluster = PostgresCluster(
        data, port=free_port(), durable=False, settings={**archive_settings(data), **RECOVERABLE}
    )
    backrest = PgBackRest(cluster, drill_dir / "backup")
    topic, group = make_topic("drill"), f"drill.{os.getpid()}"
    restored: PostgresCluster | None = None
    try:
        cluster.start()
        backrest.configure()
        backrest.enable()
        url = cluster.create_database("service")
        await migrate_async(url, None)
        async with Producer(kafka.bootstrap_servers) as producer:

            def runner_on(database: Database) -> ConsumerRunner:
                return ConsumerRunner(
                    name=group,
                    topics=[topic],
                    handler=Recorder(),
                    database=database,
                    producer=producer,
                    bootstrap_servers=kafka.bootstrap_servers,
                    service="tests",
                    dead_letter_topic="deadletter.tests",
                    config=FAST,
                )

            async def feed(first: int, count: int, database: Database) -> None:
                await producer.send_many(
                    event(topic, f"v{i}", key=f"person-{i % 23}")
                    for i in range(first, first + count)
                )
                total = first + count
                await wait_until(lambda: _applied(database, total), within=30)

            database = Database(url, pool_size=4)
            async with database.engine.begin() as connection:
                await connection.run_sync(EffectsBase.metadata.create_all)
            runner = runner_on(database)
            await runner.start()
            await feed(0, BEFORE_BACKUP, database)
            backup = await asyncio.to_thread(backrest.backup, "full")
            await feed(BEFORE_BACKUP, AFTER_BACKUP, database)
            target = await _server_clock(database)  # the moment to restore to
            await feed(BEFORE_BACKUP + AFTER_BACKUP, AFTER_TARGET, database)
            before_restore = await effects(database)
            await runner.stop()
            await database.dispose()
            await asyncio.to_thread(backrest.check)  # the last WAL segment is in the repository
            cluster.stop()

            started = time.monotonic()
            into = drill_dir / "restored"
            await asyncio.to_thread(backrest.restore, into, target=target, backup=backup.label)
            # The restored copy does not archive: it is the drill's, not the repository's owner.
            no_archiving = {**archive_settings(into), "archive_mode": "off"}
            restored = PostgresCluster(into, port=free_port(), durable=False, settings=no_archiving)
            await asyncio.to_thread(restored.start)
            await asyncio.to_thread(wait_promoted, restored)
            restore_seconds = time.monotonic() - started

            database = Database(restored.url("service"), pool_size=4)
            total = BEFORE_BACKUP + AFTER_BACKUP + AFTER_TARGET
            # The restored database lacks what was applied after the target, while the group's
            # offsets are past it: started as it is, the consumer would never apply it again.
            assert len(await effects(database)) == BEFORE_BACKUP + AFTER_BACKUP
            committed = await committed_offsets(kafka.bootstrap_servers, group, topic)
            assert sum(committed.values()) == total

            moved = await rewind(
                bootstrap_servers=kafka.bootstrap_servers,
                groups={group: [topic]},
                to=target,
                consumer_options=SESSION,
            )
            replayed = sum(r.reread for r in moved)
            assert replayed == total  # the default margin (an hour) reaches the topic's start

            runner = runner_on(database)
            await runner.start()
            try:
                await wait_until(lambda: _applied(database, total), within=45)
                await wait_until(lambda: runner.counts.handled >= total, within=30)
            finally:
                await runner.stop()
            assert await effects(database) == before_restore  # each message once, none lost
            assert runner.counts.processed == AFTER_TARGET
            assert runner.counts.duplicates == BEFORE_BACKUP + AFTER_BACKUP
            await database.dispose()
    finally:
        if restored is not None:
            restored.stop()
        cluster.stop()

    print(
        f"\nrestore drill: full backup {backup.size / 2**20:.1f} MiB "
        f"({backup.stored / 2**20:.1f} MiB stored, {backup.seconds:.1f} s); "
        f"restore to the target and promotion {restore_seconds:.1f} s; "
        f"{replayed} events replayed from Kafka: {runner.counts.processed} applied, "
        f"{runner.counts.duplicates} skipped as already applied"
    )


async def _applied(database: Database, count: int) -> bool:
    async with database.engine.connect() as connection:
        found = await connection.scalar(text("SELECT count(*) FROM effects"))
    return bool(found == count)


async def _server_clock(database: Database) -> datetime:
    async with database.engine.connect() as connection:
        now: datetime = await connection.scalar(text("SELECT clock_timestamp()"))
    return now
