"""The whole path on the local parts: source rows → Debezium → identity → matching, until every
person has a verdict; and Debezium alone on the same rows as the ceiling.

    uv run --frozen python -m bench.pipeline [--sizes 10000 100000] [--consumers 1] [--builders 1]
                                             [--rebuilders 0] [--statements 25]
                                             [--registry-memory 6GB]

Per size, everything fresh and on this machine: two throwaway PostgreSQL servers (wal_level=logical,
fsync off), one for the identity and matching databases, created and migrated as the local stack
does (canbao_stack.local: the owner migrates, each service connects as its own login role), one
for `sources`, as in production, where the business systems are other departments' databases:
a Debezium snapshot holds one transaction open for its whole length, and in a shared server that
would hold back vacuum in every database (a snapshot sees every transaction of the server), so
identity's queue tables would keep every dead row until the snapshot ends. N people of the demo
population generator (seed 1) are loaded into the source tables first, not timed (the rows
printed are the change events a snapshot makes: one per row).

* **Debezium alone**: the bridge exactly as the local stack starts it (`python -m
  canbao_stack.cdc`, backpressure watching group "identity") on a fresh test broker (3 brokers,
  the contract topics), and one counting consumer reading and committing as group "identity"
  (bench/cdc.py's). The ceiling's rate is measured from the bridge's start to the last event, as
  the pipeline's (JVM start-up included in both); from its first event, as bench/cdc.py
  measures it, in brackets.
* **pipeline**: a second fresh broker, so no source offsets: the bridge (again as the stack starts
  it, its replication slot dropped after the first run) takes a new snapshot of the same rows.
  Identity runs as a province deploys it (architecture.md "Scale": scale out by processes):
  `--consumers` processes of `uvicorn canbao_identity.app:create` with IDENTITY_ROLES=consume and
  `--builders` with IDENTITY_ROLES=build (they resolve in shares and rebuild with SKIP LOCKED)
  and `--rebuilders` with IDENTITY_ROLES=rebuild (they only rebuild);
  matching as one `uvicorn canbao_matching.app:create`. The services are up (/readyz) before the
  clock starts at the bridge's start; it stops at the first of two polls 0.5 s apart that agree,
  with nothing changing in between, that: identity's cdc consumers have handled every change event
  and see no lag, identity has nothing staged, no person pending and nothing left in its outbox,
  matching's consumer sees no lag and has handled as many events as identity published on the
  topics it reads (their end offsets), it has nobody pending and nothing in its outbox, and it has
  evaluated as many people as identity has persons (services' /readyz JSON and SQL counts on their
  databases, as a benchmark may). When each of those stages was first seen done is printed too:
  where the time went; and the work done on the way (golden records rebuilt, events published,
  evaluations per person: the amplification of a per-table snapshot).

CPU µs per event is each process's CPU time (/proc) over the run divided by the change events:
the bridge (its JVM included, start-up and all), identity's consumers and builder and matching
(from when they were up), each PostgreSQL server's backends (those still alive at the end: the
registry's: the services' pools, autovacuum; the sources': the snapshot's reads, the bridge's
replication connection) and this process, which hosts the test
broker (librdkafka's mock cluster runs in-process) besides polling. Peak RSS is each process's
VmHWM. The correctness guard compares identity's persons with the generator's people (one
each) and matching's verdicts with the people the generator expects to have one (in scope or
deceased), and counts dead letters: a fast wrong run shows there. The test broker keeps ~5 MiB
per partition: the topics matching reads get a partition per KIB_PER_PARTITION KiB expected,
and a run where the broker evicted any event before it was read (the bridge's backpressure
status, the beginning offsets of matching's topics) is void and says so. The load average is printed
with each size: the machine's two cores are shared and every figure moves with it.

The registry's server has the local cluster's memory (256 MB of shared buffers, a checkpoint per
GB of WAL) unless `--registry-memory` gives it a production server's share of the machine: at
10^6 people its databases outgrow 256 MB and every statement pays for pages copied from the
operating system's cache. The setting is printed at the top, so two runs are compared knowingly.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.cdc import Counter
from bench.identity import WORK_LEFT, count_rows
from bench.processes import (
    children_of,
    cpu_seconds,
    cpu_since,
    machine_facts,
    memory_kib,
    postmaster,
    start,
    wait_up,
)
from canbao_contracts.topics import ALL_TOPICS, CDC_TOPICS, COLLECTIONS, FACTS, PERSONS
from canbao_identity.app import CDC_GROUP
from canbao_platform.local.broker import MockKafkaCluster
from canbao_platform.local.postgres import SERVICES_SERVER_SETTINGS, PostgresCluster, free_port
from canbao_stack.cdc.config import BridgeConfig
from canbao_stack.local import LocalStack, StackConfig, ensure_database
from canbao_stack.simulators import SCHEMA_SQL
from canbao_stack.simulators.population import seed

SEED = 1
POLL_S = 0.5
STALLED_S = 600.0  # no event handled anywhere for this long: the run has stalled
PROGRESS_EVERY_S = 60.0  # a line on a long run's progress
SLOT = BridgeConfig(bootstrap_servers="").slot_name  # the bridge's default, as the stack runs it
MATCHING_STATE = """
SELECT count(*) FILTER (WHERE evaluated_at IS NOT NULL AND state IS NOT NULL
                        AND merged_into IS NULL) AS evaluated,
       count(*) FILTER (WHERE verdict IS NOT NULL) AS verdicts,
       EXISTS (SELECT FROM persons WHERE pending) OR EXISTS (SELECT FROM outbox) AS work_left
