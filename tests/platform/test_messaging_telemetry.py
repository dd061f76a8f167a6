"""Tracing and metrics: the span of a consumed batch links to the span that sent each of its
messages (their `traceparent` header), what the handler publishes continues the batch's trace,
and the runtime's counters and lag are exported as OpenTelemetry metrics."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlmodel import select

from canbao_contracts.envelope import decode
from canbao_contracts.events import PersonsMerged
from canbao_platform.db import Database
from canbao_platform.messaging import ConsumerRunner, InboundMessage, Producer, UnitOfWork
from canbao_platform.messaging.tables import OutboxMessage
from canbao_platform.telemetry import extract_trace_context
from tests.conftest import Observed
from tests.platform.conftest import Recorder, event, wait_until

MERGED = PersonsMerged(merged_person_id=uuid.uuid4(), surviving_person_id=uuid.uuid4())


def merge(message: InboundMessage, uow: UnitOfWork) -> None:
    uow.publish_event(MERGED)


async def test_the_batch_span_links_to_the_span_that_sent_each_message(
    observed: Observed,
    make_topic: Callable[..., str],
    producer: Producer,
    database: Database,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    topic = make_topic(partitions=1)
    runner = make_runner([topic], Recorder(publish=merge))
    tracer = trace.get_tracer("tests")
    with tracer.start_as_current_span("clerk submits a collection"):
        await producer.send(event(topic, "first", event_id="t1"))
    with tracer.start_as_current_span("another clerk submits one"):
        await producer.send(event(topic, "second", event_id="t2"))
    await runner.start()
    await wait_until(lambda: runner.counts.processed == 2)

    finished = observed.spans.finished()
    sent = {s.context.span_id: s for s in finished if s.name == f"send {topic}" and s.context}
    process = [s for s in finished if s.name == f"process {topic}"]
    assert sum(s.attributes["messaging.batch.message_count"] for s in process if s.attributes) == 2
    linked = {link.context.span_id: link.context.trace_id for s in process for link in s.links}
    assert linked == {span_id: s.context.trace_id for span_id, s in sent.items() if s.context}
    assert all(s.kind == trace.SpanKind.CONSUMER for s in process)
    assert all(
        s.attributes and s.attributes["messaging.consumer.group.name"] == runner.name
        for s in process
    )

    # What the handler published (through the outbox) carries the span of its batch.
    async with database.sessions() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    assert len(rows) == 2
    for row in rows:
        headers = list(zip(row.header_names, row.header_values, strict=True))
        envelope, published = decode(headers, row.value)
        assert published == MERGED and envelope.source == "/canbao/tests"
        downstream = trace.get_current_span(extract_trace_context(headers)).get_span_context()
        assert downstream.span_id in {s.context.span_id for s in process if s.context}


def _points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return [
        point
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == name
        for point in metric.data.data_points
    ]


async def test_counts_and_lag_are_exported_as_metrics(
    observed: Observed,
    make_topic: Callable[..., str],
    producer: Producer,
    make_runner: Callable[..., ConsumerRunner],
) -> None:
    reader = observed.metrics
    topic = make_topic(partitions=1)
    first = event(topic, "once", event_id="m1")
    await producer.send_many([first, first])
    runner = make_runner([topic], Recorder())
    await runner.start()
    await wait_until(lambda: runner.counts.handled == 2)

    def value(name: str) -> int:
        mine = [p for p in _points(reader, name) if p.attributes.get("consumer") == runner.name]
        return sum(p.value for p in mine)

    assert value("canbao.messaging.processed") == 1
    assert value("canbao.messaging.duplicates") == 1
    await wait_until(
        lambda: (
            value("canbao.messaging.consumer.lag") == 0
            and any(
                p.attributes == {"consumer": runner.name, "topic": topic, "partition": 0}
                for p in _points(reader, "canbao.messaging.consumer.lag")
            )
        )
    )
