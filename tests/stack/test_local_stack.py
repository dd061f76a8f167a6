"""`make run` end to end: the whole stack comes up on a fresh state directory, reports where to
look, serves every service, carries the demo data through Debezium, identity and matching (a
change in a source table becomes a new verdict) and names the demo's employers on reporting's
list, serves the counter page on which a clerk, in a real browser, fills in a missing phone,
which a second account passes (复核) and the popup then shows applied
(tests/stack/counter_browser.py), stops cleanly on Ctrl-C and resumes with its data on the next
run."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openpyxl
from aiokafka import AIOKafkaConsumer

from canbao_contracts.topics import STATUSES
from canbao_platform.local.postgres import free_port
from canbao_stack.simulators.population import seed as seed_population
from canbao_stack.simulators.store import load_expected
from tests.gateway.test_popup_ground_truth import disagreements
from tests.stack.counter_browser import (
    a_number_nobody_holds,
    counter_page_round_trip,
    person_missing_a_phone,
)

SERVICES = ("gateway", "identity", "matching", "survey", "reporting")
READY_WITHIN_S = 300


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports, from a random start: stacks of
    tests run at the same moment (by other checkouts on the machine) pick different ones. Below
    the kernel's ephemeral range: the stack binds the last of them a minute after they were
    found free, and meanwhile any outgoing connection (its own clients' too) may be given one
    from that range."""
    bases = list(range(12000, _ephemeral_ports_start() - count, 97))
    random.shuffle(bases)
    for base in bases:
        ports_free = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ports_free = False
                    break
        if ports_free:
            return base
    raise RuntimeError("no run of free ports")


def _ephemeral_ports_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


class Stack:
    def __init__(
        self,
        state_dir: Path,
        postgres_port: int,
        gateway_port: int,
        *,
        people: int = 300,
        seed: int = 5,
        options: tuple[str, ...] = (),
    ) -> None:
        self.state_dir = state_dir
        self.postgres_port = postgres_port
        self.gateway_port = gateway_port
        self.output: list[str] = []
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CANBAO_POSTGRES")
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "canbao_stack.cli",
                "run",
                "--state-dir",
                str(state_dir),
                "--postgres-port",
                str(postgres_port),
                "--gateway-port",
                str(gateway_port),
                "--people",
                str(people),
                "--seed",
                str(seed),
                *options,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,  # its own process group: `abandon` reaches every child
        )

    def wait_for(self, text: str, within_s: float = READY_WITHIN_S) -> None:
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line:
                self.output.append(line.rstrip())
                if text in line:
                    return
            elif self.process.poll() is not None:
                break
            else:
                time.sleep(0.2)
        raise AssertionError(f"never saw {text!r}; output:\n" + "\n".join(self.output[-60:]))

    def read_available(self) -> None:
        """Whatever the console printed since the last read, into `output`."""
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        while line := self.process.stdout.readline():
            self.output.append(line.rstrip())

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        self.wait_for("stopped", within_s=120)
        return self.process.wait(timeout=60)

    def abandon(self) -> None:
        """After a failure: stop the stack as Ctrl-C would, else kill its whole process group,
        so no service, bridge or database outlives the test."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=60)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)


@dataclass(frozen=True)
class RunningStack:
    """A stack `fresh_stack` started: where its parts answer."""

    stack: Stack
    state: Path
    postgres_port: int
    gateway: str  # the gateway's base URL
    sources: str  # the source systems' database (libpq URL)
    national: str  # the stand-in national registry's base URL (canbao_stack.national)


@contextlib.contextmanager
def fresh_stack(
    prefix: str,
    logs: tuple[str, ...] = ("gateway", "identity", "survey"),
) -> Iterator[RunningStack]:
    """`make run` on a fresh state directory, ready ("Where to look"), for a scenario on the
    public interface; stopped with Ctrl-C after it, which must exit 0. A scenario that fails
    prints the tail of the `logs` of those components (what an operator reads first)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the `postgres` user when we are root
        # The services, identity-builder's, the national registry's (StackConfig.national_port).
        postgres_port, gateway_port = free_port(), free_port_run(len(SERVICES) + 2)
        state = Path(tmp) / "state"
        stack = Stack(state, postgres_port, gateway_port)
        try:
            stack.wait_for("Where to look")
            try:
                yield RunningStack(
                    stack,
                    state,
                    postgres_port,
                    f"http://127.0.0.1:{gateway_port}",
                    f"postgresql://canbao@127.0.0.1:{postgres_port}/sources",
                    f"http://127.0.0.1:{gateway_port + len(SERVICES) + 1}",
                )
            except AssertionError:
                for name in logs:
                    log = (state / "logs" / f"{name}.log").read_text(errors="replace")
                    print(f"--- {name}.log (tail)\n" + "\n".join(log.splitlines()[-40:]))
                raise
            assert stack.interrupt() == 0
        finally:
            stack.abandon()