FROM persons
"""
# The generator's truth: who should get a verdict (matching gives the dead one too).
EXPECTED = """
SELECT count(*) AS people, count(*) FILTER (WHERE in_scope OR deceased) AS with_verdict
FROM simulator.expected_outcome WHERE seed = $1
"""


@dataclass(frozen=True)
class Topology:
    """How many identity processes of each role (IDENTITY_ROLES) the pipeline runs."""

    consumers: int = 1
    builders: int = 1
    rebuilders: int = 0


@dataclass
class Usage:
    """One process's (or group's) CPU seconds over the run and peak RSS (KiB; 0: not shown)."""

    cpu_s: float
    peak_kib: int = 0


@dataclass
class Ceiling:
    events: int
    from_start: float  # events/s from the bridge's start to the last event
    from_first: float  # events/s from the first event to the last (bench/cdc.py's measure)
    bridge: Usage


@dataclass
class Run:
    events: int
    seconds: float
    usage: dict[str, Usage]
    state: dict[str, int] = field(default_factory=dict)
    milestones: dict[str, float] = field(default_factory=dict)  # stage → s from the start
    partitions: dict[str, int] = field(default_factory=dict)  # of the topics matching reads


def _libpq(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_kib(pid: int | None) -> int:
    try:
        return memory_kib(pid).get("VmHWM", 0) if pid is not None else 0
    except OSError:
        return 0


async def prepare(stack: LocalStack, people: int) -> tuple[int, int]:
    """The databases as the stack makes them, N people in `sources`: (rows, seconds to load)."""
    await ensure_database(stack.sources_server_dsn, "sources")
    for name in ("identity", "matching"):
        await ensure_database(stack.server_dsn, name)
    connection = await asyncpg.connect(stack.sources_dsn)
    try:
        await connection.execute(SCHEMA_SQL.read_text())
    finally:
        await connection.close()
    for service in ("identity", "matching"):
        await stack.migrate(service)
    report = await seed(stack.sources_dsn, people, SEED, loaders=2 if people >= 100_000 else 1)
    return await count_rows(stack.sources_dsn), round(report.seconds)


async def debezium_alone(
    stack: LocalStack, sources: PostgresCluster, rows: int, log_dir: Path
) -> Ceiling:
    """The bridge and a counting consumer on a broker of their own; the slot dropped after."""
    with MockKafkaCluster(brokers=3) as kafka:
        kafka.create_topics(ALL_TOPICS)
        counter = Counter(kafka.bootstrap_servers, [t.name for t in CDC_TOPICS], CDC_GROUP)
        await counter.start()
        bridge = stack.cdc_bridge(kafka.bootstrap_servers, log_dir / "alone")
        launched = time.monotonic()
        await bridge.start()
        try:
            first = await counter.reached(1)
            last = await counter.reached(rows, within_s=STALLED_S + rows / 100)
            pids = [bridge.pid] if bridge.pid is not None else []
            usage = Usage(sum(cpu_seconds(pids).values()), _peak_kib(bridge.pid))
        finally:
            await bridge.stop()
            await counter.stop()
    sources.psql("postgres", f"SELECT pg_drop_replication_slot('{SLOT}')")
    return Ceiling(rows, rows / (last - launched), rows / (last - first), usage)


async def pipeline(
    stack: LocalStack,
    servers: dict[str, PostgresCluster],
    people: int,
    rows: int,
    topology: Topology,
    log_dir: Path,
) -> Run:
    with MockKafkaCluster(brokers=3) as kafka:
        matched = MatchedTopics(kafka.bootstrap_servers, people)
        kafka.create_topics(t for t in ALL_TOPICS if t.name not in matched.partitions)
        for name, partitions in matched.partitions.items():
            kafka.create_topic(name, partitions)
        common = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "CANBAO_ENV": "development"}
        identity = common | {"IDENTITY_DATABASE_URL": stack.application_url("identity")}
        wanted = [
            (
                f"identity consume {i + 1}",
                "canbao_identity.app:create",
                identity | {"IDENTITY_ROLES": "consume"},
            )
            for i in range(topology.consumers)
        ]
        wanted += [
            (f"identity build {i + 1}", "canbao_identity.app:create", identity | _BUILD)
            for i in range(topology.builders)
        ]
        wanted += [
            (f"identity rebuild {i + 1}", "canbao_identity.app:create", identity | _REBUILD)
            for i in range(topology.rebuilders)
        ]
        wanted += [
            (
                "matching",
                "canbao_matching.app:create",
                common | {"MATCHING_DATABASE_URL": stack.application_url("matching")},
            ),
        ]
        services: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
        bridge = stack.cdc_bridge(kafka.bootstrap_servers, log_dir / "pipeline")
        try:
            for name, factory, env in wanted:
                services[name] = start(name.replace(" ", "-"), factory, env, log_dir)
            for _, url in services.values():
                await wait_up(url, 120, path="/readyz")
            pids = {name: [process.pid] for name, (process, _) in services.items()}
            before = {name: cpu_seconds(p) for name, p in pids.items()}
            backends_before = {
                name: cpu_seconds(children_of(postmaster(server)))
                for name, server in servers.items()
            }
            own_before = _own_cpu_s()
            started = time.monotonic()
            await bridge.start()
            finished, state, milestones = await until_every_verdict(
                stack, services, matched, rows, topology.consumers, started
            )
            usage = {
                "bridge": Usage(sum(cpu_seconds([bridge.pid or 0]).values()), _peak_kib(bridge.pid))
            }
            for name, p in pids.items():
                usage[name] = Usage(cpu_since(before[name], p), _peak_kib(p[0]))
            for name, server in servers.items():
                backends = children_of(postmaster(server))
                usage[f"postgres ({name})"] = Usage(cpu_since(backends_before[name], backends))
            usage["broker + this process"] = Usage(
                _own_cpu_s() - own_before,
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            )
            state |= _bridge_status(stack)
        finally:
            await bridge.stop()
            for process, _ in services.values():
                process.terminate()
            for process, _ in services.values():
                await asyncio.to_thread(process.wait, 30)
    return Run(rows, finished - started, usage, state, milestones, matched.partitions)


BRIDGE_DONE = "the bridge published every event (its status file: every 5 s)"
CONSUMED = "identity's consumers handled every event"
BUILT = "identity built and published every person"
MATCHING_CONSUMED = "matching's consumer handled all identity published"
EVALUATED = "matching evaluated every person"


def _builders(checks: dict[str, Any]) -> list[dict[str, Any]]:
    """The /readyz check of every builder process's builder, resolving or rebuild-only."""
    return [
        c.get("identity.builder") or c["identity.rebuilder"]
        for name, c in checks.items()
        if name.startswith(("identity build", "identity rebuild"))
    ]


