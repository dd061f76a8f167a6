"""What the benchmarks that run services as processes share: starting a service under uvicorn
and waiting for it, a service token to call its internal API with, the CPU and memory each
process (and PostgreSQL's backends) used, from /proc, and the percentiles of its latencies."""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from canbao_platform import service_tokens
from canbao_platform.local.postgres import PostgresCluster, free_port


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU each process has used so far (Linux /proc; nothing elsewhere)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (fields 14, 15)
    return used


def cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds used since `before` (a process started since: all of its own)."""
    return sum(now - before.get(pid, 0.0) for pid, now in cpu_seconds(pids).items())


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process (Linux /proc), in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0])
    return found


def children_of(pid: int) -> list[int]:
    """PostgreSQL's backends: the postmaster's children, the pooled connections among them."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def postmaster(postgres: PostgresCluster) -> int:
    return int((postgres.data_dir / "postmaster.pid").read_text().split()[0])


def machine_facts(sharing: str) -> str:
    """The cores, who shares them (`sharing`: the benchmark's own processes) and the load
    average before the run: other users of the machine skew every figure."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"machine: {os.cpu_count()} cores, shared by {sharing}, PostgreSQL and anyone "
        f"else's work (load average {load:.1f} before the run); "
        f"Python {platform.python_version()} on {platform.machine()}"
    )


def start(
    name: str, factory: str, env: dict[str, str], log_dir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """`factory` under uvicorn on a free port (never the local stack's 8000-8004)."""
    port = free_port()
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            factory,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-proxy-headers",
        ],
        env=os.environ | env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_up(url: str, within_s: float = 60, *, path: str = "/healthz") -> None:
    """Until `url` answers 200 on `path` (/readyz: components running, consumers joined)."""
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"{url}{path}")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def service_token(audience: str, *, role: str = "platform", scope: str = "52") -> str:
    """A token for one call to `audience`'s internal API, as the gateway signs it for a staff
    member of `role` and `scope` (the development key pair: CANBAO_ENV=test)."""
    caller = service_tokens.Caller(f"bench-{role}", role, scope)
    key = service_tokens.private_key(service_tokens.DEVELOPMENT_PRIVATE_KEY)
    return service_tokens.issue(caller, audience=audience, key=key)


def percentiles(latencies: list[float]) -> tuple[float, float, float]:
    """p50, p90, p99 (inclusive: with fewer than 100 samples p99 nears the largest)."""
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return q[49], q[89], q[98]
