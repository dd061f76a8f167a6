"""DCI: what a partner's search costs, and how fast an exchange's full delivery goes.

    uv run --frozen python -m bench.dci [--people 2000 20000] [--seconds 10] [--clients 1 16]

Everything real and on this machine: a throwaway PostgreSQL (fsync off), the test broker, and
identity, matching and the gateway as uvicorn processes (one worker each). For each population
size the generator's people are fed through identity and matching as the popup bench does (not
timed), and the partner client `bench-national` (department national: search, subscribe; sees
numbers, region, household and the five statuses) is registered with a callback address served
by this process.

Printed per size:
* `registry/sync/search` by social security number (one number a message, a new message_id
  each: every message is recorded, executed once, signed and audited), then by a filter (a
  county, 100 a page), at each number of concurrent clients: req/s, p50, p90, p99 (ms);
* the exchange's first pass — the full delivery of the national filter (dci_notify.py): the
  reconciler in this process, over the gateway's database and the services' HTTP APIs, then the
  gateway process's delivery posting the notifications to this process: seconds until every
  person is enqueued, seconds until every one is acknowledged, people/s, and the second pass
  over the same people (everything held: nothing sent).
The last line: `dci <N> people: search by number p99 <ms> ms at <c> clients, <r> req/s;
full delivery <P> people/s`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.popup import prepare
from bench.processes import machine_facts, percentiles, start, wait_up
from canbao_contracts.topics import ALL_TOPICS
from canbao_gateway import clients
from canbao_gateway.clients import ClientKind, Field, Permission
from canbao_gateway.dci_notify import ExchangeReconciler
from canbao_gateway.service_clients import IdentityClient, MatchingClient
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.tables import dci_exchange_ledger, dci_exchange_passes, dci_subscriptions
from canbao_platform.db import Database
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, free_port
from canbao_stack.national import OWED

CLIENT, SECRET = "bench-national", "bench-national-secret-of-32-chars"
SEARCH = "/api/v1/partners/dci/registry/sync/search"
FIELDS = frozenset(
    {
        Field.ID_NUMBER,
        Field.REGION,
        Field.HOUSEHOLD,
        Field.REGISTRATION,
        Field.PENSION,
        Field.MEDICAL,
        Field.INJURY,
        Field.UNEMPLOYMENT,
        Field.MATERNITY,
    }
)


class Receiver:
    """The national side's callback address: acknowledges and counts the people notified."""

    def __init__(self) -> None:
        self.port, self.people = free_port(), 0
        app = Starlette(routes=[Route("/dci/{action}", self._post, methods=["POST"])])
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)

    async def _post(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.people += len(body["message"].get("notify_event", []))
        return JSONResponse({"message": {"ack_status": "ACK"}})


def envelope(criteria: dict[str, Any]) -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "header": {
            "version": "1.0.0",
            "message_id": str(uuid.uuid4()),
            "message_ts": now,
            "action": "search",
            "sender_id": CLIENT,
            "total_count": 1,
        },
        "message": {
            "transaction_id": str(uuid.uuid4()),
            "search_request": [
                {"reference_id": "r-1", "timestamp": now, "search_criteria": criteria}
            ],
        },
    }


