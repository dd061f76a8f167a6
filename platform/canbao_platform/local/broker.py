"""The local Kafka-protocol test broker: librdkafka's mock cluster.

The `confluent-kafka` wheel ships librdkafka, whose mock cluster speaks the Kafka protocol on
loopback TCP. We drive it through ctypes (confluent-kafka's Python API does not expose it) and
talk to it with aiokafka like to any Kafka: nothing else in the project knows it is a mock.

Known limits (librdkafka's rdkafka_mock.c): the cluster lives inside the process that created
it, and each partition keeps a bounded log (~5 MiB / 100,000 message sets), evicting the oldest.
"""

from __future__ import annotations

import ctypes
import glob
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import confluent_kafka

if TYPE_CHECKING:
    from canbao_contracts.topics import Topic

_RD_KAFKA_PRODUCER = 0


def _load_librdkafka() -> ctypes.CDLL:
    libs_dir = Path(confluent_kafka.__file__).parent.parent / "confluent_kafka.libs"
    candidates = sorted(glob.glob(str(libs_dir / "librdkafka*.so*")))
    if not candidates:
        raise RuntimeError(f"librdkafka not found next to confluent_kafka in {libs_dir}")
    lib = ctypes.CDLL(candidates[0])
    lib.rd_kafka_conf_new.restype = ctypes.c_void_p
    lib.rd_kafka_conf_set.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
    ]
    lib.rd_kafka_new.restype = ctypes.c_void_p
    lib.rd_kafka_new.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
    lib.rd_kafka_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_new.restype = ctypes.c_void_p
    lib.rd_kafka_mock_cluster_new.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.rd_kafka_mock_cluster_destroy.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_cluster_bootstraps.restype = ctypes.c_char_p
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [ctypes.c_void_p]
    lib.rd_kafka_mock_topic_create.restype = ctypes.c_int
    lib.rd_kafka_mock_topic_create.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_int,
    ]
    for name in ("rd_kafka_mock_broker_set_down", "rd_kafka_mock_broker_set_up"):
        getattr(lib, name).restype = ctypes.c_int
        getattr(lib, name).argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [ctypes.c_void_p, ctypes.c_int32]
    lib.rd_kafka_err2str.restype = ctypes.c_char_p
    lib.rd_kafka_err2str.argtypes = [ctypes.c_int]
    return lib


class MockKafkaCluster:
    """A Kafka-protocol cluster of `brokers` brokers on loopback, alive until `close()`.

    Broker ids are 1..brokers. Use as a context manager or call `close()`.
    """

    def __init__(self, brokers: int = 3, *, initial_rebalance_delay_ms: int = 0) -> None:
        self._lib = _load_librdkafka()
        errstr = ctypes.create_string_buffer(512)
        conf = self._lib.rd_kafka_conf_new()
        # The handle only hosts the mock cluster; keep it quiet and off the network.
        for key, value in (("client.id", "canbao-mock-cluster"), ("log_level", "0")):
            self._lib.rd_kafka_conf_set(conf, key.encode(), value.encode(), errstr, len(errstr))
        self._rk = self._lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
        if not self._rk:
            raise RuntimeError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._rk, brokers)
        if not self._cluster:
            self._lib.rd_kafka_destroy(self._rk)
            raise RuntimeError("rd_kafka_mock_cluster_new failed")
        # The mock's default 3 s initial rebalance delay only slows every consumer start.
        self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(
            self._cluster, initial_rebalance_delay_ms
        )
        self.brokers = brokers
        self.bootstrap_servers: str = self._lib.rd_kafka_mock_cluster_bootstraps(
            self._cluster
        ).decode()

    def create_topic(self, name: str, partitions: int, replication_factor: int = 1) -> None:
        err = self._lib.rd_kafka_mock_topic_create(
            self._cluster, name.encode(), partitions, min(replication_factor, self.brokers)
        )
        self._check(err, f"create topic {name}")

    def create_topics(self, topics: Iterable[Topic]) -> None:
        for topic in topics:
            self.create_topic(topic.name, topic.partitions)

    def set_broker_down(self, broker_id: int) -> None:
        """Close the broker's connections and refuse new ones (an outage)."""
        self._check(self._lib.rd_kafka_mock_broker_set_down(self._cluster, broker_id), "set down")

    def set_broker_up(self, broker_id: int) -> None:
        self._check(self._lib.rd_kafka_mock_broker_set_up(self._cluster, broker_id), "set up")

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._rk:
            self._lib.rd_kafka_destroy(self._rk)
            self._rk = None

    def __enter__(self) -> MockKafkaCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check(self, err: int, what: str) -> None:
        if err != 0:
            raise RuntimeError(f"mock cluster: {what}: {self._lib.rd_kafka_err2str(err).decode()}")
