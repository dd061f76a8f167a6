"""The counter popup's latency and throughput (goal: ≤ 20 ms p99 at counter load), next to a
bare FastAPI endpoint doing one indexed PostgreSQL lookup, in the same run.

    uv run --frozen python -m bench.popup [--people 2000] [--seconds 10] [--clients 1 16 64]

Everything real and on this machine: a throwaway PostgreSQL (fsync off), the test broker (the
services' consumers run, idle), and four uvicorn processes on free ports — identity, matching,
gateway (each `canbao_<service>.app:create`, one worker) and the bare endpoint. A population is
seeded with the generator and fed through identity and matching the way their ground-truth tests
do (not timed). Then, for each number of concurrent clients, every client asks the gateway for
the popup of random people of the population for `--seconds` (a counter token of the whole
province; every popup is two internal HTTP calls and one committed audit row), and the same for
the bare endpoint (`SELECT person_id FROM people WHERE id_number_hash = $1`, through the same
SQLAlchemy/asyncpg layer the services use). The load generator shares the machine's cores.

Printed: the machine's facts first (cores, load before the run: other users of the machine skew
every figure), then per number of clients req/s, p50, p90 and p99 of both and their ratios, then
where the popup's CPU goes (milliseconds of CPU per popup in each process, from /proc), then the
two internal calls alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import httpx
import sqlalchemy as sa
from fastapi import FastAPI, HTTPException

import canbao_identity
import canbao_matching
from bench.processes import (
    children_of,
    cpu_seconds,
    cpu_since,
    machine_facts,
    postmaster,
    start,
    wait_up,
)
from canbao_contracts.topics import ALL_TOPICS
from canbao_gateway import tokens
from canbao_gateway.accounts import create_account
from canbao_gateway.app import SERVICE as GATEWAY
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.staff import Role, Staff
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_stack.simulators.population import seed

BARE_URL_VARIABLE = "BENCH_BARE_DATABASE_URL"
BENCH_CLERK: Final = "bench-counter"
BARE_QUERY = sa.text("SELECT person_id FROM people WHERE id_number_hash = :hash")


def bare() -> FastAPI:
    """The yardstick (`uvicorn --factory bench.popup:bare`): one indexed lookup, as JSON."""
    database: dict[str, Database] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database["db"] = Database(os.environ[BARE_URL_VARIABLE])
        yield
        await database["db"].dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/bare/{id_number}")
    async def lookup(id_number: str) -> dict[str, str]:
        digest = hashlib.sha256(id_number.encode()).hexdigest()
        async with database["db"].engine.connect() as connection:
            person_id = await connection.scalar(BARE_QUERY, {"hash": digest})
        if person_id is None:
            raise HTTPException(404)
        return {"person_id": str(person_id)}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


@dataclass
class Result:
    clients: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: int) -> float:
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]

    def columns(self) -> str:
        return (
            f"{self.per_second:>6.0f} {self.percentile(50):>6.1f} {self.percentile(90):>6.1f} "
            f"{self.percentile(99):>7.1f} {self.errors:>4}"
        )


HEADER: Final = f"{'req/s':>6} {'p50':>6} {'p90':>6} {'p99':>7} {'err':>4}"


Call = tuple[str, str, dict[str, str] | None]  # method, path, JSON body


async def load(
    url: str, calls: list[Call], clients: int, seconds: float, headers: dict[str, str]
) -> Result:
    """`clients` concurrent clients, each sending random `calls` one after another (`errors`:
    answers other than 200, and calls that got no answer)."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=30) as http:
        deadline = time.perf_counter() + seconds

        async def client(rng: random.Random) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                method, path, body = rng.choice(calls)
                try:
                    response = await http.request(method, path, json=body)
                except httpx.TransportError:  # a connection reset under overload: an error,
                    errors += 1  # not the end of the run
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                errors += response.status_code != 200

        for n in range(min(clients, 4)):  # warm the connections and caches
            await http.request(calls[n][0], calls[n][1], json=calls[n][2])
        started = time.perf_counter()
        await asyncio.gather(*(client(random.Random(n)) for n in range(clients)))
        elapsed = time.perf_counter() - started
    return Result(clients, len(latencies), errors, elapsed, latencies)


