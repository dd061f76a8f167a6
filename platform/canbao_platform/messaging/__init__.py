"""The messaging runtime: the one way a canbao service consumes and produces Kafka messages.

* `ConsumerRunner` — a supervised consumer group calling `handler(message, uow)`; each message
  applied once (idempotency record in the effect's transaction), offsets committed after the
  database, poison messages to the dead-letter topic, transient failures retried.
* `Producer` — the idempotent producer (acks=all); `UnitOfWork.publish*` + `OutboxRelay` — the
  transactional outbox, for publishing what a database change announces.
* `replay_dead_letters` — bring dead letters back once their cause is fixed.

Module by module: messages (what a handler sees), batch (one batch, one transaction), consumer
(the runner: loop and supervision), group (one consumer-group membership), producer, outbox,
dead_letters (sending them), replay (bringing them back), failures (what an error means),
tables (the runtime's tables), metrics (OpenTelemetry instruments and per-runner counts).
"""

from canbao_platform.messaging.consumer import ConsumerRunner, RunnerConfig
from canbao_platform.messaging.dead_letters import (
    DLQ_CONSUMER,
    DLQ_FAILED_AT,
    DLQ_ORIGINAL_OFFSET,
    DLQ_ORIGINAL_PARTITION,
    DLQ_ORIGINAL_TOPIC,
    DLQ_REASON,
    DLQ_REPLAYED_FROM,
)
from canbao_platform.messaging.failures import Backoff, PermanentError, TransientError
from canbao_platform.messaging.messages import (
    BulkWrite,
    Handler,
    InboundMessage,
    UnitOfWork,
    savepoint,
    unit_of_work,
)
from canbao_platform.messaging.outbox import OutboxRelay
from canbao_platform.messaging.producer import Producer
from canbao_platform.messaging.pruning import ProcessedMessagesPruner
from canbao_platform.messaging.replay import ReplayFilter, ReplayReport, replay_dead_letters
from canbao_platform.messaging.tables import prune_processed_messages

__all__ = [
    "DLQ_CONSUMER",
    "DLQ_FAILED_AT",
    "DLQ_ORIGINAL_OFFSET",
    "DLQ_ORIGINAL_PARTITION",
    "DLQ_ORIGINAL_TOPIC",
    "DLQ_REASON",
    "DLQ_REPLAYED_FROM",
    "Backoff",
    "BulkWrite",
    "ConsumerRunner",
    "Handler",
    "InboundMessage",
    "OutboxRelay",
    "PermanentError",
    "ProcessedMessagesPruner",
    "Producer",
    "ReplayFilter",
    "ReplayReport",
    "RunnerConfig",
    "TransientError",
    "UnitOfWork",
    "prune_processed_messages",
    "replay_dead_letters",
    "savepoint",
    "unit_of_work",
]