_BUILD = {"IDENTITY_ROLES": "build"}
_REBUILD = {"IDENTITY_ROLES": "rebuild"}
MATCHED = (PERSONS, FACTS, COLLECTIONS)  # the topics matching consumes (canbao_matching.app)
# The test broker keeps ~5 MiB per partition and evicts the oldest (canbao_platform.local.broker);
# a real cluster keeps days. Matching reads behind identity during a snapshot, so each topic it
# reads gets a partition per this many KiB expected on it: per person of the demo population
# identity publishes 1.00 person event (at most ~1 KiB) and 3.80 facts (at most ~1 KiB each, in
# one FactsAsserted per rebuild; measured at 10^4 and 10^6), and no collections. More partitions
# than needed are not free: every consumer fetch and every producer batch visits them, a cost a
# real cluster's few dozen partitions per topic do not have. Too few void the run (`evicted`).
KIB_PER_PARTITION = 4_000
KIB_PER_PERSON = {PERSONS.name: 1.2, FACTS.name: 4.5, COLLECTIONS.name: 0.0}


class MatchedTopics:
    """What identity published on the topics matching consumes, read from the broker: each
    topic is new, so its end offsets count its messages, and a beginning offset above 0 is a
    message the broker evicted (the run is then void)."""

    def __init__(self, bootstrap: str, people: int) -> None:
        self.partitions = {
            t.name: max(
                t.partitions, math.ceil(people * KIB_PER_PERSON[t.name] / KIB_PER_PARTITION)
            )
            for t in MATCHED
        }
        self._offsets = AIOKafkaConsumer(bootstrap_servers=bootstrap)  # no group: offsets only
        self._all = [TopicPartition(t, p) for t, n in self.partitions.items() for p in range(n)]

    async def start(self) -> None:
        await self._offsets.start()

    async def stop(self) -> None:
        await self._offsets.stop()

    async def published(self) -> int:
        return sum((await self.published_per_topic()).values())

    async def published_per_topic(self) -> dict[str, int]:
        ends = await self._offsets.end_offsets(self._all)
        return {t: sum(n for tp, n in ends.items() if tp.topic == t) for t in self.partitions}

    async def evicted(self) -> int:
        return sum((await self._offsets.beginning_offsets(self._all)).values())


