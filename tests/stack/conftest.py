"""The CDC bridge under test: a child process (`python -m canbao_stack.cdc`, as the local stack
runs it) with the real Debezium engine, on the session's PostgreSQL and test broker.

Each test gets its own `sources_<n>` database, replication slot, publication, topic prefix,
offsets topic and consumer group, so tests never see each other's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition

from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster
from canbao_stack.cdc.existing import existing_partitions
from canbao_stack.simulators import SCHEMA_SQL, TABLES

_numbers = itertools.count(1)


@dataclass(frozen=True)
class Event:
    """One message of a cdc topic, key and value decoded from JSON (value None: tombstone)."""

    topic: str
    partition: int
    offset: int
    key: dict[str, Any]
    value: dict[str, Any] | None
    size: int  # key + value bytes

    @property
    def envelope(self) -> dict[str, Any] | None:
        """The Debezium envelope, whether or not the converter embedded the schema."""
        if self.value is None:
            return None
        envelope: dict[str, Any] = self.value.get("payload", self.value)
        return envelope

    @property
    def row_key(self) -> dict[str, Any]:
        key: dict[str, Any] = self.key.get("payload", self.key)
        return key

    @property
    def op(self) -> str:
        return "tombstone" if self.envelope is None else self.envelope["op"]

    @property
    def lsn(self) -> int | None:
        return None if self.envelope is None else self.envelope["source"]["lsn"]


class BridgeProcess:
    def __init__(self, argv: list[str], log_path: Path, status_path: Path, cwd: Path) -> None:
        self.log_path = log_path
        self.status_path = status_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, as the supervisor stops it; the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def kill(self) -> int:
        self.process.kill()
        return self.process.wait(10)

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def status(self) -> dict[str, Any]:
        return json.loads(self.status_path.read_text()) if self.status_path.exists() else {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Cdc:
    """One test's CDC world: names, database, topics, bridges and a reader of the topics."""

    postgres: PostgresCluster
    kafka: MockKafkaCluster
    workdir: Path
    number: str
    partitions: int = 3
    bridges: list[BridgeProcess] = field(default_factory=list)
    _topics_created: bool = False

    @property
    def database(self) -> str:
        return f"sources_{self.number}"

    @property
    def prefix(self) -> str:
        return f"cdc_{self.number}"

    @property
    def slot(self) -> str:
        return f"cdc_{self.number}"

    @property
    def offsets_topic(self) -> str:
        return f"cdc-offsets.{self.number}"

    @property
    def group(self) -> str:
        return f"identity-{self.number}"

    def topic(self, schema: str, table: str) -> str:
        return f"{self.prefix}.{schema}.{table}"

    @property
    def topics(self) -> list[str]:
        return [self.topic(schema, table) for schema, table in TABLES]

    def use_broker(self, kafka: MockKafkaCluster) -> None:
        """Another test broker from now on (its topics are created at the next start)."""
        self.kafka = kafka
        self._topics_created = False

    async def execute(self, sql: str, *args: object) -> None:
        connection = await asyncpg.connect(self.postgres.dsn(self.database))
        try:
            await connection.execute(sql, *args)
        finally:
            await connection.close()

    def start_bridge(self, *options: str) -> BridgeProcess:
        if not self._topics_created:
            # The local stack creates the contract topics and the offsets topic on the test
            # broker the same way: it has no CreateTopics API.
            for topic in self.topics:
                self.kafka.create_topic(topic, self.partitions)
            self.kafka.create_topic(self.offsets_topic, 1)
            self._topics_created = True
        argv = [
            sys.executable,
            "-m",
            "canbao_stack.cdc",
            "--bootstrap-servers",
            self.kafka.bootstrap_servers,
            "--source-dsn",
            self.postgres.dsn(self.database),
            "--topic-prefix",
            self.prefix,
            "--offsets-topic",
            self.offsets_topic,
            "--slot",
            self.slot,
            "--publication",
            self.slot,
            "--watch-groups",
            self.group,
            "--status-file",
            str(self.workdir / "status.json"),
            "--progress-interval",
            "1",
            *options,
        ]
        bridge = BridgeProcess(
            argv, self.workdir / "bridge.log", self.workdir / "status.json", self.workdir
        )
        self.bridges.append(bridge)
        return bridge

    @contextlib.asynccontextmanager
    async def reader(self, *, bytes_per_s: float | None = None) -> AsyncIterator[TopicReader]:
        """Reads the cdc topics and commits as the group the bridge watches, like the identity
        service (else the bridge waits for it once 2.5 MiB are unread); `bytes_per_s` makes it
        a slow one."""
        reader = TopicReader(
            self.kafka.bootstrap_servers, self.topics, group=self.group, bytes_per_s=bytes_per_s
        )
        await reader.start()
        try:
            yield reader
        finally:
            await reader.stop()

    async def stored_offset(self) -> dict[str, Any] | None:
        """The latest source offset on the offsets topic (what a restart resumes from)."""
        reader = TopicReader(self.kafka.bootstrap_servers, [self.offsets_topic], raw=True)
        await reader.start()
        try:
            await reader.drain()
            value = reader.raw[-1][1] if reader.raw else None
            return None if value is None else dict(json.loads(value))
        finally:
            await reader.stop()


