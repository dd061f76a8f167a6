"""The runtime's OpenTelemetry instruments, one set per process, labelled by consumer, and
each runner's own counts (what its `health()` reports), kept together so they cannot disagree.

Instruments come from the global meter provider through the API's proxy, so they work whether
`setup_telemetry()` ran before or after this module was imported (and cost nothing if never).
Consumer lag is an observable gauge read from the live runners at each collection.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from canbao_platform.messaging.batch import BatchOutcome


class LagSource(Protocol):
    name: str

    def lag(self) -> Mapping[tuple[str, int], int]: ...


class RuntimeMetrics:
    def __init__(self) -> None:
        meter = metrics.get_meter("canbao.messaging")
        self.processed = meter.create_counter(
            "canbao.messaging.processed", unit="{message}", description="Messages applied"
        )
        self.duplicates = meter.create_counter(
            "canbao.messaging.duplicates",
            unit="{message}",
            description="Messages skipped because their idempotency record existed",
        )
        self.dead_lettered = meter.create_counter(
            "canbao.messaging.dead_lettered",
            unit="{message}",
            description="Messages sent to the dead-letter topic",
        )
        self.retries = meter.create_counter(
            "canbao.messaging.retries",
            unit="{retry}",
            description="Batch retries after transient failures and message retries after errors",
        )
        self.restarts = meter.create_counter(
            "canbao.messaging.restarts",
            unit="{restart}",
            description="Consumers closed and started again after a fatal error",
        )
        self.batch_duration = meter.create_histogram(
            "canbao.messaging.batch.duration",
            unit="s",
            description="From poll to offsets committed, per batch",
        )
        self.relayed = meter.create_counter(
            "canbao.messaging.outbox.relayed",
            unit="{message}",
            description="Outbox rows published and deleted",
        )
        self._lag_sources: weakref.WeakSet[LagSource] = weakref.WeakSet()
        meter.create_observable_gauge(
            "canbao.messaging.consumer.lag",
            callbacks=[self._observe_lag],
            unit="{message}",
            description="Highwater minus position, per consumer and partition",
        )

    def watch_lag(self, source: LagSource) -> None:
        self._lag_sources.add(source)

    def _observe_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        for source in list(self._lag_sources):
            for (topic, partition), lag in source.lag().items():
                attributes: dict[str, str | int] = {
                    "consumer": source.name,
                    "topic": topic,
                    "partition": partition,
                }
                yield Observation(lag, attributes)


@cache
def runtime_metrics() -> RuntimeMetrics:
    """The process's instruments, created on first use (not at import)."""
    return RuntimeMetrics()


@dataclass
class ConsumerCounts:
    """One runner's counts since it started, mirrored into the process's counters."""

    consumer: str
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retries: int = 0
    restarts: int = 0
    _metrics: RuntimeMetrics = field(default_factory=runtime_metrics, repr=False)

    @property
    def handled(self) -> int:
        """Messages done with, one way or another."""
        return self.processed + self.duplicates + self.dead_lettered

    def batch(self, outcome: BatchOutcome) -> None:
        labels = {"consumer": self.consumer}
        for name in ("processed", "duplicates", "dead_lettered", "retries"):
            n = getattr(outcome, "applied" if name == "processed" else name)
            setattr(self, name, getattr(self, name) + n)
            getattr(self._metrics, name).add(n, labels)

    def retry(self) -> None:
        self.retries += 1
        self._metrics.retries.add(1, {"consumer": self.consumer})

    def restart(self) -> None:
        self.restarts += 1
        self._metrics.restarts.add(1, {"consumer": self.consumer})
