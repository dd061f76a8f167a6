"""Which partitions exist, asked without creating anything.

The test broker auto-creates (with 4 partitions) any topic a Metadata request names, so asking
about one topic would create it. Asking for all topics (a Metadata request with no list) does
not; we filter here.
"""

from __future__ import annotations

from collections.abc import Iterable

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import TopicPartition


async def existing_partitions(
    admin: AIOKafkaAdminClient, topics: Iterable[str]
) -> list[TopicPartition]:
    wanted = set(topics)
    found = []
    for topic in await admin.describe_topics():  # all topics: creates none
        if topic["topic"] in wanted and topic["error_code"] == 0:
            found += [TopicPartition(topic["topic"], p["partition"]) for p in topic["partitions"]]
    return sorted(found)
