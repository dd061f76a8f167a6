"""OpenTelemetry for every service: tracer and meter providers, and W3C trace context carried in
Kafka headers (`traceparent`, `tracestate`) so a consumer's span is a child of the producer's.

`setup_telemetry()` is called once per process, in the app's lifespan (never at import time).
With `otlp_endpoint` (OTEL_EXPORTER_OTLP_ENDPOINT) spans and metrics go to the collector over
OTLP/HTTP; without it, spans go to a bounded in-memory buffer (tests read it, and a service
does not leak memory) or to the console. Metrics also always go to an in-memory reader that a
test or a debug endpoint can collect.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]
TRACE_HEADERS = ("traceparent", "tracestate")
_propagator = TraceContextTextMapPropagator()


class RecentSpans(SpanExporter):
    """Keeps the last `capacity` finished spans in memory (what tests assert on)."""

    def __init__(self, capacity: int = 10_000) -> None:
        self._spans: deque[ReadableSpan] = deque(maxlen=capacity)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def finished(self) -> list[ReadableSpan]:
        return list(self._spans)

    def clear(self) -> None:
        self._spans.clear()


@dataclass
class Telemetry:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    spans: RecentSpans | None  # the in-memory exporter, when that is where spans go
    metrics: InMemoryMetricReader
    exporters: list[str]

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def setup_telemetry(
    service: str,
    *,
    otlp_endpoint: str | None = None,
    exporter: Literal["memory", "console"] = "memory",
) -> Telemetry:
    """Build the providers for `service` and install them as the process-wide ones.

    OpenTelemetry allows one global provider per process: a second call builds new providers
    but the first ones stay installed (the SDK warns), so call this once, in the lifespan.
    """
    resource = Resource.create({"service.name": f"canbao-{service}"})
    tracer_provider = TracerProvider(resource=resource)
    memory_metrics = InMemoryMetricReader()  # always there: cheap, pull-only, for tests
    readers: list[MetricReader] = [memory_metrics]
    spans: RecentSpans | None = None
    if otlp_endpoint:  # OTLP over HTTP, the collector's /v1/traces and /v1/metrics
        base = otlp_endpoint.rstrip("/")
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(f"{base}/v1/traces"))
        )
        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter(f"{base}/v1/metrics")))
        exporters = [f"otlp:{base}"]
    elif exporter == "console":
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
        readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(), 60_000))
        exporters = ["console"]
    else:
        spans = RecentSpans()
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        exporters = ["memory"]
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    return Telemetry(tracer_provider, meter_provider, spans, memory_metrics, exporters)


class _HeadersGetter(Getter[Sequence[tuple[str, bytes]]]):
    def get(self, carrier: Sequence[tuple[str, bytes]], key: str) -> list[str] | None:
        found = [value.decode("latin-1") for name, value in carrier if name == key]
        return found or None

    def keys(self, carrier: Sequence[tuple[str, bytes]]) -> list[str]:
        return [name for name, _ in carrier]


class _HeadersSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier[:] = [(name, v) for name, v in carrier if name != key]
        carrier.append((key, value.encode("latin-1")))


def has_trace_context(headers: Sequence[tuple[str, bytes]]) -> bool:
    return any(name == "traceparent" for name, _ in headers)


def inject_trace_context(headers: Headers, context: Context | None = None) -> None:
    """Write the current (or given) span's `traceparent`/`tracestate` into Kafka headers; no-op
    when there is no valid span (telemetry not set up)."""
    _propagator.inject(headers, context=context, setter=_HeadersSetter())


def extract_trace_context(headers: Sequence[tuple[str, bytes]]) -> Context:
    """The producer's span context from Kafka headers, to parent the consumer's span on."""
    return _propagator.extract(headers, getter=_HeadersGetter())
