"""Session-wide real infrastructure: a throwaway PostgreSQL cluster and the Kafka-protocol test
broker (librdkafka's mock cluster, 3 brokers on loopback). Each test gets its own database and,
where it needs one, its own topics, so tests never see each other's data. And the process's
telemetry, installed before any test runs, so every test can read the spans and metrics."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import tempfile
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from sqlalchemy.engine import make_url

from canbao_platform import service_tokens
from canbao_platform.db import migrate_async
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import PostgresCluster, application_role, free_port
from canbao_platform.service import ServiceDefinition
from canbao_platform.telemetry import RecentSpans, setup_telemetry

_names = itertools.count(1)
T = TypeVar("T")

# Property tests: a hundred examples each in `make test`; `make fuzz` runs the same properties
# with many more (HYPOTHESIS_PROFILE=fuzz) and prints how many it tried.
# Neither profile judges by wall time (`deadline`, the too_slow health check): on a shared
# two-core machine one slow draw says nothing about the strategy, and a red run would.
_UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("default", **_UNTIMED)
settings.register_profile("fuzz", max_examples=2_000, print_blob=True, **_UNTIMED)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Settings fail closed (unset CANBAO_ENV means production, which refuses the development keys):
# the tests run as "test", and so does every process they start, unless a test says otherwise.
os.environ.setdefault("CANBAO_ENV", "test")


def _service_token_key_pair() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


# A service-token key pair of production's kind, for tests of production settings (the
# development pair is in the code, so production refuses it).
SERVICE_PRIVATE_KEY, SERVICE_PUBLIC_KEY = _service_token_key_pair()


class ServiceAuth(httpx.Auth):
    """Calls to a service's internal API as the gateway makes them: each request signed for
    `service` on behalf of a staff member (canbao_platform.service_tokens, the development key
    pair). A request that already names its Authorization keeps it."""

    def __init__(
        self, service: str, username: str = "test-clerk", role: str = "counter", scope: str = "52"
    ) -> None:
        self.service, self.caller = service, service_tokens.Caller(username, role, scope)

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        if "Authorization" not in request.headers:
            request.headers.update(caller_headers(self.service, self.caller))
        yield request


def caller_headers(
    service: str, caller: service_tokens.Caller | None = None, **fields: str
) -> dict[str, str]:
    """The Authorization header of one internal call to `service` (fields: username, role,
    scope of the staff member the gateway acts for)."""
    caller = caller or service_tokens.Caller(
        **({"username": "test-clerk", "role": "counter", "scope": "52"} | fields)
    )
    key = service_tokens.private_key(service_tokens.DEVELOPMENT_PRIVATE_KEY)
    return {"Authorization": f"Bearer {service_tokens.issue(caller, audience=service, key=key)}"}


@dataclass(frozen=True)
class Observed:
    """What the tests read the process's telemetry from."""

    spans: RecentSpans
    metrics: InMemoryMetricReader


@pytest.fixture(scope="session", autouse=True)
def observed() -> Observed:
    """OpenTelemetry has one global provider per process, and the first installed stays: the
    suite installs its own before any test, so an app's lifespan that sets telemetry up later
    (and builds providers of its own) still reports here."""
    telemetry = setup_telemetry("tests")
    assert telemetry.spans is not None
    return Observed(telemetry.spans, telemetry.metrics)