async def breakdown(
    identity_url: str, matching_url: str, numbers: list[str], seconds: float
) -> None:
    """Where a popup's time goes, one client: the two internal calls the gateway makes."""
    lookups: list[Call] = [("POST", "/internal/persons/lookup", {"id_number": n}) for n in numbers]
    identity = await load(identity_url, lookups, 1, seconds, {})
    async with httpx.AsyncClient(base_url=identity_url) as http:
        ids = [
            (await http.post("/internal/persons/lookup", json={"id_number": n})).json()["person_id"]
            for n in numbers[:200]
        ]
    verdicts: list[Call] = [("GET", f"/internal/v1/verdicts/{i}", None) for i in ids]
    matching = await load(matching_url, verdicts, 1, seconds, {})
    print(f"\none client, the gateway's internal calls alone:\n  {'':<17} {HEADER}")
    for name, result in (("identity lookup", identity), ("matching verdict", matching)):
        print(f"  {name:<17} {result.columns()}")


async def prepare(postgres: PostgresCluster, people: int) -> tuple[dict[str, str], list[str]]:
    """The services' databases, the population through identity and matching, the bare table;
    the databases' URLs and the population's citizen numbers."""
    from tests.identity.conftest import Harness  # the ground-truth tests' feeding
    from tests.identity.feed import snapshot_messages
    from tests.matching.test_ground_truth import feed

    urls = {
        n: postgres.create_database(f"bench_{n}")
        for n in ("sources", "identity", "matching", "gateway", "bare")
    }
    for name, package in (("identity", canbao_identity), ("matching", canbao_matching)):
        await migrate_async(urls[name], Path(package.__file__).parent / "migrations")
    await migrate_async(urls["gateway"], GATEWAY.migrations)
    # The clerk whose token the load uses: the gateway checks her account on each request.
    gateway_db = Database(urls["gateway"])
    async with gateway_db.engine.begin() as connection:
        await create_account(
            connection,
            username=BENCH_CLERK,
            password=secrets.token_hex(16),
            role=Role.COUNTER,
            scope="52",
        )
    await gateway_db.dispose()
    await seed(urls["sources"], people, 7, loaders=1)
    identity_db, matching_db = Database(urls["identity"]), Database(urls["matching"])
    harness = Harness(identity_db)
    messages = await snapshot_messages(urls["sources"])
    for at in range(0, len(messages), 500):
        await harness.apply(messages[at : at + 500])
    await feed(matching_db, harness.published)
    sources = Database(urls["sources"])
    async with sources.engine.connect() as connection:
        numbers = list(
            await connection.scalars(
                sa.text("SELECT id_number FROM simulator.expected_outcome WHERE document IS NULL")
            )
        )
    bare_db = Database(urls["bare"])
    async with bare_db.engine.begin() as connection:
        await connection.execute(
            sa.text(
                "CREATE TABLE people (id_number_hash text PRIMARY KEY, person_id uuid NOT NULL)"
            )
        )
        for n in numbers:  # the ID number's hash, as a blind index would hold it
            row = {"h": hashlib.sha256(n.encode()).hexdigest(), "p": await harness.person_of(n)}
            await connection.execute(sa.text("INSERT INTO people VALUES (:h, :p)"), row)
    for database in (identity_db, matching_db, sources, bare_db):
        await database.dispose()
    return urls, numbers


@dataclass(frozen=True)
class Target:
    url: str
    headers: dict[str, str]
    calls: list[Call]


