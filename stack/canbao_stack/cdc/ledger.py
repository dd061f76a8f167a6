"""The bytes the bridge published to each partition, by offset.

Kafka tells us a consumer group's backlog in messages (end offset − committed offset); the test
broker evicts by bytes. The ledger turns one into the other with what we sent ourselves: after
each acknowledged chunk it records (end offset, cumulative bytes) per partition.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from aiokafka.structs import TopicPartition


@dataclass
class _PartitionMarks:
    offsets: list[int] = field(default_factory=list)  # ascending end offsets
    cumulative: list[int] = field(default_factory=list)  # bytes published before each offset


class PublishedLedger:
    def __init__(self, fallback_record_bytes: int) -> None:
        # Used for messages the ledger has not seen (published before this process started)
        # until our own traffic gives a real average.
        self._fallback = fallback_record_bytes
        self._marks: dict[TopicPartition, _PartitionMarks] = {}
        self.bytes_published: dict[TopicPartition, int] = {}
        self.messages_published: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, first_offset: int, end_offset: int, nbytes: int) -> None:
        """Offsets [first_offset, end_offset) of `tp`, `nbytes` in all, were acknowledged."""
        marks = self._marks.setdefault(tp, _PartitionMarks())
        total = self.bytes_published.get(tp, 0)
        if not marks.offsets:
            marks.offsets.append(first_offset)
            marks.cumulative.append(total)
        total += nbytes
        if end_offset > marks.offsets[-1]:
            marks.offsets.append(end_offset)
            marks.cumulative.append(total)
        else:  # nothing new past the last mark (not expected with one producer): keep bytes
            marks.cumulative[-1] = total
        self.bytes_published[tp] = total
        self.messages_published[tp] = self.messages_published.get(tp, 0) + end_offset - first_offset

    def average_record_bytes(self) -> float:
        messages = sum(self.messages_published.values())
        return sum(self.bytes_published.values()) / messages if messages else self._fallback

    def backlog_bytes(self, tp: TopicPartition, start: int, end: int) -> int:
        """Bytes of offsets [start, end): exact where the ledger knows them, an over-estimate
        between two marks (a half-read chunk counts whole), the average elsewhere."""
        if end <= start:
            return 0
        marks = self._marks.get(tp)
        average = self.average_record_bytes()
        if marks is None or not marks.offsets:
            return int((end - start) * average)
        first, last = marks.offsets[0], marks.offsets[-1]
        unknown = max(0, min(end, first) - start) + max(0, end - max(start, last))
        known_from, known_to = max(start, first), min(end, last)
        known = 0
        if known_to > known_from:
            # The mark at or before `known_from`, and the mark at or after `known_to`.
            lo = bisect.bisect_right(marks.offsets, known_from) - 1
            hi = bisect.bisect_left(marks.offsets, known_to)
            known = marks.cumulative[hi] - marks.cumulative[lo]
        return known + int(unknown * average)

    def forget_before(self, tp: TopicPartition, offset: int) -> None:
        """Drop marks every watched group has read past, keeping the one at or before `offset`."""
        marks = self._marks.get(tp)
        if marks is None:
            return
        keep_from = bisect.bisect_right(marks.offsets, offset) - 1
        if keep_from > 0:
            del marks.offsets[:keep_from]
            del marks.cumulative[:keep_from]
