"""Identity's OpenTelemetry instruments: the golden-record builder's backlog (changes staged
but not yet resolved, the age of the oldest, persons waiting for a rebuild and of those the ones
settling after a snapshot's reads, persons set aside),
observable gauges read from the live builders at each collection — as the messaging runtime
reports consumer lag (canbao_platform.messaging.metrics). Consumer lag says the consumers keep
up; this says the builder behind them does.

Instruments come from the global meter provider through the API's proxy, so they work whether
telemetry was set up before or after this module was imported (and cost nothing if never).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from typing import Protocol

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation


@dataclass(frozen=True)
class Backlog:
    staged: int  # changes consumed, not yet resolved
    oldest_staged_age_s: float  # 0 when nothing is staged
    pending_persons: int  # persons whose records changed, not yet rebuilt
    set_aside_persons: int  # persons whose rebuild failed for a reason that is not transient
    settling_persons: int  # of the pending: waiting for the rest of a snapshot


class BacklogSource(Protocol):
    name: str

    def backlog(self) -> Backlog | None: ...


class IdentityMetrics:
    def __init__(self) -> None:
        meter = metrics.get_meter("canbao.identity")
        self._sources: weakref.WeakSet[BacklogSource] = weakref.WeakSet()
        for name, unit, description, value in (
            (
                "canbao.identity.staged",
                "{change}",
                "Changes consumed and staged, not yet resolved",
                lambda b: b.staged,
            ),
            (
                "canbao.identity.staged.oldest_age",
                "s",
                "Age of the oldest staged change (0 when none)",
                lambda b: b.oldest_staged_age_s,
            ),
            (
                "canbao.identity.pending_persons",
                "{person}",
                "Persons whose records changed, golden record not yet rebuilt",
                lambda b: b.pending_persons,
            ),
            (
                "canbao.identity.settling_persons",
                "{person}",
                "Of the pending persons, those a snapshot read, waiting for the rest of it",
                lambda b: b.settling_persons,
            ),
            (
                "canbao.identity.set_aside_persons",
                "{person}",
                "Persons set aside: their rebuild failed for a reason that is not transient",
                lambda b: b.set_aside_persons,
            ),
        ):
            meter.create_observable_gauge(
                name, callbacks=[self._observer(value)], unit=unit, description=description
            )

    def watch(self, source: BacklogSource) -> None:
        self._sources.add(source)

    def _observer(
        self, value: Callable[[Backlog], float]
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for source in list(self._sources):
                if (backlog := source.backlog()) is not None:
                    yield Observation(value(backlog), {"builder": source.name})

        return observe


@cache
def identity_metrics() -> IdentityMetrics:
    """The process's instruments, created on first use (not at import)."""
    return IdentityMetrics()