MILESTONES = (BRIDGE_DONE, CONSUMED, BUILT, MATCHING_CONSUMED, EVALUATED)


async def until_every_verdict(
    stack: LocalStack,
    services: dict[str, tuple[Any, str]],
    matched: MatchedTopics,
    rows: int,
    consumers: int,
    started: float,
) -> tuple[float, dict[str, int], dict[str, float]]:
    """When every person identity made has matching's verdict and nothing is left anywhere: the
    first of two consecutive polls that find it so with the same counts. Also when each stage
    (MILESTONES) was first seen done, in seconds from `started`."""
    identity_db = await asyncpg.connect(_libpq(stack.application_url("identity")))
    matching_db = await asyncpg.connect(_libpq(stack.application_url("matching")))
    await matched.start()
    previous: tuple[float, dict[str, int]] | None = None
    milestones: dict[str, float] = {}
    moved, moved_at, said = -1, time.monotonic(), 0.0
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            while time.monotonic() - moved_at < STALLED_S:
                now = time.monotonic()
                reached, handled, state = await _state(
                    http, stack, services, matched, identity_db, matching_db, rows, consumers
                )
                if handled != moved:
                    moved, moved_at = handled, now
                if (now - started) // PROGRESS_EVERY_S > said:
                    said = (now - started) // PROGRESS_EVERY_S
                    done = "; ".join(m for m in MILESTONES if m in reached) or "none yet"
                    print(
                        f"  after {said:.0f} min: {handled:,} events handled by identity's "
                        f"consumers and matching's; done: {done}",
                        flush=True,
                    )
                for stage in MILESTONES:  # in their order, whenever first seen
                    if stage in reached:
                        milestones.setdefault(stage, now - started)
                if state is None:
                    previous = None
                elif previous is not None and previous[1] == state:
                    return previous[0], previous[1], milestones
                else:
                    previous = (now, state)
                await asyncio.sleep(POLL_S)
    finally:
        await matched.stop()
        await identity_db.close()
        await matching_db.close()
    raise TimeoutError(f"no event handled for {STALLED_S:.0f} s: the pipeline has stalled")