class TopicReader:
    """Reads every partition of the topics from the beginning, in the background."""

    def __init__(
        self,
        bootstrap: str,
        topics: list[str],
        *,
        group: str | None = None,
        bytes_per_s: float | None = None,
        raw: bool = False,
    ) -> None:
        self._bootstrap = bootstrap
        self._group = group
        self._bytes_per_s = bytes_per_s
        # After an eviction the consumer jumps to the oldest message left, like a service would.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._topics = topics
        self._raw = raw
        self.events: list[Event] = []
        self.raw: list[tuple[bytes | None, bytes | None]] = []
        self._task: asyncio.Task[None] | None = None
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap)
        await admin.start()
        try:
            self._partitions = await existing_partitions(admin, self._topics)
        finally:
            await admin.close()
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        if not self._raw:
            self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            slow = self._bytes_per_s is not None
            batches = await self._consumer.getmany(
                timeout_ms=200, max_records=100 if slow else None
            )
            received = 0
            for records in batches.values():
                for r in records:
                    self.events.append(
                        Event(
                            r.topic,
                            r.partition,
                            r.offset,
                            json.loads(r.key) if r.key is not None else {},
                            json.loads(r.value) if r.value is not None else None,
                            len(r.key or b"") + len(r.value or b""),
                        )
                    )
                    received += self.events[-1].size
            if batches and self._group is not None:
                await self._consumer.commit()
            if self._bytes_per_s is not None:
                await asyncio.sleep(received / self._bytes_per_s)

    async def log_starts(self) -> dict[TopicPartition, int]:
        """The oldest offset each partition still holds (the test broker evicts from there)."""
        starts: dict[TopicPartition, int] = await self._consumer.beginning_offsets(self._partitions)
        return starts

    async def drain(self) -> None:
        """Raw mode: read up to the end offsets as they are now."""
        ends = await self._consumer.end_offsets(self._partitions)
        for tp in self._partitions:
            while await self._consumer.position(tp) < ends[tp]:
                for r in (await self._consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                    self.raw.append((r.key, r.value))

    async def wait_for(
        self, done: Callable[[list[Event]], bool], *, within: float, bridge: BridgeProcess
    ) -> list[Event]:
        deadline = time.monotonic() + within
        while not done(self.events):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out with {len(self.events)} events; bridge log:\n{bridge.log()[-3000:]}"
                )
            if self._task is not None and self._task.done():
                self._task.result()
            await asyncio.sleep(0.1)
        return self.events

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


@pytest.fixture
def cdc(postgres: PostgresCluster, kafka: MockKafkaCluster, tmp_path: Path) -> Iterator[Cdc]:
    world = Cdc(postgres, kafka, tmp_path, f"{os.getpid()}_{next(_numbers)}")
    postgres.create_database(world.database)
    postgres.psql(world.database, SCHEMA_SQL.read_text())
    yield world
    for bridge in world.bridges:
        if bridge.running:
            bridge.kill()
    _drop_slot(postgres, world.slot)


def _drop_slot(postgres: PostgresCluster, slot: str) -> None:
    """Slots are cluster-wide, few (max_replication_slots) and keep WAL: never leave one."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = postgres.psql(
            "postgres", f"SELECT active FROM pg_replication_slots WHERE slot_name = '{slot}'"
        ).strip()
        if state == "":
            return
        if state == "f":
            postgres.psql("postgres", f"SELECT pg_drop_replication_slot('{slot}')")
            return
        time.sleep(0.2)  # a killed bridge's walsender takes a moment to notice
    raise AssertionError(f"replication slot {slot} still active")
