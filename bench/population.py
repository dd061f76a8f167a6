"""Population generator throughput: people/s and rows/s written into `sources`, by size and by
number of loader processes.

    uv run --frozen python -m bench.population [--sizes 10000 100000 1000000]

Each size is loaded into a fresh database of one throwaway PostgreSQL cluster (durable: fsync on,
as the local stack's cluster), once with one loader (this process) and once with two worker
processes when the size allows it. Time is the whole `seed()` call: generation, COPY into all
source tables and the expected outcomes, and the commit. Peak RSS is this process's and its
children's (the loaders), read from getrusage.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import tempfile
from pathlib import Path

from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_stack.simulators.population import PARALLEL_FROM, seed


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


async def main(sizes: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        with PostgresCluster(Path(tmp) / "pg", port=free_port()) as postgres:
            print(
                f"{'people':>10} {'loaders':>8} {'seconds':>8} {'people/s':>10} "
                f"{'rows':>11} {'rows/s':>10} {'peak RSS':>9}"
            )
            for size in sizes:
                for loaders in (1, 2) if size >= PARALLEL_FROM else (1,):
                    url = postgres.create_database(f"bench_{size}_{loaders}")
                    report = await seed(url, size, 1, loaders=loaders)
                    print(
                        f"{size:>10,} {loaders:>8} {report.seconds:>8.1f} "
                        f"{report.people_per_second:>10,.0f} {report.total_rows:>11,} "
                        f"{report.rows_per_second:>10,.0f} {_peak_rss_mib():>6.0f} MiB",
                        flush=True,
                    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="people/s written by the population generator")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    asyncio.run(main(parser.parse_args().sizes))