async def _state(
    http: httpx.AsyncClient,
    stack: LocalStack,
    services: dict[str, tuple[Any, str]],
    matched: MatchedTopics,
    identity_db: asyncpg.Connection,
    matching_db: asyncpg.Connection,
    rows: int,
    consumers: int,
) -> tuple[set[str], int, dict[str, int] | None]:
    """Which MILESTONES are reached, the events handled by identity's cdc consumers and matching's
    (progress), and the counts that must stand still at the end (None while work is visibly
    left). The cheap health checks first, the SQL only once identity's consumers have caught up;
    the bridge's published count from its status file."""
    reached = {BRIDGE_DONE} if _bridge_status(stack).get("bridge_events", 0) >= rows else set()
    checks = {
        name: (await http.get(f"{url}/readyz")).json()["checks"]
        for name, (_, url) in services.items()
    }
    cdc = [checks[f"identity consume {i + 1}"][CDC_GROUP] for i in range(consumers)]
    handled = sum(c["processed"] + c["duplicates"] + c["dead_lettered"] for c in cdc)
    matching = checks["matching"]["matching"]
    progress = handled + matching["processed"] + matching["duplicates"]
    if handled < rows or any(c["lag_total"] for c in cdc):
        return reached, progress, None
    reached.add(CONSUMED)
    # The builders' own count of their backlog first (measured at most every second, at most 1%
    # of their time): the exact look in the queue tables walks their dead rows, ~30 ms a look
    # at 10^5 people, charged to PostgreSQL's figure below.
    builders = _builders(checks)
    if any(b["staged"] or b["pending_persons"] for b in builders):
        return reached, progress, None
    if await identity_db.fetchval(str(WORK_LEFT)):
        return reached, progress, None
    reached.add(BUILT)
    # On the topics matching consumes: identity publishes registry.units too.
    published = await matched.published()
    if matching["lag_total"] or matching["processed"] + matching["duplicates"] < published:
        return reached, progress, None
    reached.add(MATCHING_CONSUMED)
    verdicts = await matching_db.fetchrow(MATCHING_STATE)
    persons = await identity_db.fetchval("SELECT count(*) FROM persons")
    if verdicts["work_left"] or verdicts["evaluated"] != persons or not persons:
        return reached, progress, None
    reached.add(EVALUATED)
    evaluator = checks["matching"]["matching.evaluator"]
    return (
        reached,
        progress,
        {
            "handled": handled,
            "persons": persons,
            "evaluated": verdicts["evaluated"],
            "verdicts": verdicts["verdicts"],
            "matching_handled": matching["processed"],
            "rebuilt": sum(b["rebuilt"] for b in builders),
            "identity_published": published,
            "evaluations": evaluator["evaluated"],
            "verdict_changes": evaluator["published"],
            "identity_dead_letters": sum(c["dead_lettered"] for c in cdc),
            "matching_dead_letters": matching["dead_lettered"],
            "matching_evicted": await matched.evicted(),
            **{f"published {t}": n for t, n in (await matched.published_per_topic()).items()},
        },
    )


def _bridge_status(stack: LocalStack) -> dict[str, int]:
    """What the bridge says it published, and whether the broker dropped any event unread."""
    path = stack.config.state_dir.resolve() / "cdc-status.json"
    try:
        status = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    evicted = (status.get("backpressure") or {}).get("evicted_unread") or 0
    return {"bridge_events": int(status.get("events", 0)), "evicted_unread": int(evicted)}


# Where the registry's PostgreSQL time goes (--statements): its statements by time spent.
STATEMENTS = """
SELECT d.datname AS database, s.calls, s.total_exec_time / 1000 AS seconds,
       regexp_replace(s.query, '\\s+', ' ', 'g') AS query
FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
ORDER BY s.total_exec_time DESC LIMIT $1
"""
_WATCHED = {"shared_preload_libraries": "pg_stat_statements", "pg_stat_statements.max": "2000"}