async def compare(
    popup: Target,
    yardstick: Target,
    client_counts: list[int],
    seconds: float,
    processes_of: dict[str, list[int]],
    backends: Callable[[], list[int]],
) -> None:
    """The popup and the yardstick at each number of clients; then the CPU each process spent
    per popup (PostgreSQL: its backends, the services' pooled connections among them)."""
    print(f"{'':>7} | {'popup':<{len(HEADER)}} | {'bare':<{len(HEADER)}} | ratio bare/popup")
    print(f"{'clients':>7} | {HEADER} | {HEADER} | {'req/s':>6} {'p99':>6}")
    cpu: dict[int, dict[str, float]] = {}
    for clients in client_counts:
        processes_of["postgres"] = backends()
        before = {name: cpu_seconds(pids) for name, pids in processes_of.items()}
        p = await load(popup.url, popup.calls, clients, seconds, popup.headers)
        processes_of["postgres"] = backends()  # and the connections opened during the run
        cpu[clients] = {
            name: cpu_since(before[name], pids) * 1000 / p.requests
            for name, pids in processes_of.items()
        }
        b = await load(yardstick.url, yardstick.calls, clients, seconds, yardstick.headers)
        print(
            f"{clients:>7} | {p.columns()} | {b.columns()} | "
            f"{b.per_second / p.per_second:>5.1f}x "
            f"{p.percentile(99) / b.percentile(99):>5.1f}x",
            flush=True,
        )
    print("\nCPU ms per popup, by process (during the popup runs):")
    print(
        f"{'clients':>7} | " + " ".join(f"{name:>14}" for name in processes_of) + f" | {'total':>6}"
    )
    for clients, used in cpu.items():
        print(
            f"{clients:>7} | "
            + " ".join(f"{ms:>14.1f}" for ms in used.values())
            + f" | {sum(used.values()):>6.1f}"
        )


async def main(people: int, seconds: float, client_counts: list[int]) -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-bench-popup-") as tmp:
        os.chmod(tmp, 0o755)
        log_dir = Path(tmp)
        with (
            PostgresCluster(Path(tmp) / "pg", port=free_port(), durable=False) as postgres,
            MockKafkaCluster(brokers=3) as kafka,
        ):
            kafka.create_topics(ALL_TOPICS)
            print(machine_facts("the load generator, four servers"), flush=True)
            print(f"seeding {people:,} people through identity and matching…", flush=True)
            urls, numbers = await prepare(postgres, people)
            common = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "CANBAO_ENV": "test"}
            identity, identity_url = start(
                "identity",
                "canbao_identity.app:create",
                common | {"IDENTITY_DATABASE_URL": urls["identity"]},
                log_dir,
            )
            matching, matching_url = start(
                "matching",
                "canbao_matching.app:create",
                common | {"MATCHING_DATABASE_URL": urls["matching"]},
                log_dir,
            )
            gateway, gateway_url = start(
                "gateway",
                "canbao_gateway.app:create",
                common
                | {
                    "GATEWAY_DATABASE_URL": urls["gateway"],
                    "GATEWAY_IDENTITY_URL": identity_url,
                    "GATEWAY_MATCHING_URL": matching_url,
                },
                log_dir,
            )
            yardstick, bare_url = start(
                "bare", "bench.popup:bare", {BARE_URL_VARIABLE: urls["bare"]}, log_dir
            )
            processes = [identity, matching, gateway, yardstick]
            try:
                for url in (identity_url, matching_url, gateway_url, bare_url):
                    await wait_up(url)
                staff = Staff(username=BENCH_CLERK, role=Role.COUNTER, scope="52")
                key = GatewaySettings(CANBAO_ENV="test").jwt_key()
                token = tokens.issue(
                    staff, version=0, key=key, now=datetime.now(UTC), lifetime=timedelta(hours=1)
                )
                popup = Target(
                    gateway_url,
                    {"Authorization": f"Bearer {token}"},
                    [("GET", f"/api/v1/counter/popup/{n}", None) for n in numbers],
                )
                yardstick_target = Target(
                    bare_url, {}, [("GET", f"/bare/{n}", None) for n in numbers]
                )
                print(f"{len(numbers):,} people; {seconds:.0f} s per run; latencies in ms\n")
                processes_of = {
                    "gateway": [gateway.pid],
                    "identity": [identity.pid],
                    "matching": [matching.pid],
                    "postgres": [],
                    "load generator": [os.getpid()],
                }
                await compare(
                    popup,
                    yardstick_target,
                    client_counts,
                    seconds,
                    processes_of,
                    lambda: children_of(postmaster(postgres)),
                )
                await breakdown(identity_url, matching_url, numbers, seconds)
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    process.wait(timeout=30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    arguments = parser.parse_args()
    asyncio.run(main(arguments.people, arguments.seconds, arguments.clients))
