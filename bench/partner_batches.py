"""Partner batches: rows/s a department's batch is taken in at, and memory as it grows.

    uv run --frozen python -m bench.partner_batches [--sizes 10000 100000 1000000]

Everything real and on this machine: a throwaway PostgreSQL (fsync off) with identity's
migrated database, and identity's intake (canbao_identity.partner_batches.receive) in this
process, as the internal route runs it. For each size a CSV of civil affairs' minimum-allowance
recipients (civil.dibao, one row in 50 refused: a wrong check digit) is generated as the body
streams — 64 KiB chunks, never held whole — and taken in: read, checked, the accepted rows
staged for resolution (claims encrypted, numbers blind-indexed), the refused lines written with
their reasons, counts moved, 1,000 rows per transaction. Resolution into golden records is the
builder's and is not timed (bench/identity.py measures it).

Printed per size: seconds, rows/s, CPU µs per row of this process and of PostgreSQL's backends,
and this process's RSS high-water mark during that size (sampled every 0.2 s); then the same
rows only read and checked (no database), the part of the cost that is Python's own. The last
line: `partner batch <N> rows: <T> s, <R> rows/s, peak RSS <M> MiB`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import canbao_identity
from bench.processes import children_of, cpu_seconds, cpu_since, machine_facts, postmaster
from canbao_contracts.id_numbers import check_character
from canbao_contracts.partners import DATASETS, Department
from canbao_identity.app import protector_from
from canbao_identity.partner_batches import MediaType, Reader, Upload, receive
from canbao_identity.settings import IdentitySettings
from canbao_identity.tables import partner_batches
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.postgres import PostgresCluster, free_port

DIBAO = DATASETS[(Department.CIVIL, "dibao")]
CHUNK_BYTES = 64 * 1024
NOW = datetime(2026, 12, 4, tzinfo=UTC)


def row(serial: int) -> str:
    first17 = f"520102{1950 + serial % 50}0101{serial % 1000:03d}"
    number = first17 + check_character(first17)
    if serial % 50 == 0:  # refused: a wrong check digit
        number = first17 + ("0" if number[-1] != "0" else "1")
    day = 1 + serial % 28
    return f"{number},测试{serial},520102,2024-01-{day:02d},\r\n"


async def body(rows: int) -> AsyncIterator[bytes]:
    buffer = ["sfzh,xm,xzqh,ksrq,jsrq\r\n"]
    size = 0
    for serial in range(rows):
        line = row(serial)
        buffer.append(line)
        size += len(line) * 2  # about: Chinese characters take three bytes
        if size >= CHUNK_BYTES:
            yield "".join(buffer).encode()
            buffer, size = [], 0
        if serial % 2000 == 0:
            await asyncio.sleep(0)
    yield "".join(buffer).encode()


def rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096 / 2**20


async def sample_rss(peak: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mib())
        await asyncio.sleep(0.2)


def check_only(rows: int) -> float:
    """Rows/s of reading and checking alone (no database)."""
    reader = Reader(DIBAO, MediaType.CSV, NOW.date())
    reader.read_header(b"sfzh,xm,xzqh,ksrq,jsrq")
    started = time.perf_counter()
    for serial in range(rows):
        reader.row(serial + 2, row(serial).rstrip("\r\n").encode())
    return rows / (time.perf_counter() - started)


async def run(sizes: list[int]) -> None:
    print(machine_facts("this process"))
    settings = IdentitySettings(CANBAO_ENV="test")
    protector = protector_from(settings)
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        await _run(Path(tmp), sizes, protector)


async def _run(tmp: Path, sizes: list[int], protector: Any) -> None:
    with PostgresCluster(tmp / "pg", port=free_port(), durable=False) as postgres:
        url = postgres.create_database("identity")
        await migrate_async(url, Path(canbao_identity.__file__).parent / "migrations")
        database = Database(url, pool_size=2)
        print(
            f"{'rows':>9} {'s':>8} {'rows/s':>8} {'µs/row py':>10} {'µs/row pg':>10} "
            f"{'peak RSS MiB':>13} {'check only rows/s':>18}"
        )
        last = ""
        for size in sizes:
            upload = Upload("bench", f"bench-{size}", DIBAO, MediaType.CSV)
            backends = children_of(postmaster(postgres))
            before = {"pg": cpu_seconds(backends), "py": time.process_time()}
            peak, stop = [rss_mib()], asyncio.Event()
            sampler = asyncio.create_task(sample_rss(peak, stop))
            started = time.perf_counter()
            batch_id, _ = await receive(database, protector, upload, body(size), now=NOW)
            elapsed = time.perf_counter() - started
            stop.set()
            await sampler
            py = time.process_time() - before["py"]
            pg = cpu_since(before["pg"], children_of(postmaster(postgres)))
            async with database.engine.connect() as connection:
                counts = (
                    await connection.execute(
                        sa.select(
                            partner_batches.c.received,
                            partner_batches.c.accepted,
                            partner_batches.c.rejected,
                        ).where(partner_batches.c.batch_id == batch_id)
                    )
                ).one()
            assert counts.received == size == counts.accepted + counts.rejected, counts
            print(
                f"{size:>9} {elapsed:>8.1f} {size / elapsed:>8.0f} {py / size * 1e6:>10.0f} "
                f"{pg / size * 1e6:>10.0f} {peak[0]:>13.0f} "
                f"{check_only(min(size, 100_000)):>18.0f}"
            )
            last = (
                f"partner batch {size} rows: {elapsed:.1f} s, {size / elapsed:.0f} rows/s, "
                f"peak RSS {peak[0]:.0f} MiB"
            )
            async with database.engine.begin() as connection:  # the next size starts empty
                await connection.execute(sa.text("TRUNCATE staged_changes"))
        await database.dispose()
        print(last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    asyncio.run(run(parser.parse_args().sizes))


if __name__ == "__main__":
    main()
