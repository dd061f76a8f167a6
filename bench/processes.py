"""What the benchmarks that run services as processes share: starting a service under uvicorn
and waiting for it, and the CPU each process (and PostgreSQL's backends) used, from /proc."""

from __future__ import annotations

import asyncio
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx

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
    return (f"machine: {os.cpu_count()} cores, shared by {sharing}, PostgreSQL and anyone "
            f"else's work (load average {load:.1f} before the run); "
            f"Python {platform.python_version()} on {platform.machine()}")  # fmt: skip


def start(
    name: str, factory: str, env: dict[str, str], log_dir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """`factory` under uvicorn on a free port (never the local stack's 8000-8004)."""
    port = free_port()
    log = (log_dir / f"{name}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", factory, "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log",
         "--no-proxy-headers"],
        env=os.environ | env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    return process, f"http://127.0.0.1:{port}"


async def wait_up(url: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                if (await http.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")