async def a_source_change_reaches_a_new_verdict(sources: str, bootstrap: str) -> float:
    """Suspend one paying employee-pension enrolment in si_core.ac02 (as the social insurance
    system would) once the demo's verdicts flow, and wait for that person's new verdict on
    registry.statuses: Debezium → identity → matching, every part real. Returns the delay from
    the source commit to the verdict's publication."""
    consumer = AIOKafkaConsumer(
        STATUSES.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        first = await asyncio.wait_for(consumer.getone(), timeout=180)  # the demo's verdicts
        assert json.loads(first.value)["verdict"]["statuses"]
        connection = await asyncpg.connect(sources)
        try:
            changed_at = await connection.fetchval(
                # Someone whose pension status is 11 by the ground truth, so it must change.
                "UPDATE si_core.ac02 SET aac008 = '2', updated_at = now() "
                "WHERE (aac001, aae140, aab301) = (SELECT c.aac001, c.aae140, c.aab301 "
                "  FROM si_core.ac02 c JOIN si_core.ac01 p USING (aac001) "
                "  JOIN simulator.expected_outcome e ON e.id_number = upper(p.aac002) "
                "  WHERE c.aae140 = '110' AND c.aac008 = '1' AND NOT e.deceased "
                "  AND e.statuses->>'pension' = '11' ORDER BY c.aac001 LIMIT 1) "
                "RETURNING now()"
            )
        finally:
            await connection.close()
        assert changed_at is not None, "the demo population has no paying employee pension"

        async def new_verdict() -> float:
            async for record in consumer:
                event = json.loads(record.value)
                if "verdict" not in event:  # a StatusesWithdrawn: someone left the scope
                    continue
                observed = event["source_observed_at"]
                if observed and datetime.fromisoformat(observed) >= changed_at.replace(
                    microsecond=0
                ):
                    assert "statuses" in event["changed"], event["changed"]
                    return record.timestamp - datetime.fromisoformat(observed).timestamp() * 1000
            raise AssertionError("the consumer stopped")

        return await asyncio.wait_for(new_verdict(), timeout=120)
    finally:
        await consumer.stop()


async def server_setting(dsn: str, name: str) -> str:
    connection = await asyncpg.connect(dsn)
    try:
        return str(await connection.fetchval(f"SHOW {name}"))
    finally:
        await connection.close()


async def touch_every_row(sources: str) -> None:
    """A busy day in the business systems: every row of the biggest tables updated once."""
    connection = await asyncpg.connect(sources)
    try:
        for table in ("si_core.ac01", "si_core.ac02", "hukou.person", "medical.insured"):
            await connection.execute(f"UPDATE {table} SET updated_at = now()")
    finally:
        await connection.close()


async def newcomers_reach_the_popup(
    sources: str, gateway: str, *, people: int, seed: int, within_s: float = 300
) -> list[str]:
    """Seed `people` more people into the source tables and ask the counter popup for each
    until every one agrees with the generator's ground truth; what still disagrees at the end."""
    libpq = sources
    known = set(await load_expected(libpq))
    await seed_population(libpq, people, seed, loaders=1)
    added = {k: v for k, v in (await load_expected(libpq)).items() if k not in known}
    assert len(added) == people
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        login = await client.post(
            "/api/v1/auth/token", data={"username": "demo-counter", "password": "demo"}
        )
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        deadline, wrong = time.monotonic() + within_s, ["not asked yet"]
        while wrong and time.monotonic() < deadline:
            wrong = [w for person in added.values() for w in await popup_wrong(client, person)]
            if wrong:
                await asyncio.sleep(5)
    return wrong


async def popup_wrong(client: httpx.AsyncClient, person: dict[str, Any]) -> list[str]:
    document = person["document"]
    if document is None:
        number, params = person["id_number"], {}
    else:
        number, params = document["number"], {"document_type": document["type"]}
    response = await client.get(f"/api/v1/counter/popup/{number}", params=params)
    label = f"{person['person_key']} ({person['situation']})"
    if response.status_code != 200:
        return [f"{label}: {response.status_code} {response.json().get('type')}"]
    popup = response.json()
    if popup["verdict_pending"]:
        return [f"{label}: verdict pending"]
    return [f"{label}: {d}" for d in disagreements(person, popup)]


def the_analyst_reads_the_quarter(gateway: str, sources: str) -> None:
    """demo-analyst reads the current quarter's basic-data table (provisional, as of now),
    counted by reporting from the verdicts the demo's people got: its total column 1 is the
    generator's living household population and column 7 those of them needing a survey; every
    check passes; the people behind a number are as many as it says; the CSV and the workbook
    say the same. Verdicts still reach reporting (the source change made just before), so the
    table, its lists and its exports are compared only as read at one moment: the table read
    again after them must be unchanged, else everything is read again."""
    expected = asyncio.run(load_expected(sources)).values()
    household = [p for p in expected if p["household_registered"] and not p["deceased"]]
    truth = {"1": len(household), "7": sum(p["registration"] != "confirmed" for p in household)}
    now = datetime.now(UTC) + timedelta(hours=8)  # quarters run in China time
    table = f"{gateway}/api/v1/reports/quarterly/{now.year}Q{(now.month - 1) // 3 + 1}"
    with httpx.Client(timeout=30) as client:
        login = client.post(
            f"{gateway}/api/v1/auth/token", data={"username": "demo-analyst", "password": "demo"}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        deadline, total = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            body = client.get(table, headers=headers).json()
            total = body.get("rows", [{}])[-1].get("columns", {})
            if {c: total.get(c) for c in truth} == truth:
                reading = read_the_quarter(client, table, headers, body)
                if client.get(table, headers=headers).json()["rows"] == body["rows"]:
                    break
            time.sleep(1)
        assert {c: total.get(c) for c in truth} == truth, (truth, body)
        assert body["provisional"] is True and body["rows"][-1]["city"] == "total"
        failed = [c for c in body["checks"] if not c["passed"]]
        assert body["checks"] and not failed, failed
        cities = body["rows"][:-1]
        assert all(total[c] == sum(row["columns"][c] for row in cities) for c in total)
        for (city, column), listed in reading.listed.items():
            number = next(r for r in body["rows"] if r["city"] == city)["columns"][column]
            assert listed == (number, number), (city, column, listed, number)
        columns = [[row["columns"][str(n)] for n in range(1, 18)] for row in body["rows"]]
        assert reading.csv == [[str(n) for n in row] for row in columns]
        assert reading.xlsx == columns


@dataclass
class QuarterReading:
    """What the analyst read beside one table: per (city, column) the people listed and the
    count the list states; the CSV's and the workbook's 17 columns, row by row."""

    listed: dict[tuple[str, str], tuple[int, int]]
    csv: list[list[str]]
    xlsx: list[list[Any]]


def read_the_quarter(
    client: httpx.Client, table: str, headers: dict[str, str], body: dict[str, Any]
) -> QuarterReading:
    cities = body["rows"][:-1]
    listed: dict[tuple[str, str], tuple[int, int]] = {}
    for city, column in [("total", "7"), (cities[0]["city"], "1"), (cities[-1]["city"], "9")]:
        count, params = 0, {"city": city, "column": column, "limit": 500}
        while True:
            page = client.get(f"{table}/people", params=params, headers=headers).json()
            count += len(page["people"])
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        listed[(city, column)] = (count, page["count"])
    exported = client.get(table, params={"format": "csv"}, headers=headers)
    assert exported.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    workbook = client.get(table, params={"format": "xlsx"}, headers=headers)
    sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).worksheets[0]
    first = 6  # under the form's title, heading line and three header rows
    return QuarterReading(
        listed=listed,
        csv=[line[2:19] for line in lines[1 : len(body["rows"]) + 1]],
        xlsx=[
            [sheet.cell(first + r, 3 + c).value for c in range(17)]
            for r in range(len(body["rows"]))
        ],
    )


def the_employers_carry_their_names(gateway: str, sources: str) -> None:
    """demo-analyst's employers leaving employees out (labour inspection): the units the demo's
    ground truth owes a 92 to, each named and coded as si_core.ab01 registers it — the unit
    table's rows go through Debezium, identity and registry.units to reporting."""
    expected = asyncio.run(load_expected(sources)).values()
    assert any("92" in p["statuses"].values() for p in expected if not p["deceased"])
    units = asyncio.run(unit_rows(sources))
    with httpx.Client(base_url=gateway, timeout=30) as client:
        login = client.post(
            "/api/v1/auth/token", data={"username": "demo-analyst", "password": "demo"}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        deadline, shown = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            body = client.get("/api/v1/reports/employers", headers=headers).json()
            shown = {e["unit_id"]: (e["name"], e["credit_code"]) for e in body["employers"]}
            if shown and all(units.get(unit) == named for unit, named in shown.items()):
                return
            time.sleep(1)
    raise AssertionError(f"employers not named as si_core.ab01 names them: {shown}")


async def unit_rows(sources: str) -> dict[str, tuple[str, str]]:
    """si_core.ab01: each unit's name (AAB004) and credit code (AAB003) by its AAB001."""
    connection = await asyncpg.connect(sources)
    try:
        rows = await connection.fetch("SELECT aab001, aab004, aab003 FROM si_core.ab01")
    finally:
        await connection.close()
    return {row["aab001"]: (row["aab004"], row["aab003"]) for row in rows}


def past_quarter(gateway: str) -> dict[str, Any]:
    """demo-analyst's table of the quarter before this one (frozen: it never changes)."""
    now = datetime.now(UTC) + timedelta(hours=8)
    year, number = (now.year, (now.month - 1) // 3) if now.month > 3 else (now.year - 1, 4)
    with httpx.Client(base_url=gateway, timeout=30) as client:
        login = client.post(
            "/api/v1/auth/token", data={"username": "demo-analyst", "password": "demo"}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        body: dict[str, Any] = client.get(
            f"/api/v1/reports/quarterly/{year}Q{number}", headers=headers
        ).json()
    assert body["provisional"] is False, body
    return body


def test_run_starts_everything_stops_cleanly_and_resumes() -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-stack-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the `postgres` user when we are root
        run_twice(Path(tmp) / "state")


def run_twice(stack_dir: Path) -> None:
    postgres_port, gateway_port = free_port(), free_port_run(len(SERVICES) + 2)
    stack = Stack(stack_dir, postgres_port, gateway_port)
    try:
        stack.wait_for("Where to look")
        for offset, service in enumerate(SERVICES):
            ready = httpx.get(f"http://127.0.0.1:{gateway_port + offset}/readyz", timeout=5)
            assert ready.status_code == 200, (service, ready.text)
            assert ready.json()["service"] == service
        text = "\n".join(stack.output)
        assert "[demo      ] loaded 300 people" in text
        assert (stack_dir / "kafka-bootstrap").read_text().count(":") == 3  # 3 brokers
        # The demo rows flow through Debezium: at least one event per person reaches Kafka.
        deadline, status = time.monotonic() + 120, {}
        while time.monotonic() < deadline:
            status = json.loads((stack_dir / "cdc-status.json").read_text())
            if status["events"] >= 300:
                break
            time.sleep(1)
        assert status["state"] == "running" and status["events"] >= 300, status
        stack.wait_for("change events published", within_s=60)  # the console shows the flow
        sources = f"postgresql://canbao@127.0.0.1:{postgres_port}/sources"
        # The services' server vacuums identity's queues often (SERVICES_SERVER_SETTINGS).
        assert asyncio.run(server_setting(sources, "autovacuum_naptime")) == "10s"
        bootstrap = (stack_dir / "kafka-bootstrap").read_text().strip()
        delay_ms = asyncio.run(a_source_change_reaches_a_new_verdict(sources, bootstrap))
        assert 0 < delay_ms < 60_000
        assert f"http://127.0.0.1:{gateway_port}/counter" in "\n".join(stack.output)
        id_number, statuses = asyncio.run(person_missing_a_phone(sources))
        newcomer = asyncio.run(a_number_nobody_holds(sources))
        # Before the counter collects anything: the generator's truth is still the registry's.
        the_analyst_reads_the_quarter(f"http://127.0.0.1:{gateway_port}", sources)
        the_employers_carry_their_names(f"http://127.0.0.1:{gateway_port}", sources)
        counter_page_round_trip(f"http://127.0.0.1:{gateway_port}", id_number, statuses, newcomer)
        before = past_quarter(f"http://127.0.0.1:{gateway_port}")
        asyncio.run(touch_every_row(sources))  # the change feed moves well past the snapshot
        stack.wait_for("change events published", within_s=60)
        assert past_quarter(f"http://127.0.0.1:{gateway_port}") == before
        assert stack.interrupt() == 0
    finally:
        stack.abandon()

    again = Stack(stack_dir, postgres_port, gateway_port)
    try:
        again.wait_for("Where to look")
        text = "\n".join(again.output)
        assert "resuming" in text
        assert "kept from an earlier run (300 people, seed 5)" in text
        # The test broker started empty: its offsets start again at 0, and the people added now
        # must reach the popup all the same, each with the verdict the generator expects.
        sources = f"postgresql://canbao@127.0.0.1:{postgres_port}/sources"
        gateway = f"http://127.0.0.1:{gateway_port}"
        wrong = asyncio.run(newcomers_reach_the_popup(sources, gateway, people=60, seed=6))
        assert not wrong, f"{len(wrong)} of 60 people added after the resume:\n" + "\n".join(
            wrong[:20]
        )
        assert again.interrupt() == 0
    finally:
        again.abandon()
