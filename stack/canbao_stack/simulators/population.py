"""The synthetic population generator: `seed(dsn, people, seed)` writes a population of Guizhou
into the `sources` database with COPY, and its expected registry outcomes into
`simulator.expected_outcome` (`load_expected` reads them back).

A population is reproducible: the same seed and size give the same rows, byte for byte, in a
fresh database (bigserial ids and `updated_at` aside), whatever the number of loaders. Its keys
are namespaced by the seed, so populations of different seeds can be appended to one database;
a seed loads once. A population is committed only when all of it is written: a failed load
leaves nothing behind and can be retried.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from multiprocessing.connection import Connection, wait
from typing import Any

import asyncpg

from canbao_stack.simulators.chunk import CHUNK_SIZE
from canbao_stack.simulators.households import LANES
from canbao_stack.simulators.loader import Plan, empty_counts, load, record_population
from canbao_stack.simulators.model import WORLD_DATE
from canbao_stack.simulators.rates import Rates
from canbao_stack.simulators.store import ensure_schema, load_expected, numbers_in_use

__all__ = ["MAX_SEED", "PopulationExists", "Rates", "SeedReport", "load_expected", "seed"]

MAX_SEED = 99_999  # the seed is the five-digit namespace of the population's keys
# Below this size the worker processes' start-up costs more than they save.
PARALLEL_FROM = 2 * CHUNK_SIZE
Progress = Callable[[int, int], None]  # (people loaded so far, people in all)


class PopulationExists(ValueError):
    """The seed's population is already in the database (its keys would collide)."""


class LoadFailed(RuntimeError):
    """A loader process failed; nothing of the population was committed."""


@dataclass(frozen=True, slots=True)
class SeedReport:
    seed: int
    people: int
    seconds: float
    rows: dict[str, int]  # "schema.table" → rows written
    loaders: int

    @property
    def people_per_second(self) -> float:
        return self.people / self.seconds if self.seconds else 0.0

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.seconds if self.seconds else 0.0


async def seed(
    dsn: str,
    people: int,
    seed: int,
    *,
    progress: Progress | None = None,
    rates: Rates | None = None,
    as_of: date | None = None,
    loaders: int | None = None,
) -> SeedReport:
    """Generate `people` people from `seed` into the `sources` database at `dsn` (a libpq URL,
    `postgresql://…`). Expected outcomes are as of `as_of` (default: today). `loaders`: 1 (in
    this process) or 2 (worker processes); by default 2 for large populations on 2+ cores."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"the seed must be within 0..{MAX_SEED}, not {seed}")
    if people < 1:
        raise ValueError(f"a population needs at least one person, not {people}")
    if loaders is None:
        loaders = LANES if people >= PARALLEL_FROM and (os.cpu_count() or 1) > 1 else 1
    if loaders not in (1, LANES):
        raise ValueError(f"loaders must be 1 or {LANES}, not {loaders}")
    started = time.perf_counter()
    dsn = dsn.replace("postgresql+asyncpg://", "postgresql://")
    connection = await asyncpg.connect(dsn)
    try:
        await ensure_schema(connection)
        # Held until the end: two loads of one seed at the same time would both pass the check.
        await connection.execute("SELECT pg_advisory_lock(hashtext('canbao-seed'), $1)", seed)
        if await connection.fetchval("SELECT 1 FROM simulator.population WHERE seed = $1", seed):
            raise PopulationExists(f"the population of seed {seed} is already loaded")
        plan = Plan(
            dsn,
            seed,
            people,
            rates or Rates(),
            as_of or max(date.today(), WORLD_DATE),
            loaders,
            frozenset(await numbers_in_use(connection)),
        )
        done = 0

        def on_chunk(count: int) -> None:
            nonlocal done
            done += count
            if progress is not None:
                progress(done, people)

        if loaders == 1:
            async with connection.transaction():
                counts = await load(connection, plan, 0, on_chunk)
                await record_population(connection, plan, counts, _rate(people, started))
        else:
            counts = await _load_in_processes(plan, on_chunk, started)
    finally:
        await connection.close()
    return SeedReport(seed, people, time.perf_counter() - started, counts, loaders)


async def _load_in_processes(
    plan: Plan, on_chunk: Callable[[int], None], started: float
) -> dict[str, int]:
    """One worker process per lane; commit when all are ready (loader 0, which records the
    population, last: if a commit fails, a retry then meets the committed rows, not silence)."""
    pipes: list[Connection] = []
    processes: list[asyncio.subprocess.Process] = []
    committed = False
    try:
        for loader in range(plan.loaders):
            ours, theirs = socket.socketpair()
            fd = theirs.fileno()
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "canbao_stack.simulators.loader", str(fd), pass_fds=[fd]
                )
            )
            theirs.close()
            pipes.append(Connection(ours.detach()))
            pipes[-1].send(("plan", plan, loader))
        counts = empty_counts()
        ready: set[int] = set()
        while len(ready) < plan.loaders:
            for loader, (kind, value) in await asyncio.to_thread(_receive, pipes):
                if kind == "chunk":
                    on_chunk(value)
                elif kind == "ready":
                    ready.add(loader)
                    for table, rows in value.items():
                        counts[table] += rows
                else:
                    raise LoadFailed(f"loader {loader} failed; nothing was committed:\n{value}")
        for loader in [*range(1, plan.loaders), 0]:
            row = (counts, _rate(plan.people, started)) if loader == 0 else None
            pipes[loader].send(("commit", row))
            [(_, (kind, value))] = await asyncio.to_thread(_receive, [pipes[loader]])
            if kind != "committed":
                raise LoadFailed(f"loader {loader} could not commit:\n{value}")
        committed = True
        return counts
    finally:
        for process in processes:
            if not committed:
                process.kill()  # its connection closes: its transaction rolls back
            await process.wait()
        for pipe in pipes:
            pipe.close()


def _receive(pipes: list[Connection]) -> list[tuple[int, tuple[str, Any]]]:
    """The next messages of any loader; a loader that died without a word has failed."""
    messages = []
    for pipe in wait(pipes):
        assert isinstance(pipe, Connection)
        loader = pipes.index(pipe)
        try:
            messages.append((loader, pipe.recv()))
        except EOFError:
            messages.append((loader, ("failed", "the loader process exited")))
    return messages


def _rate(people: int, started: float) -> float:
    return people / (time.perf_counter() - started)
