"""Loading chunks of a population into the database. A loader owns one connection and one
transaction; it generates its next chunk in a thread while the event loop copies the current one
(PostgreSQL parses rows on another core meanwhile).

A population is loaded by one loader in the caller's process, or by LANES loaders in worker
processes, each taking the chunks of one lane (households.LANES): the rows are the same either
way. A worker process reports each chunk, then waits for the verdict (commit or abort) so that
the population is committed only when every loader has succeeded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import Connection
from typing import Any

import asyncpg

from canbao_stack.simulators.chunk import CHUNK_SIZE, Chunk, generate
from canbao_stack.simulators.households import LANES
from canbao_stack.simulators.model import WORLD_DATE
from canbao_stack.simulators.rates import Rates
from canbao_stack.simulators.rows import COLUMNS, unit_row
from canbao_stack.simulators.store import EXPECTED_COLUMNS, copy_rows
from canbao_stack.simulators.units import make_units


@dataclass(frozen=True, slots=True)
class Plan:
    """What every loader of one population needs to know."""

    dsn: str
    seed: int
    people: int
    rates: Rates
    as_of: date
    loaders: int  # 1 or LANES
    numbers_in_use: frozenset[str]  # first 17 characters of numbers already in the database

    def chunks(self, loader: int) -> list[int]:
        """The chunks of `loader`: those of its lanes."""
        count = -(-self.people // CHUNK_SIZE)
        return [n for n in range(count) if n % LANES % self.loaders == loader]


def empty_counts() -> dict[str, int]:
    counts = {f"{schema}.{table}": 0 for schema, table in COLUMNS}
    counts["simulator.expected_outcome"] = 0
    return counts


async def load(
    connection: asyncpg.Connection, plan: Plan, loader: int, on_chunk: Callable[[int], None]
) -> dict[str, int]:
    """COPY the loader's chunks (loader 0: and the units) in the caller's transaction; call
    `on_chunk(people)` after each. Returns the rows written per table."""
    units = await asyncio.to_thread(make_units, plan.seed, plan.people)
    used = set(plan.numbers_in_use)
    counts = empty_counts()
    if loader == 0:
        rows = [unit_row(unit) for unit in units.all]
        await copy_rows(connection, "si_core", "ab01", COLUMNS["si_core", "ab01"], rows)
        counts["si_core.ab01"] = len(rows)

    def make(number: int) -> asyncio.Task[Chunk]:
        return asyncio.create_task(
            asyncio.to_thread(
                generate, plan.seed, number, plan.people, units, used, plan.rates, plan.as_of
            )
        )

    numbers = plan.chunks(loader)
    pending = make(numbers[0]) if numbers else None
    for position in range(len(numbers)):
        assert pending is not None
        chunk = await pending
        if position + 1 < len(numbers):
            pending = make(numbers[position + 1])  # generated while this chunk is copied
        await _copy_chunk(connection, chunk, counts)
        on_chunk(chunk.people)
    return counts


async def record_population(
    connection: asyncpg.Connection, plan: Plan, counts: dict[str, int], people_per_second: float
) -> None:
    await connection.execute(
        "INSERT INTO simulator.population (seed, people, world_date, as_of, rates, row_counts, "
        "people_per_second) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        plan.seed,
        plan.people,
        WORLD_DATE,
        plan.as_of,
        json.dumps(plan.rates.as_dict()),
        json.dumps(counts),
        people_per_second,
    )


async def _copy_chunk(connection: asyncpg.Connection, chunk: Chunk, counts: dict[str, int]) -> None:
    for (schema, table), rows in chunk.rows.items():
        await copy_rows(connection, schema, table, COLUMNS[schema, table], rows)
        counts[f"{schema}.{table}"] += len(rows)
    await copy_rows(connection, "simulator", "expected_outcome", EXPECTED_COLUMNS, chunk.expected)
    counts["simulator.expected_outcome"] += len(chunk.expected)


# -- In a worker process --------------------------------------------------------------------------
# `python -m canbao_stack.simulators.loader FD`: FD is the worker's end of a socket pair. First
# message from the parent: ("plan", plan, loader). To the parent: ("chunk", people),
# ("ready", counts), ("committed", None), ("failed", traceback text). Then from the parent:
# ("commit", population row or None) or ("abort", None).


def main(argv: list[str] | None = None) -> None:
    fd = int((argv or sys.argv[1:])[0])
    pipe = Connection(socket.socket(fileno=fd).detach())
    try:
        _, plan, loader = pipe.recv()
        asyncio.run(_loader_process(plan, loader, pipe))
    except BaseException:
        with contextlib.suppress(OSError):
            pipe.send(("failed", traceback.format_exc()))
        raise
    finally:
        pipe.close()


async def _loader_process(plan: Plan, loader: int, pipe: Connection) -> None:
    connection = await asyncpg.connect(plan.dsn)
    try:
        transaction = connection.transaction()
        await transaction.start()
        try:
            counts = await load(
                connection, plan, loader, lambda people: pipe.send(("chunk", people))
            )
            pipe.send(("ready", counts))
            verdict: tuple[str, Any] = await asyncio.to_thread(pipe.recv)
        except BaseException:
            await transaction.rollback()
            raise
        if verdict[0] != "commit":
            await transaction.rollback()
            return
        if verdict[1] is not None:  # the loader that records the population
            all_counts, people_per_second = verdict[1]
            await record_population(connection, plan, all_counts, people_per_second)
        await transaction.commit()
        pipe.send(("committed", None))
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
