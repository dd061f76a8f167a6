"""The test broker keeps ~5 MiB per partition and evicts the oldest (canbao_stack/cdc/limits.py
quotes librdkafka's source). A bulk load ten times larger than that must reach a slow consumer
whole: the bridge waits for the watched group instead of running ahead. Without that wait the
same load loses events — the second test shows the failure the first one guards against."""

from __future__ import annotations

from collections import defaultdict

from aiokafka.structs import TopicPartition

from canbao_stack.cdc.limits import MAX_CHUNK_BYTES, MOCK_PARTITION_MAX_BYTES
from tests.stack.conftest import Cdc, Event

ROWS = 7_000  # read by the snapshot, then updated: 14,000 events of ~4-5 KiB (schemas embedded)
SLOW_CONSUMER_BYTES_PER_S = 12 * 2**20  # a few times slower than the bridge can publish


async def fill_register(cdc: Cdc) -> None:
    """Household records with long addresses; the converter embeds schemas: big events."""
    await cdc.execute(
        "INSERT INTO hukou.person (sfzh, xm, xb, csrq, mz, hjdz_xzqh, hjdz, hh, yhzgx, ryzt) "
        "SELECT 'B' || lpad(g::text, 8, '0'), '居民' || g, '1', date '1960-01-01' + g % 20000, "
        "'01', '520102', '贵州省贵阳市南明区花果园街道' || repeat('某', 30) || g, 'H' || g, '01', "
        "'0' FROM generate_series(1, $1::int) g",
        ROWS,
    )


def ops_by_person(events: list[Event]) -> dict[str, list[str]]:
    ops: dict[str, list[str]] = defaultdict(list)
    for event in events:
        ops[event.row_key["sfzh"]].append(event.op)
    return ops


async def test_a_load_ten_times_the_broker_cap_reaches_a_slow_consumer_whole(cdc: Cdc) -> None:
    cdc.partitions = 1  # every household record through one partition: one 5 MiB log
    await fill_register(cdc)
    bridge = cdc.start_bridge("--embed-schemas")
    async with cdc.reader(bytes_per_s=SLOW_CONSUMER_BYTES_PER_S) as reader:
        await reader.wait_for(lambda events: len(events) >= ROWS, within=90, bridge=bridge)
        await cdc.execute("UPDATE hukou.person SET ryzt = '2', zxrq = date '2025-01-01'")
        events = await reader.wait_for(lambda e: len(e) >= 2 * ROWS, within=90, bridge=bridge)
        log_start = (await reader.log_starts())[TopicPartition(cdc.topic("hukou", "person"), 0)]
    assert bridge.terminate() == 0
    backpressure = bridge.status()["backpressure"]

    published = sum(event.size for event in events)
    print(
        f"\n{len(events):,} events, {published / 2**20:.1f} MiB through one partition; the "
        f"broker kept only offsets {log_start:,}..; largest unread backlog "
        f"{backpressure['max_backlog']['bytes'] / 2**20:.2f} MiB; the bridge waited "
        f"{backpressure['blocked_s']} s in {backpressure['waits']} waits"
    )
    assert published > 10 * MOCK_PARTITION_MAX_BYTES
    assert log_start > 0  # the broker did evict: only what the consumer had read
    # Nothing evicted unread: the consumer saw every offset, each person's events in order.
    assert [e.offset for e in events] == list(range(len(events)))
    assert all(ops == ["r", "u"] for ops in ops_by_person(events).values())
    assert len(ops_by_person(events)) == ROWS
    assert backpressure["evicted_unread"] == 0
    # …because the bridge waited, keeping the backlog below the limit (plus one chunk).
    assert backpressure["waits"] >= 1 and backpressure["blocked_s"] > 0
    assert backpressure["max_backlog"]["bytes"] <= backpressure["limit_bytes"] + MAX_CHUNK_BYTES
    assert backpressure["max_backlog"]["bytes"] < MOCK_PARTITION_MAX_BYTES
    # The converter embedded the schemas (the other shape of sources.md): unchanged on Kafka.
    first = events[0]
    assert first.value is not None and set(first.value) == {"schema", "payload"}
    assert set(first.key) == {"schema", "payload"} and first.op == "r"


async def test_without_backpressure_the_same_load_loses_events(cdc: Cdc) -> None:
    cdc.partitions = 1
    await fill_register(cdc)
    bridge = cdc.start_bridge("--embed-schemas", "--no-backpressure")
    async with cdc.reader(bytes_per_s=SLOW_CONSUMER_BYTES_PER_S) as reader:
        await reader.wait_for(lambda events: bool(events), within=90, bridge=bridge)
        await cdc.execute("UPDATE hukou.person SET ryzt = '2', zxrq = date '2025-01-01'")
        # Until the consumer has caught up with the last of the 14,000 events.
        await reader.wait_for(
            lambda events: bool(events) and events[-1].offset == 2 * ROWS - 1,
            within=90,
            bridge=bridge,
        )
    assert bridge.terminate() == 0

    events = reader.events
    lost = 2 * ROWS - len(events)
    print(f"\nwithout backpressure the slow consumer missed {lost:,} of {2 * ROWS:,} events")
    assert lost > 0
    assert [e.offset for e in events] != list(range(len(events)))  # it jumped over evicted ones
