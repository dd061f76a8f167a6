"""`canbao run`: the whole system on one machine, on its embedded defaults.

Order of start (stop is the reverse): PostgreSQL (kept under the state directory) → databases
created and migrated by their owner (the server's user), each service's own login role created and
granted rows only (canbao_platform.db.grant_application_role; the services connect as it, as in
production) → the Kafka-protocol test broker with the contract topics (unless
KAFKA_BOOTSTRAP_SERVERS names a real cluster) → the Debezium bridge → the five services → the
survey roster of the demo surveyors → the demo population (unless the state directory already
has it). Then it supervises until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from canbao_contracts.topics import ALL_TOPICS
from canbao_gateway.clients import ClientKind
from canbao_gateway.clients import register as register_client
from canbao_platform.db import migrate_async
from canbao_platform.local.backup import archive_settings, discard_wal_until_configured
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import (
    SERVICES_SERVER_SETTINGS,
    PostgresCluster,
    application_role,
)
from canbao_platform.migrate import service_definition
from canbao_stack import mobile_idp, national
from canbao_stack.dci_client import SignatureRefused
from canbao_stack.national import NationalRegistry
from canbao_stack.simulators import SCHEMA_SQL
from canbao_stack.supervisor import Child, http_ok, python_module, say

SERVICES = ("gateway", "identity", "matching", "survey", "reporting")
DEMO_MARKER = "demo-loaded"
BOOTSTRAP_FILE = "kafka-bootstrap"
# The demo's survey team (api.md "Survey"): both demo surveyors on the roster of the demo
# province, certified (调查证) as a county agency would certify them (44号 Art.5, §16).
DEMO_ROSTER: tuple[dict[str, Any], ...] = (
    {"username": "demo-surveyor", "name": "张明", "county_code": "52",
     "certificate_number": "DC-52-0001", "contracted": False},
    {"username": "demo-surveyor2", "name": "李芳", "county_code": "52",
     "certificate_number": "DC-52-0002", "contracted": True},
)  # fmt: skip


@dataclass(frozen=True)
class StackConfig:
    state_dir: Path = Path(".state")
    postgres_port: int = 54320
    gateway_port: int = 8000
    demo_people: int = 20_000
    demo_seed: int = 1
    # identity as two processes (IDENTITY_ROLES=consume and build, deploy/'s two Deployments),
    # the builder on the port after the last service's.
    split_identity: bool = False
    # An operator's own infrastructure instead of the embedded one:
    kafka_bootstrap_servers: str | None = field(
        default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None
    )
    postgres_server: str | None = field(  # e.g. postgresql://canbao:secret@db:5432
        default_factory=lambda: os.environ.get("CANBAO_POSTGRES") or None
    )
    # The simulated business systems' server, when not the registry's: as in production, where
    # they are other departments' databases. Apart, a Debezium snapshot's transaction (open for
    # the whole snapshot) does not hold back vacuum in the services' databases: a snapshot
    # taken in one database of a cluster sees every transaction of the cluster.
    sources_server: str | None = None

    def service_port(self, service: str) -> int:
        return self.gateway_port + SERVICES.index(service)

    @property
    def national_port(self) -> int:
        """The stand-in national registry's (canbao_stack.national): after identity-builder's."""
        return self.gateway_port + len(SERVICES) + 1


class LocalStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.postgres: PostgresCluster | None = None
        self.broker: MockKafkaCluster | None = None
        self.national: NationalRegistry | None = None
        self.children: list[Child] = []
        self._watchers: list[asyncio.Task[None]] = []

    @property
    def server_dsn(self) -> str:
        if self.config.postgres_server:
            return self.config.postgres_server.rstrip("/")
        return f"postgresql://canbao@127.0.0.1:{self.config.postgres_port}"

    def dsn(self, database: str) -> str:
        return f"{self.server_dsn}/{database}"

    @property
    def sources_server_dsn(self) -> str:
        return (self.config.sources_server or self.server_dsn).rstrip("/")

    @property
    def sources_dsn(self) -> str:
        """The simulated business systems' database (`sources`, sources.md)."""
        return f"{self.sources_server_dsn}/sources"

    async def run(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        started = time.monotonic()
        try:
            await self.start()
            say("stack", f"ready in {time.monotonic() - started:.1f} s")
            self.print_where_to_look()
            self._watchers.append(asyncio.create_task(self.report_cdc_progress()))
            await stop.wait()
        finally:
            say("stack", "stopping")
            await self.stop()
            say("stack", "stopped")

    async def start(self) -> None:
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        await self.start_postgres()
        await self.prepare_databases()
        bootstrap = self.start_broker()
        await self.start_children(bootstrap)
        await self.start_national_registry()
        await self.put_demo_surveyors_on_the_roster()
        await self.load_demo_data()

    async def start_postgres(self) -> None:
        if self.config.postgres_server:
            say("postgres", "using the configured server (CANBAO_POSTGRES)")
            return
        data_dir = self.config.state_dir.resolve() / "postgres"
        # WAL archiving ready for `make backup` (canbao_platform.local.backup), a no-op till then.
        self.postgres = PostgresCluster(
            data_dir,
            port=self.config.postgres_port,
            settings=archive_settings(data_dir) | SERVICES_SERVER_SETTINGS,
        )
        fresh = not self.postgres.initialised
        say(
            "postgres",
            f"starting on 127.0.0.1:{self.config.postgres_port} "
            f"({'new cluster' if fresh else 'resuming'} in {data_dir})",
        )
        if fresh:
            self.config.state_dir.resolve().chmod(0o755)  # the server may run as `postgres`
        await asyncio.to_thread(self.postgres.start)
        await asyncio.to_thread(discard_wal_until_configured, self.postgres)
        say("postgres", "ready")

    async def prepare_databases(self) -> None:
        await ensure_database(self.sources_server_dsn, "sources")
        for name in SERVICES:
            await ensure_database(self.server_dsn, name)
        connection = await asyncpg.connect(self.sources_dsn)
        try:
            await connection.execute(SCHEMA_SQL.read_text())
        finally:
            await connection.close()
        for service in SERVICES:
            await self.migrate(service)
        say("databases", "ready: sources (simulators) + " + ", ".join(SERVICES) + " (migrated)")

    async def migrate(self, service: str) -> None:
        """Migrate as the owner; then the service's own login may read and write rows only."""
        definition = service_definition(service)
        role = application_role(service)
        await ensure_role(self.server_dsn, role, password=make_url(self.server_dsn).password)
        await migrate_async(
            self.sqlalchemy_url(service),
            definition.migrations,
            application_role=role,
            append_only=definition.append_only,
        )

    def sqlalchemy_url(self, database: str) -> str:
        return self.dsn(database).replace("postgresql://", "postgresql+asyncpg://", 1)

    def application_url(self, service: str) -> str:
        """What the service connects with: its own login role, not the owner of its tables."""
        url = make_url(self.sqlalchemy_url(service)).set(username=application_role(service))
        return url.render_as_string(hide_password=False)

    def start_broker(self) -> str:
        if self.config.kafka_bootstrap_servers:
            say("kafka", f"using {self.config.kafka_bootstrap_servers} (KAFKA_BOOTSTRAP_SERVERS)")
            return self.config.kafka_bootstrap_servers
        self.broker = MockKafkaCluster(brokers=3)
        self.broker.create_topics(ALL_TOPICS)
        # The mock listens on new ports at each start: `canbao watch` finds them here.
        (self.config.state_dir / BOOTSTRAP_FILE).write_text(self.broker.bootstrap_servers + "\n")
        say(
            "kafka",
            f"test broker ready: {self.broker.bootstrap_servers} "
            f"(3 brokers, {len(ALL_TOPICS)} topics; in memory, new at each start)",
        )
        return self.broker.bootstrap_servers

    async def start_children(self, bootstrap: str) -> None:
        logs = self.config.state_dir.resolve() / "logs"
        common = {"KAFKA_BOOTSTRAP_SERVERS": bootstrap, "CANBAO_ENV": "development"}
        # The gateway reaches the internal APIs on this run's ports (--gateway-port moves them all).
        common |= {
            f"GATEWAY_{s.upper()}_URL": f"http://127.0.0.1:{self.config.service_port(s)}"
            for s in ("identity", "matching", "survey", "reporting")
        }
        # The mobile channel's identity provider (api.md "Self-service"; canbao mobile-token).
        common |= mobile_idp.gateway_environment(self.config.state_dir)
        # The certificate's QR code and verification address: this run's gateway.
        common["GATEWAY_PUBLIC_URL"] = f"http://127.0.0.1:{self.config.gateway_port}"
        # Survey streams a list's households from identity (canbao_survey.lists).
        common["SURVEY_IDENTITY_URL"] = f"http://127.0.0.1:{self.config.service_port('identity')}"
        self.children.append(self.cdc_bridge(bootstrap, logs))
        processes: list[tuple[str, str, dict[str, str]]] = [(s, s, {}) for s in SERVICES]
        if self.config.split_identity:
            processes[SERVICES.index("identity")] = (
                "identity",
                "identity",
                {"IDENTITY_ROLES": "consume"},
            )
            processes.append(("identity-builder", "identity", {"IDENTITY_ROLES": "build"}))
        for offset, (name, service, roles) in enumerate(processes):
            port = self.config.gateway_port + offset
            env = (
                common | roles | {f"{service.upper()}_DATABASE_URL": self.application_url(service)}
            )
            argv = python_module(
                "uvicorn",
                "--factory",
                f"canbao_{service}.app:create",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-proxy-headers",
            )
            url = f"http://127.0.0.1:{port}"
            self.children.append(
                Child(name, argv, env, logs, is_ready=http_ok(f"{url}/readyz"), where=url)
            )
        for child in self.children:
            say(child.name, "starting")
            await child.start()
        for child in self.children:
            if await child.wait_ready(within_s=120):
                say(child.name, f"ready: {child.where}")
            else:
                say(child.name, f"NOT READY after 120 s; see {child.log_path}")
            self._watchers.append(asyncio.create_task(child.watch()))

    def cdc_bridge(self, bootstrap: str, log_dir: Path) -> Child:
        """Debezium on `sources` → cdc.* topics, waiting for the identity service's consumers
        whenever it runs far enough ahead that the test broker would evict unread events."""
        status = self.config.state_dir.resolve() / "cdc-status.json"
        status.unlink(missing_ok=True)
        argv = python_module(
            "canbao_stack.cdc",
            "--bootstrap-servers",
            bootstrap,
            "--source-dsn",
            self.sources_dsn,
            "--status-file",
            str(status),
            "--watch-groups",
            "identity",
            "--progress-interval",
            "5",
        )
        if self.config.kafka_bootstrap_servers:
            argv.append("--no-backpressure")  # a real Kafka keeps what its retention says

        async def running() -> bool:
            try:
                return bool(json.loads(status.read_text()).get("state") == "running")
            except (FileNotFoundError, json.JSONDecodeError):
                return False

        return Child("cdc", argv, {}, log_dir, is_ready=running, where=f"status in {status}")

    async def start_national_registry(self) -> None:
        """The stand-in national registry (canbao_stack.national): registered with the gateway
        as the agency would (`manage add-partner --department national`), then subscribed. A
        stack whose gateway did not come up says so and runs on without it."""
        gateway = f"http://127.0.0.1:{self.config.gateway_port}"
        self.national = NationalRegistry(
            self.config.state_dir.resolve(), self.config.national_port, gateway
        )
        engine = create_async_engine(self.sqlalchemy_url("gateway"))
        try:
            async with engine.begin() as connection:
                await register_client(
                    connection,
                    client_id=national.CLIENT_ID,
                    secret=national.SECRET,
                    kind=ClientKind.PARTNER,
                    name="全国参保登记库（演示）",
                    region="52",
                    department="national",
                    permissions=national.PERMISSIONS,
                    fields=national.FIELDS,
                    callback_urls=(self.national.base,),
                    signing_public_key=national.public_key_of(self.config.state_dir.resolve()),
                )
        finally:
            await engine.dispose()
        await self.national.start()
        try:
            code = await self.national.subscribe()
        except (httpx.HTTPError, RuntimeError, SignatureRefused) as error:
            say("national", f"NOT subscribed ({type(error).__name__}: {error})")
            return
        say("national", f"stand-in national registry subscribed ({code}): {self.national.base}")

    async def put_demo_surveyors_on_the_roster(self) -> None:
        """As the demo county agency, through the gateway's public API (PUT is idempotent: every
        start puts them again). A stack whose gateway or survey did not come up says so and runs
        on: the survey's lists and pages work, only assigning the demo team does not."""
        gateway = f"http://127.0.0.1:{self.config.gateway_port}"
        try:
            async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
                county = {"username": "demo-county", "password": "demo"}
                login = await client.post("/api/v1/auth/token", data=county)
                login.raise_for_status()
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                for surveyor in DEMO_ROSTER:
                    put = await client.put(
                        f"/api/v1/survey/surveyors/{surveyor['username']}",
                        json=surveyor,
                        headers=headers,
                    )
                    put.raise_for_status()
        except httpx.HTTPError as error:
            say("survey", f"demo surveyors NOT on the roster ({type(error).__name__}: {error})")
            return
        names = ", ".join(s["username"] for s in DEMO_ROSTER)
        say("survey", f"roster of the demo province (52): {names}")

    async def load_demo_data(self) -> None:
        marker = self.config.state_dir / DEMO_MARKER
        if marker.exists():
            say("demo", f"kept from an earlier run ({marker.read_text().strip()})")
            return
        from canbao_stack.simulators.population import seed

        people, seed_value = self.config.demo_people, self.config.demo_seed

        def progress(done: int, total: int) -> None:
            say("demo", f"{done:>9,} / {total:,} people")

        say("demo", f"generating {people:,} people (seed {seed_value}) into sources")
        report = await seed(self.sources_dsn, people, seed_value, progress=progress)
        marker.write_text(f"{people} people, seed {seed_value}\n")
        say("demo", f"loaded {people:,} people at {report.people_per_second:,.0f} people/s")

    async def report_cdc_progress(self, every_s: float = 10.0) -> None:
        """A line whenever the change feed moved or got stuck, so the console shows the demo
        data flowing (and says so when it waits for the identity service to catch up)."""
        status_file = self.config.state_dir.resolve() / "cdc-status.json"
        said = None
        while True:
            await asyncio.sleep(every_s)
            try:
                status = json.loads(status_file.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            line = cdc_progress_line(status)
            if line != said:
                say("cdc", line)
                said = line

    async def stop(self) -> None:
        if self.national is not None:
            await self.national.stop()
        for child in reversed(self.children):
            await child.stop()
        for watcher in self._watchers:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if self.broker is not None:
            self.broker.close()
            (self.config.state_dir / BOOTSTRAP_FILE).unlink(missing_ok=True)
        if self.postgres is not None:
            await asyncio.to_thread(self.postgres.stop)

    def print_where_to_look(self) -> None:
        gateway = f"http://127.0.0.1:{self.config.gateway_port}"
        print(
            f"""
Where to look
  counter page            {gateway}/counter    (demo-counter / demo; 复核: demo-reviewer)
  reviewer's page         {gateway}/survey    (demo-platform 初审, demo-county 审定 / demo)
  analyst's page          {gateway}/reports    (demo-analyst / demo: the quarterly table, coverage)
  household survey        {gateway}/api/v1/survey/...  (demo-platform, demo-county,
                          demo-surveyor, demo-surveyor2 / demo; README "The household survey")
  changes and 抽查         {gateway}/api/v1/survey/changes, /samples  (demo-platform,
                          demo-platform2, demo-county, demo-city / demo)
  write-back, history     {gateway}/api/v1/writebacks, /persons/<number>/history
                          (demo-county, demo-reviewer / demo; feedback.<system> topics)
  kiosk (自助一体机)        {gateway}/kiosk    (device demo-kiosk / demo; README "Self-service")
  mobile app session      uv run canbao mobile-token <id number>  → POST /api/v1/self/session
  verify a 参保证明         {gateway}/api/v1/verify/<code>    (no login)
  quarterly table         {gateway}/api/v1/reports/quarterly/<2026Q4>[?format=csv]
                          (demo-analyst / demo; README "Reports")
  national registry       http://127.0.0.1:{self.config.national_port}/national/holdings
                          (stand-in: what the province's exchange delivered; demo-national)
  gateway (public API)    {gateway}/docs    (OpenAPI: {gateway}/openapi.json)
  services                """
            + "  ".join(f"{s} :{self.config.service_port(s)}" for s in SERVICES[1:])
            + f"""   (each: /healthz /readyz /docs)
  source systems (SQL)    psql {self.sources_dsn}
  service databases       psql {self.server_dsn}/<service>
  logs                    {self.config.state_dir / "logs"}/<component>.log
  watch events            uv run canbao watch registry.persons  (or e.g. cdc.hukou.person)
Press Ctrl-C to stop; `make run` again resumes with the data kept, `make clean` forgets it.
""",
            flush=True,
        )


def cdc_progress_line(status: dict[str, Any]) -> str:
    """One console line of the bridge's status file (`canbao_stack.cdc` writes it)."""
    line = f"{status.get('phase', '?')}: {status.get('events', 0):,} change events published"
    pressure = status.get("backpressure") or {}
    if pressure.get("blocked"):
        backlog = pressure.get("worst_backlog") or {}
        line += (
            f"; waiting for group '{backlog.get('group', '?')}' to read "
            f"{backlog.get('messages', 0):,} events on {pressure.get('worst_partition', '?')}"
        )
    if pressure.get("evicted_unread"):
        line += f"; {pressure['evicted_unread']:,} EVICTED UNREAD"
    return line


async def ensure_role(server_dsn: str, name: str, *, password: str | None) -> None:
    """A login role (no superuser, owning nothing) unless it exists. On an operator's server
    (CANBAO_POSTGRES) it gets the password of the configured user: the local stack is one
    operator's, and this spares a second secret."""
    connection = await asyncpg.connect(f"{server_dsn}/postgres")
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", name)
        if not exists:
            create = await connection.fetchval(
                "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', $1::text, $2::text)",
                name,
                password,
            )
            await connection.execute(create)
    finally:
        await connection.close()


async def ensure_database(server_dsn: str, name: str) -> None:
    connection = await asyncpg.connect(f"{server_dsn}/postgres")
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
