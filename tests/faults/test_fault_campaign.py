"""The fault campaign: the real local stack (`canbao run --split-identity`: PostgreSQL, the test
broker, Debezium, every service, identity's consumers and builder as two processes) loads a
generated population; while its change events flow, each component is killed with SIGKILL in
turn (the Debezium bridge, identity's consumers, identity's builder, matching, the gateway;
the stack's supervisor restarts them, as Kubernetes would), then PostgreSQL is shut down hard
(immediate mode: no checkpoint, every connection cut) and started again 30 s later. After
recovery every generated person is compared with the generator's truth through the counter
popup: none lost (unknown, or no verdict), none doubled (identity holds exactly one person per
generated person), none wrong (statuses, needs_survey and flags as the truth says).

Long (about ten minutes at 20,000 people): `make faults`, not `make test`. The figures are
printed (`-s`); CANBAO_FAULT_PEOPLE sets the population."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from canbao_platform.local.postgres import free_port
from canbao_stack.simulators.store import load_expected
from tests.gateway.test_popup_ground_truth import disagreements
from tests.stack.test_local_stack import SERVICES, Stack, free_port_run

PEOPLE = int(os.environ.get("CANBAO_FAULT_PEOPLE", "20000"))
SEED = 17
KILLED = ("cdc", "identity", "identity-builder", "matching", "gateway")
BETWEEN_FAULTS_S = 20
POSTGRES_DOWN_S = 30
CONVERGE_WITHIN_S = 1200


def pids_of(pattern: str) -> list[int]:
    found = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def component_pattern(name: str, state_dir: Path, gateway_port: int) -> str:
    """What only that component's command line holds (the stack's ports are this run's)."""
    if name == "cdc":
        return re.escape(str(state_dir.resolve() / "cdc-status.json"))
    offset = len(SERVICES) if name == "identity-builder" else SERVICES.index(name)
    return f"uvicorn .*--port {gateway_port + offset} "


def kill_component(name: str, state_dir: Path, gateway_port: int) -> int:
    pids = pids_of(component_pattern(name, state_dir, gateway_port))
    assert pids, f"no process of {name}"
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return len(pids)


def stop_postgres_for(data_dir: Path, seconds: float) -> None:
    """Immediate shutdown (every backend gone, no checkpoint: recovery from WAL at start), then
    the same server started again with the options it had (postmaster.opts)."""
    command = shlex.split((data_dir / "postmaster.opts").read_text())
    runas = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    pg_ctl = str(Path(command[0]).parent / "pg_ctl")
    subprocess.run(
        [*runas, pg_ctl, "-D", str(data_dir), "stop", "-m", "immediate", "-w"],
        check=True,
        capture_output=True,
    )
    time.sleep(seconds)
    options = shlex.join(command[3:])  # after `postgres -D <dir>`
    # Its own log: server.log was opened by the stack, not by the server's user.
    started = subprocess.run(
        [
            *runas,
            pg_ctl,
            "-D",
            str(data_dir),
            "-o",
            options,
            "-l",
            str(data_dir / "restarted.log"),
            "start",
            "-w",
        ],
        capture_output=True,
        text=True,
    )
    assert started.returncode == 0, started.stdout + started.stderr