async def load(
    gateway: str, token: str, criteria: list[dict[str, Any]], clients_: int, seconds: float
) -> tuple[float, list[float], int]:
    """`clients_` concurrent partners sending random `criteria`: req/s, latencies, errors."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=clients_, max_keepalive_connections=clients_)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=gateway, headers=headers, limits=limits, timeout=30
    ) as http:
        await http.post(SEARCH, json=envelope(criteria[0]))  # warm
        deadline = time.perf_counter() + seconds

        async def client(rng: random.Random) -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                body = envelope(rng.choice(criteria))
                started = time.perf_counter()
                answer = await http.post(SEARCH, json=body)
                latencies.append((time.perf_counter() - started) * 1000)
                errors += answer.status_code != 200 or answer.json()["header"]["status"] != "succ"

        started = time.perf_counter()
        await asyncio.gather(*(client(random.Random(n)) for n in range(clients_)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


async def full_delivery(
    urls: dict[str, str],
    identity: str,
    matching: str,
    receiver: Receiver,
    settings: GatewaySettings,
) -> tuple[float, float, int, float]:
    """The exchange's first pass, then every notification acknowledged, then a second pass:
    seconds to enqueue, seconds to acknowledge, people, seconds of the second pass."""
    database = Database(urls["gateway"])
    key = settings.service_token_signing_key()
    parts = (IdentityClient(identity, signing_key=key), MatchingClient(matching, signing_key=key))
    for part in parts:
        await part.start()
    try:
        now = datetime.now(UTC)
        async with database.engine.begin() as connection:
            await connection.execute(
                sa.insert(dci_subscriptions).values(
                    subscription_code=uuid.uuid4(),
                    client_id=CLIENT,
                    transaction_id="bench",
                    reference_id="owed",
                    reg_event_type="UPDATE",
                    filter=owed_filter(),
                    notify_url=f"http://127.0.0.1:{receiver.port}/dci/notify",
                    state="active",
                    created_at=now,
                    exchange=True,
                )
            )
        reconciler = ExchangeReconciler(database, settings.sealer(), settings, *parts)
        started = time.perf_counter()
        while await reconciler.reconcile_page(now=now):
            pass
        enqueued = time.perf_counter() - started
        async with database.engine.connect() as connection:
            people = await connection.scalar(sa.select(dci_exchange_passes.c.missing))
        while True:  # the gateway process's delivery posts them
            async with database.engine.connect() as connection:
                pending = await connection.scalar(
                    sa.select(sa.func.count()).where(dci_exchange_ledger.c.state == "pending")
                )
            if not pending:
                break
            await asyncio.sleep(0.2)
        acknowledged = time.perf_counter() - started
        started = time.perf_counter()
        later = now + timedelta(days=2)
        while await reconciler.reconcile_page(now=later):
            pass
        second = time.perf_counter() - started
        return enqueued, acknowledged, int(people or 0), second
    finally:
        for part in parts:
            await part.stop()
        await database.dispose()


def owed_filter() -> dict[str, Any]:
    """The national filter (canbao_stack.national.OWED) in matching's filter language."""
    from canbao_gateway import dci
    from canbao_gateway.clients import Client

    client = Client(
        client_id=CLIENT, kind=ClientKind.PARTNER, region="52", department="national", fields=FIELDS
    )
    query = {
        "type": "ns:org:QueryType:NoSql",
        "value": {"expression": {"collection": "Member", "query": OWED}},
    }
    parsed = dci.query_of(
        {"query_type": "expression", "query": query}, client, datetime.now(UTC).date()
    )
    assert isinstance(parsed, dci.ByFilter)
    return dict(parsed.filter)


