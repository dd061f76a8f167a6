"""The Debezium engine's callback: a batch of Java records in, bytes on Kafka out.

pydbzengine 3.6 calls `handleJsonBatch(records)` on an engine thread and marks every record
processed as soon as it returns (there is no committer to hold back). So it returns only after
the broker acknowledged the whole batch and its source offset, and raises otherwise. A raise
makes pydbzengine log it and interrupt the engine, which then stops without committing the
batch. Because the engine might still hand over another batch before it notices, a handler
that failed once refuses every later batch: no offset past a lost event is ever committed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydbzengine import BasePythonChangeHandler

from canbao_stack.cdc.offsets import OffsetCodec, SourceOffset
from canbao_stack.cdc.publisher import DebeziumRecord

Publish = Callable[[list[DebeziumRecord], SourceOffset | None], None]


class ChangeHandler(BasePythonChangeHandler):
    def __init__(self, publish: Publish, codec: OffsetCodec) -> None:
        self._publish = publish
        self._codec = codec
        self.failure: BaseException | None = None

    def handleJsonBatch(self, records: list[Any]) -> None:  # pydbzengine's (Java-style) name
        if self.failure is not None:
            raise RuntimeError("an earlier batch failed: this one must not count as processed")
        try:
            batch = list(records)
            events = [
                DebeziumRecord(str(r.destination()), _utf8(r.key()), _utf8(r.value()))
                for r in batch
            ]
            # Debezium PostgreSQL has one source partition: the last record's offset covers all.
            offset = self._codec.encode(batch[-1]) if batch else None
            self._publish(events, offset)
        except BaseException as error:
            self.failure = error
            raise


def _utf8(text: Any) -> bytes | None:
    """A Java string from the JSON converter as bytes; Java null (a tombstone) stays None."""
    return None if text is None else str(text).encode()
