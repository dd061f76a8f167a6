"""The test broker's per-partition log limit, and the backlog we allow below it.

librdkafka's mock cluster (the Kafka-protocol test broker, platform/canbao_platform/local/
broker.py) keeps a bounded log per partition. From librdkafka's src/rdkafka_mock.c (v2.15, the
line is unchanged since the mock was added in 2019):

    rd_kafka_mock_partition_init():
        mpart->max_size = 1024 * 1024 * 5;
        mpart->max_cnt  = 100000;

    rd_kafka_mock_msgset_new(), after appending a produced message set:
        /* Remove old msgsets until within limits */
        while (mpart->cnt > 1 &&
               (mpart->cnt > mpart->max_cnt || mpart->size > mpart->max_size))
                rd_kafka_mock_msgset_destroy(mpart, TAILQ_FIRST(&mpart->msgsets));

`size` adds up the produced record batches as sent (`mset->bytes.len`: batch header, record
overheads, keys and values), `cnt` counts batches. The oldest batches are dropped whatever
the consumer groups have read: a consumer that falls 5 MiB behind gets OFFSET_OUT_OF_RANGE and
silently jumps ahead. A real Kafka keeps its retention instead, which is why the limit below
can be switched off there.
"""

MOCK_PARTITION_MAX_BYTES = 5 * 1024 * 1024
MOCK_PARTITION_MAX_MESSAGE_SETS = 100_000

# Block while a watched group's unread backlog on any partition exceeds half the cap. The other
# half is headroom for what is published between two checks (one chunk, below) and for our
# byte estimate being a little off. Counting messages bounds batches too: a batch holds ≥ 1.
DEFAULT_MAX_BACKLOG_BYTES = MOCK_PARTITION_MAX_BYTES // 2
DEFAULT_MAX_BACKLOG_MESSAGES = MOCK_PARTITION_MAX_MESSAGE_SETS // 2

# A Debezium batch (up to 2,048 events, ~4 KiB each with embedded schemas: 8 MiB) is published
# in chunks no larger than this, each one admitted by the backlog check before it is sent.
MAX_CHUNK_BYTES = 512 * 1024

# Upper bound of the bytes a record adds to the broker's log beyond its key and value: the
# v2 record's varint header (≤ 21 B) plus the batch header (61 B) if the batch holds just it.
RECORD_OVERHEAD_BYTES = 82
