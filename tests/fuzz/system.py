"""The whole system behind the gateway, for fuzzing its public HTTP interface: a small seeded
population through identity (its Harness: the snapshot as change events) and matching (its
handler and evaluator), the survey application with its outbox on the Kafka test broker,
reporting's routes, and the gateway reaching all four in-process over ASGI transports, as
tests/gateway/test_popup.py and test_collections.py build them, each on its own real PostgreSQL
database.

The gateway is served by uvicorn on a loopback port from a thread of its own (its own event
loop): schemathesis' generated requests are synchronous HTTP, and the databases' connections
belong to the loop that opened them."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

import httpx
import sqlalchemy as sa
import uvicorn

from canbao_gateway.app import SERVICE as GATEWAY
from canbao_gateway.app import create
from canbao_gateway.staff import Role
from canbao_matching.evaluation import today_in_china
from canbao_platform.db import Database, migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import free_port
from canbao_platform.service import Resources
from canbao_reporting.app import SERVICE as REPORTING
from canbao_reporting.app import ReportingSettings
from canbao_reporting.app import create as create_reporting
from canbao_stack import mobile_idp
from canbao_stack.simulators.population import seed
from canbao_stack.simulators.store import load_expected
from canbao_survey.app import SERVICE as SURVEY
from canbao_survey.app import create as create_survey
from tests.gateway.conftest import settings_for
from tests.gateway.test_popup import in_process
from tests.identity.conftest import MIGRATIONS as IDENTITY_MIGRATIONS
from tests.identity.conftest import Harness
from tests.identity.feed import snapshot_messages
from tests.matching.conftest import MIGRATIONS as MATCHING_MIGRATIONS
from tests.matching.test_ground_truth import NOW, feed
from tests.survey.conftest import serve as serve_lifespan
from tests.survey.conftest import survey_settings

STARTUP_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class Resident:
    """A person of the seeded population as identity registered them."""

    id_number: str  # 18 digits, normalised
    person_id: UUID


@dataclass
class RunningSystem:
    """Start with `with RunningSystem(make_database, kafka, people=…) as system:`; the gateway
    answers at `system.base_url`."""

    make_database: Callable[[], str]
    kafka: MockKafkaCluster
    people: int
    population_seed: int = 7
    base_url: str = ""
    residents: list[Resident] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _error: BaseException | None = None

    def __enter__(self) -> RunningSystem:
        # The databases are made here: make_database is the session's synchronous fixture.
        urls = {
            name: self.make_database()
            for name in ("sources", "identity", "matching", "survey", "reporting", "gateway")
        }
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._main(urls),), name="fuzzed-system", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S):
            raise TimeoutError("the system did not start in time")
        if self._error is not None:
            raise RuntimeError("the system did not start") from self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=60)

    async def _main(self, urls: dict[str, str]) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            async with contextlib.AsyncExitStack() as stack:
                server = await self._start(urls, stack)
                self._ready.set()
                await self._stop.wait()
                server.should_exit = True
        except BaseException as error:  # reported to the thread that waits for the start
            self._error = error
            self._ready.set()
            raise

    async def _start(
        self, urls: dict[str, str], stack: contextlib.AsyncExitStack
    ) -> uvicorn.Server:
        migrations = {
            "identity": IDENTITY_MIGRATIONS,
            "matching": MATCHING_MIGRATIONS,
            "survey": SURVEY.migrations,
            "reporting": REPORTING.migrations,
            "gateway": GATEWAY.migrations,
        }
        for name, directory in migrations.items():
            await migrate_async(urls[name], directory)
        await add_fuzzing_accounts(urls["gateway"])
        identity_db = Database(urls["identity"], pool_size=4)
        matching_db = Database(urls["matching"], pool_size=4)
        reporting_db = Database(urls["reporting"], pool_size=2)
        for database in (identity_db, matching_db, reporting_db):
            stack.push_async_callback(database.dispose)
        harness = Harness(identity_db)
        await self._register_population(urls["sources"], harness, matching_db)

        identity, matching = in_process(harness, matching_db)
        # Reporting's routes only (its table of no one yet): the quarters a fuzzer names.
        reporting_settings = ReportingSettings(CANBAO_ENV="test", database_url=urls["reporting"])
        reporting = create_reporting(reporting_settings)
        reporting.state.resources = Resources(settings=reporting_settings, database=reporting_db)
        survey = create_survey(survey_settings(urls["survey"], self.kafka))
        # A survey list streams the division from identity (canbao_survey.lists).
        survey.state.identity_transport = httpx.ASGITransport(app=identity)
        await stack.enter_async_context(serve_lifespan(survey))  # producer and outbox relay
        # The mobile channel open, as in production: generated ID tokens meet the real checks.
        with tempfile.TemporaryDirectory() as provider_state:
            provider = mobile_idp.gateway_environment(Path(provider_state))
        gateway = create(
            settings_for(
                urls["gateway"],
                mobile_id_token_issuer=provider["GATEWAY_MOBILE_ID_TOKEN_ISSUER"],
                mobile_id_token_public_key=provider["GATEWAY_MOBILE_ID_TOKEN_PUBLIC_KEY"],
            ),
            survey_transport=httpx.ASGITransport(app=survey),
            identity_transport=httpx.ASGITransport(app=identity),
            matching_transport=httpx.ASGITransport(app=matching),
            reporting_transport=httpx.ASGITransport(app=reporting),
        )
        port = free_port()
        # No access log: the paths hold ID numbers.
        config = uvicorn.Config(
            gateway,
            host="127.0.0.1",
            port=port,
            lifespan="on",
            access_log=False,
            log_level="warning",
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        stack.push_async_callback(lambda: task)
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.05)
        self.base_url = f"http://127.0.0.1:{port}"
        return server

    async def _register_population(
        self, sources: str, harness: Harness, matching_db: Database
    ) -> None:
        """As test_popup_ground_truth: the generator's population into the source systems, their
        snapshot through identity, identity's events through matching."""
        await seed(sources, self.people, self.population_seed, loaders=1)
        messages = await snapshot_messages(sources)
        for start in range(0, len(messages), 500):
            await harness.apply(messages[start : start + 500])
        await feed(matching_db, harness.published)
        libpq = sources.replace("postgresql+asyncpg://", "postgresql://")
        expected = await load_expected(libpq, as_of=today_in_china(NOW))
        for person in expected.values():
            if person["document"] is None and (number := person["id_number"]):
                person_id = await harness.person_of(number)
                if person_id is not None:
                    self.residents.append(Resident(number, person_id))


async def add_fuzzing_accounts(gateway_url: str) -> None:
    """An active account per role (`fuzz-<role>`, token version 0), whose tokens the gateway
    accepts: it checks the account's token version on every request."""
    database = Database(gateway_url, pool_size=1)
    try:
        async with database.engine.begin() as connection:
            for role in Role:
                await connection.execute(
                    sa.text(
                        "INSERT INTO staff_accounts (username, password_hash, role, scope) "
                        "VALUES (:username, '!', :role, '52')"
                    ),
                    {"username": f"fuzz-{role.value}", "role": role.value},
                )
    finally:
        await database.dispose()