class SessionCluster(PostgresCluster):
    """The session's cluster, whose databases and roles are made over asyncpg connections
    instead of psql child processes (0.1-0.2 s each on a busy machine, several per test).

    The connections are made on an event loop of its own thread, so that synchronous code
    (fixtures, and helpers called inside a test's running loop) can wait for them. One per
    call: a connection kept open would be in the way of a test terminating backends."""

    def start(self, *, timeout: float = 30.0) -> None:
        super().start(timeout=timeout)
        self._loop = asyncio.new_event_loop()
        self._thread: threading.Thread | None = threading.Thread(
            target=self._loop.run_forever, name="test-cluster", daemon=True
        )
        self._thread.start()

    def stop(self, *, immediate: bool = False) -> None:
        if getattr(self, "_thread", None) is not None:
            assert self._thread is not None
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            self._thread = None
        super().stop(immediate=immediate)

    def create_database(self, name: str, *, template: str | None = None) -> str:
        copy = f' TEMPLATE "{template}"' if template else ""
        self.execute("postgres", f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def create_role(self, name: str) -> None:
        exists = self.fetch("postgres", "SELECT 1 FROM pg_roles WHERE rolname = $1", name)
        if not exists:
            self.execute("postgres", f'CREATE ROLE "{name}" LOGIN')

    def execute(self, database: str, sql: str) -> None:
        """Run `sql` (statements without results) in `database` as the superuser."""
        self._on_loop(self._fetch(database, sql, (), rows=False))

    def fetch(self, database: str, sql: str, *args: object) -> list[tuple[Any, ...]]:
        """The rows of one query in `database`, as the superuser."""
        return self._on_loop(self._fetch(database, sql, args))

    def _on_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _fetch(
        self, database: str, sql: str, args: tuple[object, ...], *, rows: bool = True
    ) -> list[Any]:
        connection = await asyncpg.connect(self.dsn(database))
        try:
            if not rows:
                await connection.execute(sql)
                return []
            return [tuple(row) for row in await connection.fetch(sql, *args)]
        finally:
            await connection.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[SessionCluster]:
    tmp = Path(tempfile.mkdtemp(prefix="canbao-pg-"))
    try:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        cluster = SessionCluster(tmp / "data", port=free_port(), durable=False)
        with cluster:
            yield cluster
            # Thrown away: no shutdown checkpoint (the `with` then finds it stopped).
            cluster.stop(immediate=True)
    finally:
        remove_in_background(tmp)


def remove_in_background(path: Path) -> None:
    """`rm -rf path` in a process of its own that the run does not wait for: a throwaway
    cluster holds a database per test, gigabytes in files by the end of the suite, and deleting
    them took the last test's teardown minutes."""
    subprocess.run(
        ["sh", "-c", 'rm -rf -- "$1" >/dev/null 2>&1 &', "sh", str(path)],
        check=True,
        start_new_session=True,
    )


@pytest.fixture(scope="session")
def kafka() -> Iterator[MockKafkaCluster]:
    with MockKafkaCluster(brokers=3) as cluster:
        yield cluster


@pytest.fixture
def make_database(postgres: SessionCluster) -> Callable[[], str]:
    """Create a fresh, empty database; return its SQLAlchemy (asyncpg) URL."""

    def make() -> str:
        return postgres.create_database(f"test_{os.getpid()}_{next(_names)}")

    return make


MigratedDatabase = Callable[..., Awaitable[str]]


@pytest.fixture(scope="session")
def migrated_database(postgres: SessionCluster) -> MigratedDatabase:
    """`await migrated_database(migrations, application_role=…, append_only=…)`: a fresh
    database at the newest schema of `migrations` (None: the runtime's tables alone), as
    `migrate_async` leaves it; its owner's URL.

    The migrations run once per session and set of arguments, into a template database (on an
    empty database, as a deployment runs them); each test's database is a copy of that template
    (CREATE DATABASE … TEMPLATE), instead of every migration again per test. Roles are the
    cluster's, so the grants to an application role hold in the copies too."""
    templates: dict[tuple[str, str | None, tuple[str, ...]], str] = {}

    async def make(
        migrations: Path | None,
        *,
        application_role: str | None = None,
        append_only: Sequence[str] = (),
    ) -> str:
        key = (str(migrations), application_role, tuple(append_only))
        if key not in templates:
            name = f"template_{os.getpid()}_{next(_names)}"
            url = postgres.create_database(name)
            await migrate_async(
                url, migrations, application_role=application_role, append_only=append_only
            )
            # Nobody may connect to it, or a copy would fail ("being accessed by other users").
            postgres.execute("postgres", f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            templates[key] = name
        return postgres.create_database(
            f"test_{os.getpid()}_{next(_names)}", template=templates[key]
        )

    return make


@dataclass(frozen=True)
class ServiceDatabase:
    """A service's migrated database, reached as production reaches it."""

    owner_url: str  # the migrations' role (the superuser here): for arranging and inspecting
    url: str  # the service's application role: what the service itself is given


@pytest.fixture
def make_service_database(
    postgres: SessionCluster, migrated_database: MigratedDatabase
) -> Callable[[ServiceDefinition], Awaitable[ServiceDatabase]]:
    """A fresh database migrated for `definition` by its owner, with the service's application
    role granted what it needs (canbao_platform.db.grant_application_role), as in production."""

    async def make(definition: ServiceDefinition) -> ServiceDatabase:
        role = application_role(definition.name)
        postgres.create_role(role)
        owner_url = await migrated_database(
            definition.migrations, application_role=role, append_only=definition.append_only
        )
        database = make_url(owner_url).database
        assert database is not None
        return ServiceDatabase(owner_url, postgres.url(database, user=role))

    return make


@pytest.fixture
def make_topic(kafka: MockKafkaCluster) -> Callable[..., str]:
    """Create a fresh topic with a unique name; return the name."""

    def make(prefix: str = "test", partitions: int = 3) -> str:
        name = f"{prefix}.{os.getpid()}.{next(_names)}"
        kafka.create_topic(name, partitions)
        return name

    return make