async def compare_with_truth(
    sources: str, identity: str, gateway: str
) -> tuple[dict[str, int], list[str]]:
    """Counts (agreed, lost, wrong, doubled, pending) and the first problems."""
    expected = await load_expected(sources)
    counts: Counter[str] = Counter()
    problems: list[str] = []
    person_ids: Counter[str] = Counter()
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=gateway, timeout=30) as client:
        login = await client.post(
            "/api/v1/auth/token", data={"username": "demo-counter", "password": "demo"}
        )
        client.headers["Authorization"] = f"Bearer {login.json()['access_token']}"

        async def check(person: dict[str, Any]) -> None:
            document = person["document"]
            number, params = (
                (person["id_number"], {})
                if document is None
                else (document["number"], {"document_type": document["type"]})
            )
            async with gate:
                response = await client.get(f"/api/v1/counter/popup/{number}", params=params)
            label = f"{person['person_key']} ({person['situation']})"
            if response.status_code == 404:
                counts["lost"] += 1
                problems.append(f"{label}: not registered")
                return
            assert response.status_code == 200, (label, response.status_code, response.text)
            popup = response.json()
            person_ids[popup["person_id"]] += 1
            if popup["verdict_pending"]:
                counts["lost"] += 1
                problems.append(f"{label}: no verdict")
            elif diffs := disagreements(person, popup):
                counts["wrong"] += 1
                problems.append(f"{label}: " + "; ".join(diffs))
            else:
                counts["agreed"] += 1

        await asyncio.gather(*(check(p) for p in expected.values()))
    connection = await asyncpg.connect(identity)
    try:
        persons = await connection.fetchval("SELECT count(*) FROM persons")
    finally:
        await connection.close()
    counts["people"] = len(expected)
    counts["identity_persons"] = persons
    # One generated person, one registered person: more persons than the people they answer
    # for are doubles (a record that failed to link made a second person).
    counts["doubled"] = max(0, persons - len(person_ids))
    counts["shared_person"] = sum(n - 1 for n in person_ids.values() if n > 1)
    return dict(counts), problems


@pytest.mark.timeout(3600)
def test_no_person_is_lost_doubled_or_wrong_after_every_fault() -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-faults-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the `postgres` user when we are root
        state_dir = Path(tmp) / "state"
        postgres_port, gateway_port = free_port(), free_port_run(len(SERVICES) + 2)
        stack = Stack(
            state_dir,
            postgres_port,
            gateway_port,
            people=PEOPLE,
            seed=SEED,
            options=("--split-identity",),
        )
        try:
            campaign(stack, state_dir, postgres_port, gateway_port)
        finally:
            stack.abandon()


def campaign(stack: Stack, state_dir: Path, postgres_port: int, gateway_port: int) -> None:
    started = time.monotonic()
    stack.wait_for("Where to look", within_s=900)
    loaded = time.monotonic() - started
    faults: list[str] = []
    for name in KILLED:
        time.sleep(BETWEEN_FAULTS_S)
        killed = kill_component(name, state_dir, gateway_port)
        faults.append(f"kill -9 {name} ({killed} process) at {time.monotonic() - started:.0f} s")
    time.sleep(BETWEEN_FAULTS_S)
    data_dir = next(p.parent for p in state_dir.rglob("postmaster.opts"))
    at = time.monotonic() - started
    stop_postgres_for(data_dir, POSTGRES_DOWN_S)
    faults.append(f"PostgreSQL down {POSTGRES_DOWN_S} s (immediate) at {at:.0f} s")

    sources = f"postgresql://canbao@127.0.0.1:{postgres_port}/sources"
    identity = f"postgresql://canbao@127.0.0.1:{postgres_port}/identity"
    gateway = f"http://127.0.0.1:{gateway_port}"
    deadline = time.monotonic() + CONVERGE_WITHIN_S
    while True:
        counts, problems = asyncio.run(compare_with_truth(sources, identity, gateway))
        done = counts.get("agreed", 0) == counts["people"] and counts["doubled"] == 0
        if done or time.monotonic() > deadline:
            break
        time.sleep(20)
    converged = time.monotonic() - started
    stack.read_available()
    restarts = [line for line in stack.output if "ready again" in line]
    print(
        f"\nfault campaign: {PEOPLE:,} people (seed {SEED}); loaded and flowing after "
        f"{loaded:.0f} s"
    )
    print("\n".join(f"  {fault}" for fault in faults))
    print(f"  restarts seen by the supervisor: {len(restarts)}")
    print(f"  all verdicts compared at {converged:.0f} s: {counts}")
    print("\n".join(problems[:40]))
    assert counts.get("lost", 0) == 0 and counts.get("wrong", 0) == 0, counts
    assert counts["doubled"] == 0, counts
    assert counts.get("agreed", 0) == counts["people"], counts
