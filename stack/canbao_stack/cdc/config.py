"""What the bridge needs to know, read once from arguments and environment.

The local stack starts the bridge as `python -m canbao_stack.cdc` and passes everything as
arguments or `CANBAO_CDC_*` variables; secrets (a password in the source DSN) belong in the
environment, where `ps` does not show them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from canbao_stack.cdc.limits import DEFAULT_MAX_BACKLOG_BYTES, DEFAULT_MAX_BACKLOG_MESSAGES
from canbao_stack.simulators import TABLES

DEFAULT_SOURCE_DSN = "postgresql://canbao@127.0.0.1:54320/sources"


@dataclass(frozen=True)
class SourceDatabase:
    """The simulators' PostgreSQL database (shared/sources.md), as Debezium connects to it."""

    host: str = "127.0.0.1"
    port: int = 54320
    user: str = "canbao"
    password: str = ""  # none on loopback (trust authentication)
    dbname: str = "sources"

    @classmethod
    def from_dsn(cls, dsn: str) -> SourceDatabase:
        parts = urlsplit(dsn)
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise ValueError("source DSN must look like postgresql://user@host:port/dbname")
        return cls(
            host=parts.hostname,
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            dbname=parts.path.lstrip("/") or "sources",
        )


@dataclass(frozen=True)
class BridgeConfig:
    bootstrap_servers: str
    source: SourceDatabase = field(default_factory=SourceDatabase)
    topic_prefix: str = "cdc"  # topic = <prefix>.<schema>.<table>
    # The source offsets live in Kafka next to the events (see offsets.py).
    offsets_topic: str = "canbao-cdc-offsets"
    # Debezium's offset namespace: the first element of each offset record's key.
    engine_name: str = "canbao-cdc"
    slot_name: str = "canbao_cdc"
    publication_name: str = "canbao_cdc"
    tables: tuple[tuple[str, str], ...] = TABLES
    # JSON converter: bare envelope by default; {"schema":…, "payload":…} when True.
    embed_schemas: bool = False
    # Lag-aware backpressure (limits.py explains the numbers).
    backpressure: bool = True
    watched_groups: tuple[str, ...] = ("identity",)
    max_backlog_bytes: int = DEFAULT_MAX_BACKLOG_BYTES
    max_backlog_messages: int = DEFAULT_MAX_BACKLOG_MESSAGES
    backpressure_poll_s: float = 0.2
    progress_interval_s: float = 10.0
    status_file: Path | None = None
    # Anything else for Debezium (e.g. heartbeat.action.query), applied last.
    extra_properties: Mapping[str, str] = field(default_factory=dict)

    def topic_for(self, schema: str, table: str) -> str:
        return f"{self.topic_prefix}.{schema}.{table}"

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self.topic_for(schema, table) for schema, table in self.tables)


def parse_args(
    argv: Sequence[str] | None = None, env: Mapping[str, str] = os.environ
) -> BridgeConfig:
    """Arguments win over `CANBAO_CDC_*` variables, which win over the defaults."""
    defaults = BridgeConfig(bootstrap_servers="")
    parser = argparse.ArgumentParser(
        prog="python -m canbao_stack.cdc",
        description="Debezium CDC bridge: the simulators' `sources` database → Kafka cdc.* topics",
    )
    arg = parser.add_argument
    arg(
        "--source-dsn",
        default=env.get("CANBAO_CDC_SOURCE_DSN", DEFAULT_SOURCE_DSN),
        help="postgresql://user[:password]@host:port/dbname (password: prefer the env var)",
    )
    arg("--bootstrap-servers", default=env.get("KAFKA_BOOTSTRAP_SERVERS"), help="Kafka")
    arg(
        "--topic-prefix",
        default=env.get("CANBAO_CDC_TOPIC_PREFIX", defaults.topic_prefix),
        help="topics are <prefix>.<schema>.<table>",
    )
    arg(
        "--offsets-topic",
        default=env.get("CANBAO_CDC_OFFSETS_TOPIC", defaults.offsets_topic),
        help="where the source offsets are kept (Kafka Connect's format)",
    )
    arg("--engine-name", default=env.get("CANBAO_CDC_ENGINE_NAME", defaults.engine_name))
    arg("--slot", default=env.get("CANBAO_CDC_SLOT", defaults.slot_name), help="replication slot")
    arg("--publication", default=env.get("CANBAO_CDC_PUBLICATION", defaults.publication_name))
    arg(
        "--embed-schemas",
        action=argparse.BooleanOptionalAction,
        default=_flag(env.get("CANBAO_CDC_EMBED_SCHEMAS"), defaults.embed_schemas),
    )
    arg(
        "--backpressure",
        action=argparse.BooleanOptionalAction,
        default=_flag(env.get("CANBAO_CDC_BACKPRESSURE"), defaults.backpressure),
        help="wait for the watched consumer groups (turn off only on a real Kafka)",
    )
    arg(
        "--watch-groups",
        default=env.get("CANBAO_CDC_WATCH_GROUPS", ",".join(defaults.watched_groups)),
        help="comma-separated consumer groups whose lag limits the bridge",
    )
    arg(
        "--max-backlog-bytes",
        type=int,
        default=int(env.get("CANBAO_CDC_MAX_BACKLOG_BYTES", defaults.max_backlog_bytes)),
    )
    arg(
        "--max-backlog-messages",
        type=int,
        default=int(env.get("CANBAO_CDC_MAX_BACKLOG_MESSAGES", defaults.max_backlog_messages)),
    )
    arg(
        "--progress-interval",
        type=float,
        default=float(env.get("CANBAO_CDC_PROGRESS_INTERVAL", defaults.progress_interval_s)),
    )
    arg("--status-file", type=Path, default=env.get("CANBAO_CDC_STATUS_FILE"))
    arg(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra Debezium property (repeatable)",
    )
    args = parser.parse_args(argv)
    if not args.bootstrap_servers:
        parser.error("no Kafka: pass --bootstrap-servers or set KAFKA_BOOTSTRAP_SERVERS")
    groups = tuple(g.strip() for g in args.watch_groups.split(",") if g.strip())
    if args.backpressure and not groups:
        parser.error("backpressure needs at least one consumer group to watch (--watch-groups)")
    return BridgeConfig(
        bootstrap_servers=args.bootstrap_servers,
        source=SourceDatabase.from_dsn(args.source_dsn),
        topic_prefix=args.topic_prefix,
        offsets_topic=args.offsets_topic,
        engine_name=args.engine_name,
        slot_name=args.slot,
        publication_name=args.publication,
        embed_schemas=args.embed_schemas,
        backpressure=args.backpressure,
        watched_groups=groups,
        max_backlog_bytes=args.max_backlog_bytes,
        max_backlog_messages=args.max_backlog_messages,
        progress_interval_s=args.progress_interval,
        status_file=args.status_file,
        extra_properties=dict(_key_value(p, parser) for p in args.property),
    )


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def _key_value(text: str, parser: argparse.ArgumentParser) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        parser.error(f"--property expects KEY=VALUE, got {text!r}")
    return key.strip(), value