def registry_settings(memory: str | None, statements: int) -> dict[str, str]:
    """The registry server's settings beyond the local cluster's: those of a server of the
    services' databases (as the local stack's), pg_stat_statements when watched, and with
    `memory` (e.g. "6GB") the memory and WAL of a server sized for its data rather than a
    laptop's 256 MB of shared buffers: `memory` of shared buffers, WAL kept between checkpoints
    by time, not forced every GB of a first load's writes."""
    settings = SERVICES_SERVER_SETTINGS | (_WATCHED if statements else {})
    if memory:
        settings.update(
            shared_buffers=memory,
            effective_cache_size=memory,
            max_wal_size="16GB",
            checkpoint_timeout="15min",
            wal_buffers="64MB",
        )
    return settings


async def _statements_reset(registry: PostgresCluster) -> None:
    connection = await asyncpg.connect(registry.dsn("postgres"))
    try:
        await connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await connection.execute("SELECT pg_stat_statements_reset()")
    finally:
        await connection.close()


async def _print_statements(registry: PostgresCluster, top: int, rows: int) -> None:
    """The `top` statements of the pipeline's run by the registry server's time executing them
    (pg_stat_statements: execution only, not parsing, planning or the wire)."""
    connection = await asyncpg.connect(registry.dsn("postgres"))
    try:
        found = await connection.fetch(STATEMENTS, top)
        total = await connection.fetchval(
            "SELECT sum(total_exec_time) / 1000 FROM pg_stat_statements"
        )
    finally:
        await connection.close()
    print(
        f"  registry statements by execution time (all: {total:.1f} s, "
        f"{1e6 * total / rows:,.0f} µs/event):"
    )
    print(f"  {'database':<9} {'calls':>10} {'s':>7} {'µs/event':>8} {'µs/call':>8}  statement")
    for s in found:
        print(
            f"  {s['database']:<9} {s['calls']:>10,} {s['seconds']:>7.1f} "
            f"{1e6 * s['seconds'] / rows:>8,.1f} {1e6 * s['seconds'] / s['calls']:>8,.1f}  "
            f"{s['query'][:100]}"
        )


