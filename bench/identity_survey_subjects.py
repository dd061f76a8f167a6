"""The household survey's stream (`POST /internal/survey-subjects`): rows/s and the identity
process's memory, by population size.

    uv run --frozen python -m bench.identity_survey_subjects [--sizes 10000 100000]

Everything real and on this machine: a throwaway PostgreSQL (fsync off), the test broker (the
service's producer needs one; nothing is produced), and identity as a service process of its
own (`uvicorn canbao_identity.app:create`, IDENTITY_ROLES=build: its builder idles). For each size
the people are written straight into identity's persons table as the builder writes them, golden
records sealed (tests/identity/households.py: four to a household in four districts of 5201;
not timed with the stream), then this process asks for the whole province (`52`) and for one
district (`520102`, a quarter), each twice, with a platform caller's service token, and reads
the NDJSON line by line without keeping it.

Printed per run: lines, seconds to the first line and to the last, lines/s, and the identity
process's memory (VmRSS before the run, VmHWM after it: the high-water mark since it started);
CPU ms per 1,000 lines of the identity process and of PostgreSQL's backends. The stream holds
one batch (1,000 golden records) at a time: the high-water mark should not grow with the size.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
import time
from pathlib import Path

import httpx

import canbao_identity
from bench.processes import (
    children_of,
    cpu_seconds,
    cpu_since,
    machine_facts,
    memory_kib,
    postmaster,
    service_token,
    start,
    wait_up,
)
from canbao_identity.app import protector_from
from canbao_identity.settings import IdentitySettings
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from tests.identity import households

DIVISIONS = ("52", "520102")
RUNS = 2


async def stream(url: str, region: str) -> tuple[int, float, float]:
    """Lines, seconds to the first, seconds to the last; each line parsed as a reader would."""
    headers = {"Authorization": f"Bearer {service_token('identity')}"}
    lines, first = 0, 0.0
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        started = time.perf_counter()
        async with http.stream(
            "POST", "/internal/survey-subjects", json={"region_code": region}, headers=headers
        ) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line:
                    continue
                if not lines:
                    first = time.perf_counter() - started
                lines += 1
        return lines, first, time.perf_counter() - started


async def measure(
    postgres: PostgresCluster, kafka: MockKafkaCluster, size: int, log_dir: Path
) -> None:
    url = postgres.create_database(f"bench_survey_{size}")
    await migrate_async(url, Path(canbao_identity.__file__).parent / "migrations")
    settings = IdentitySettings(CANBAO_ENV="test", database_url=url)
    database = Database(url)
    started = time.perf_counter()
    population = await households.load(database, protector_from(settings), size)
    loaded = time.perf_counter() - started
    await database.dispose()
    print(
        f"\n{size:,} people loaded in {loaded:.1f} s ({size / loaded:,.0f}/s, not timed "
        f"below); identity process:",
        flush=True,
    )
    env = {
        "CANBAO_ENV": "test",
        "IDENTITY_DATABASE_URL": url,
        "IDENTITY_ROLES": "build",
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
    }
    process, base = start(f"identity-{size}", "canbao_identity.app:create", env, log_dir)
    try:
        await wait_up(base)
        print(
            f"{'division':>8} {'run':>3} {'lines':>8} {'first s':>8} {'total s':>8} "
            f"{'lines/s':>8} {'RSS MiB':>8} {'HWM MiB':>8} {'CPU ms/1k id':>12} "
            f"{'/1k pg':>7}"
        )
        for region in DIVISIONS:
            expected = len(population.expected(region))
            for run in range(1, RUNS + 1):
                backends = children_of(postmaster(postgres))
                before = memory_kib(process.pid)["VmRSS"]
                cpu_before = cpu_seconds([process.pid]), cpu_seconds(backends)
                lines, first, total = await stream(base, region)
                identity_ms = cpu_since(cpu_before[0], [process.pid]) * 1e6 / max(lines, 1)
                backends = children_of(postmaster(postgres))  # and those opened meanwhile
                pg_ms = cpu_since(cpu_before[1], backends) * 1e6 / max(lines, 1)
                peak = memory_kib(process.pid)["VmHWM"]
                assert lines == expected, f"{lines} lines, expected {expected}"
                print(
                    f"{region:>8} {run:>3} {lines:>8,} {first:>8.3f} {total:>8.2f} "
                    f"{lines / total:>8,.0f} {before / 1024:>8.0f} {peak / 1024:>8.0f} "
                    f"{identity_ms:>12.0f} {pg_ms:>7.0f}",
                    flush=True,
                )
    finally:
        process.terminate()
        process.wait(timeout=30)


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-survey-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with (
            PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres,
            MockKafkaCluster(brokers=1) as kafka,
        ):
            print(machine_facts("this process (the reader), identity"), flush=True)
            for size in sizes:
                await measure(postgres, kafka, size, Path(tmp))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nthis process (loader and reader) peak RSS: {own:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    asyncio.run(main(parser.parse_args().sizes))