async def one_size(people: int, seconds: float, client_counts: list[int], tmp: Path) -> str:
    with (
        PostgresCluster(tmp / f"pg{people}", port=free_port(), durable=False) as postgres,
        MockKafkaCluster(brokers=1) as kafka,
    ):
        kafka.create_topics(ALL_TOPICS)
        print(f"\nseeding {people:,} people through identity and matching…", flush=True)
        urls, numbers = await prepare(postgres, people)
        receiver = Receiver()
        serving = asyncio.create_task(receiver.server.serve())
        gateway_db = Database(urls["gateway"])
        async with gateway_db.engine.begin() as connection:
            await clients.register(
                connection,
                client_id=CLIENT,
                secret=SECRET,
                kind=ClientKind.PARTNER,
                name="全国参保登记库",
                region="52",
                department="national",
                permissions=frozenset({Permission.SEARCH, Permission.SUBSCRIBE}),
                fields=FIELDS,
                callback_urls=(f"http://127.0.0.1:{receiver.port}/dci",),
            )
        await gateway_db.dispose()
        common = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "CANBAO_ENV": "test"}
        identity, identity_url = start(
            "identity",
            "canbao_identity.app:create",
            common | {"IDENTITY_DATABASE_URL": urls["identity"]},
            tmp,
        )
        matching, matching_url = start(
            "matching",
            "canbao_matching.app:create",
            common | {"MATCHING_DATABASE_URL": urls["matching"]},
            tmp,
        )
        gateway, gateway_url = start(
            "gateway",
            "canbao_gateway.app:create",
            common
            | {
                "GATEWAY_DATABASE_URL": urls["gateway"],
                "GATEWAY_IDENTITY_URL": identity_url,
                "GATEWAY_MATCHING_URL": matching_url,
                "GATEWAY_DCI_NOTIFICATIONS": "false",
            },
            tmp,
        )
        try:
            for url in (identity_url, matching_url, gateway_url):
                await wait_up(url)
            async with httpx.AsyncClient(base_url=gateway_url) as http:
                token = (
                    await http.post(
                        "/api/v1/auth/token",
                        data={
                            "grant_type": "client_credentials",
                            "client_id": CLIENT,
                            "client_secret": SECRET,
                        },
                    )
                ).json()["access_token"]
            by_number = [
                {"query_type": "idtype-value", "query": {"type": "SSN", "value": n}}
                for n in numbers
            ]
            by_county = [
                {
                    "query_type": "predicate",
                    "query": [
                        {
                            "seq_num": 1,
                            "expression1": {
                                "attribute_name": "region",
                                "operator": "eq",
                                "attribute_value": county,
                            },
                        }
                    ],
                    "pagination": {"page_size": 100, "page_number": 1},
                }
                for county in ("520102", "520103", "520111", "520302")
            ]
            print(f"{people:,} people ({len(numbers):,} with a number); {seconds:.0f} s a run; ms")
            print(
                f"{'search':<10} {'clients':>7} {'req/s':>7} {'p50':>7} {'p90':>7} {'p99':>7} "
                f"{'err':>4}"
            )
            headline = ""
            for name, criteria in (("by number", by_number), ("by county", by_county)):
                for count in client_counts:
                    rate, latencies, errors = await load(
                        gateway_url, token, criteria, count, seconds
                    )
                    p50, p90, p99 = percentiles(latencies)
                    print(
                        f"{name:<10} {count:>7} {rate:>7.0f} {p50:>7.1f} {p90:>7.1f} "
                        f"{p99:>7.1f} {errors:>4}",
                        flush=True,
                    )
                    if name == "by number":
                        headline = (
                            f"search by number p99 {p99:.0f} ms at {count} clients, "
                            f"{rate:.0f} req/s"
                        )
            settings = GatewaySettings(CANBAO_ENV="test")
            enqueued, acknowledged, owed, second = await full_delivery(
                urls, identity_url, matching_url, receiver, settings
            )
            assert receiver.people >= owed, (receiver.people, owed)
            print(
                f"full delivery: {owed:,} people owed, enqueued in {enqueued:.1f} s, all "
                f"acknowledged in {acknowledged:.1f} s ({owed / acknowledged:,.0f} people/s); "
                f"second pass (all held) {second:.1f} s",
                flush=True,
            )
            return (
                f"dci {people} people: {headline}; full delivery {owed / acknowledged:.0f} people/s"
            )
        finally:
            for process in (identity, matching, gateway):
                process.terminate()
            for process in (identity, matching, gateway):
                process.wait(timeout=30)
            receiver.server.should_exit = True
            await serving


async def main(sizes: list[int], seconds: float, client_counts: list[int]) -> None:
    print(machine_facts("the load generator, three servers, the reconciler"), flush=True)
    lines = []
    with tempfile.TemporaryDirectory(prefix="canbao-bench-dci-") as tmp:
        os.chmod(tmp, 0o755)
        for people in sizes:
            lines.append(await one_size(people, seconds, client_counts, Path(tmp)))
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, nargs="+", default=[2_000, 20_000])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 16])
    arguments = parser.parse_args()
    asyncio.run(main(arguments.people, arguments.seconds, arguments.clients))