async def run_size(
    people: int, topology: Topology, statements: int, memory: str | None, tmp: Path
) -> None:
    registry = PostgresCluster(
        tmp / f"pg-{people}",
        port=free_port(),
        durable=False,
        settings=registry_settings(memory, statements),
    )
    sources = PostgresCluster(tmp / f"pg-sources-{people}", port=free_port(), durable=False)
    with registry, sources:
        state_dir = tmp / f"state-{people}"
        state_dir.mkdir(mode=0o755)
        config = StackConfig(
            state_dir=state_dir,
            postgres_port=registry.port,
            kafka_bootstrap_servers=None,
            postgres_server=None,
            sources_server=f"postgresql://{sources.user}@127.0.0.1:{sources.port}",
        )
        stack = LocalStack(config)
        load = os.getloadavg()[0]
        print(f"\n{people:,} people (load average {load:.1f} before the size)", flush=True)
        rows, load_s = await prepare(stack, people)
        expected = await _expected(stack)
        print(
            f"  loaded {rows:,} source rows (= change events of a snapshot) in {load_s} s, "
            f"{rows / people:.1f} per person",
            flush=True,
        )
        logs = state_dir / "logs"
        ceiling = await debezium_alone(stack, sources, rows, logs)
        print(
            f"  Debezium alone: {ceiling.from_start:,.0f} events/s from the bridge's start "
            f"({ceiling.from_first:,.0f} from its first event); bridge "
            f"{1e6 * ceiling.bridge.cpu_s / rows:,.0f} µs CPU/event, peak RSS "
            f"{ceiling.bridge.peak_kib / 1024:,.0f} MiB "
            f"(load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        servers = {"registry": registry, "sources": sources}
        if statements:
            await _statements_reset(registry)
        run = await pipeline(stack, servers, people, rows, topology, logs)
        rate = rows / run.seconds
        print(
            f"  pipeline: {run.seconds:.1f} s, {rate:,.0f} events/s "
            f"(load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        print(f"  {'process':<24} {'CPU s':>7} {'µs/event':>9} {'peak RSS':>9}")
        for name, usage in run.usage.items():
            peak = f"{usage.peak_kib / 1024:>5,.0f} MiB" if usage.peak_kib else f"{'-':>9}"
            print(f"  {name:<24} {usage.cpu_s:>7.1f} {1e6 * usage.cpu_s / rows:>9,.0f} {peak}")
        total = sum(u.cpu_s for u in run.usage.values())
        print(
            f"  {'all':<24} {total:>7.1f} {1e6 * total / rows:>9,.0f}   "
            f"({total / run.seconds:.2f} of the 2 cores busy on average)"
        )
        print(
            "  stages done, from the bridge's start: "
            + "; ".join(f"{stage} {at:.1f} s" for stage, at in run.milestones.items())
        )
        if statements:
            await _print_statements(registry, statements, rows)
        s = run.state
        print(
            f"  work: identity rebuilt {s['rebuilt']:,} golden records "
            f"({s['rebuilt'] / people:.1f} per person), published {s['identity_published']:,} "
            f"events ({s['identity_published'] / people:.1f} per person); matching handled "
            f"{s['matching_handled']:,}, evaluated {s['evaluations']:,} times "
            f"({s['evaluations'] / people:.1f} per person), published "
            f"{s['verdict_changes']:,} verdict changes"
        )
        print(
            "  topics matching reads: "
            + ", ".join(
                f"{t} {s[f'published {t}']:,} events ({s[f'published {t}'] / people:.2f} per "
                f"person) on {n:,} partitions"
                for t, n in run.partitions.items()
            )
        )
        print(
            f"  guard: identity made {s['persons']:,} persons of the generator's "
            f"{expected['people']:,} people; matching evaluated {s['evaluated']:,}, "
            f"{s['verdicts']:,} verdicts of {expected['with_verdict']:,} expected; "
            f"bridge published {s.get('bridge_events', 0):,} of {rows:,} events, "
            f"{s.get('evicted_unread', 0)} evicted unread; identity published "
            f"{s['identity_published']:,} on {sum(run.partitions.values())} partitions, "
            f"{s['matching_evicted']} evicted before matching read them; dead letters: identity "
            f"{s['identity_dead_letters']}, matching {s['matching_dead_letters']}"
        )
        if s["matching_evicted"] or s.get("evicted_unread"):
            raise RuntimeError("the test broker evicted events before they were read: void run")
        print(
            f"pipeline {people} people: {run.seconds:.1f} s, {rows} events, {rate:.0f} "
            f"events/s, Debezium alone {ceiling.from_start:.0f} events/s, "
            f"ratio {rate / ceiling.from_start:.2f}",
            flush=True,
        )


async def _expected(stack: LocalStack) -> dict[str, int]:
    connection = await asyncpg.connect(stack.sources_dsn)
    try:
        return dict(await connection.fetchrow(EXPECTED, SEED))
    finally:
        await connection.close()


async def main(sizes: list[int], topology: Topology, statements: int, memory: str | None) -> None:
    sharing = (
        f"the bridge, {topology.consumers} identity consumer process(es), {topology.builders} "
        f"identity builder process(es), {topology.rebuilders} rebuild-only, matching, this "
        "process (the broker)"
    )
    print(machine_facts(sharing), flush=True)
    print(
        f"registry server: shared_buffers {memory}, max_wal_size 16GB (--registry-memory)"
        if memory
        else "registry server: the local cluster's shared_buffers 256MB, max_wal_size 1GB",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="canbao-bench-") as tmp:
        os.chmod(tmp, 0o755)  # the server may run as the `postgres` user
        for people in sizes:
            await run_size(people, topology, statements, memory, Path(tmp))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--consumers", type=int, default=1, help="identity processes with IDENTITY_ROLES=consume"
    )
    parser.add_argument(
        "--builders", type=int, default=1, help="identity processes with IDENTITY_ROLES=build"
    )
    parser.add_argument(
        "--rebuilders", type=int, default=0, help="identity processes with IDENTITY_ROLES=rebuild"
    )
    parser.add_argument(
        "--statements",
        type=int,
        default=0,
        metavar="N",
        help="print the registry's N most time-consuming statements (pg_stat_statements)",
    )
    parser.add_argument(
        "--registry-memory",
        metavar="SIZE",
        help="run the registry's server with SIZE (e.g. 6GB) of shared buffers and a larger WAL",
    )
    arguments = parser.parse_args()
    asyncio.run(
        main(
            arguments.sizes,
            Topology(arguments.consumers, arguments.builders, arguments.rebuilders),
            arguments.statements,
            arguments.registry_memory,
        )
    )
