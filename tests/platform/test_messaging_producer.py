"""The producer on the test broker: records are placed by key as Kafka's default partitioner
places them, keep their order per key however many batches they need, and a sent record carries
the trace of the span that sent it, or its own."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiokafka.partitioner import DefaultPartitioner
from opentelemetry import trace

from canbao_contracts.envelope import KafkaRecord
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import free_port
from canbao_platform.messaging import Producer
from canbao_platform.telemetry import extract_trace_context, inject_trace_context
from tests.conftest import Observed
from tests.platform.conftest import read_topic

PERSONS = [f"person-{n:04}".encode() for n in range(40)]


async def test_records_land_where_the_default_partitioner_puts_them_in_order_per_key(
    kafka: MockKafkaCluster, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=7)
    # 40 keys × 50 records of ~300 bytes: far more than one 16 KiB batch per partition.
    records = [
        KafkaRecord(topic, key, f"{key.decode()}:{n:03}:{'x' * 280}".encode(), [])
        for n in range(50)
        for key in PERSONS
    ]
    async with Producer(kafka.bootstrap_servers, max_batch_size=16_384) as producer:
        await producer.send_many(records)

    read = await read_topic(kafka.bootstrap_servers, topic, len(records))
    assert len(read) == len(records)
    partitioner = DefaultPartitioner()
    for record in read:
        assert record.key is not None and record.value is not None
        assert record.partition == partitioner(record.key, list(range(7)), list(range(7)))
    for key in PERSONS:
        sequence = [r.value for r in read if r.key == key]  # partition, then offset order
        assert sequence == [r.value for r in records if r.key == key]
    assert len({r.partition for r in read}) == 7


async def test_a_record_larger_than_a_batch_is_sent_on_its_own(
    kafka: MockKafkaCluster, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=1)
    small, large = b"s" * 100, b"L" * 40_000
    records = [KafkaRecord(topic, b"k", value, []) for value in (small, large, small)]
    async with Producer(kafka.bootstrap_servers, max_batch_size=16_384) as producer:
        await producer.send_many(records)

    read = await read_topic(kafka.bootstrap_servers, topic, 3)
    assert [r.value for r in read] == [small, large, small]


async def test_a_record_keeps_its_own_trace_and_the_send_span_links_to_it(
    observed: Observed, kafka: MockKafkaCluster, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("a handler published an event") as handler:
        headers: list[tuple[str, bytes]] = []
        inject_trace_context(headers)
    own = KafkaRecord(topic, b"a", b"from the outbox", headers)
    bare = KafkaRecord(topic, b"b", b"from a tool", [])
    async with Producer(kafka.bootstrap_servers) as producer:
        await producer.send_many([own, bare])

    [sent] = [s for s in observed.spans.finished() if s.name == f"send {topic}"]
    assert sent.kind == trace.SpanKind.PRODUCER and sent.attributes is not None
    assert sent.attributes["messaging.batch.message_count"] == 2
    assert [link.context.span_id for link in sent.links] == [handler.get_span_context().span_id]
    read = {r.value: r for r in await read_topic(kafka.bootstrap_servers, topic, 2)}

    def parent(value: bytes) -> int:
        headers = [(name, bytes(v)) for name, v in read[value].headers]
        return trace.get_current_span(extract_trace_context(headers)).get_span_context().span_id

    assert parent(b"from the outbox") == handler.get_span_context().span_id
    assert sent.context is not None and parent(b"from a tool") == sent.context.span_id


async def test_sending_nothing_does_not_wait_for_the_broker() -> None:
    """A batch without poison messages sends no dead letters, even while the broker is away."""
    producer = Producer(f"127.0.0.1:{free_port()}")  # nobody listens: it never connects
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_many([]), timeout=1)
    finally:
        await producer.stop()
