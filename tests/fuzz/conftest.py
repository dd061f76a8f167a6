"""The fuzzed system (tests/fuzz/system.py), once per module, and the tally of generated requests
that the run prints at its end (`make fuzz-api` reports its figures from it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from canbao_contracts.topics import COLLECTIONS
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster
from tests.fuzz.system import RunningSystem
from tests.fuzz.tally import Tally

# Enough people that every kind of popup exists (deceased, flagged, needing a survey), few enough
# that the system starts in seconds.
PEOPLE = 60
TALLY = Tally()


@pytest.fixture(scope="module")
def fuzzed_system(postgres: PostgresCluster) -> Iterator[RunningSystem]:
    names = iter(range(1, 1_000))

    def make_database() -> str:
        return postgres.create_database(f"fuzz_{os.getpid()}_{next(names)}")

    with MockKafkaCluster(brokers=3) as kafka:
        kafka.create_topics([COLLECTIONS])
        with RunningSystem(make_database, kafka, people=PEOPLE) as system:
            yield system


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TALLY.requests:
        terminalreporter.write_sep("=", "generated requests against the gateway")
        for line in TALLY.report():
            terminalreporter.write_line(line)
