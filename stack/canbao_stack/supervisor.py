"""Supervised child processes for the local stack: start, watch, restart, stop.

Each child writes its output to `<state>/logs/<name>.log`; the console only shows what an
operator needs: starting, ready, failing (with the log's last lines), restarted, stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

RESTART_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)
ReadyCheck = Callable[[], Awaitable[bool]]


def say(component: str, message: str) -> None:
    print(f"[{component:<10}] {message}", flush=True)


@dataclass
class Child:
    """One supervised process; `is_ready` (optional) tells when it is ready to serve."""

    name: str
    argv: Sequence[str]
    env: dict[str, str]
    log_dir: Path
    is_ready: ReadyCheck | None = None
    where: str = ""  # what the operator is told once it is ready (a URL, a status file)
    restarts: int = 0
    ready: bool = False
    _process: asyncio.subprocess.Process | None = field(default=None, repr=False)
    _stopping: bool = field(default=False, repr=False)

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    async def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # noqa: ASYNC230 - a local append, instant
            log.write(f"\n--- start {time.strftime('%Y-%m-%d %H:%M:%S')} ---\n".encode())
            self._process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # Ctrl-C reaches us; we stop children in order
            )
        self.ready = False

    async def wait_ready(self, within_s: float) -> bool:
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if self.exited:
                return False
            if self.is_ready is None or await self.is_ready():
                self.ready = True
                return True
            await asyncio.sleep(0.5)
        return False

    @property
    def pid(self) -> int | None:
        """The running process's id (None before the first start): for /proc's CPU and memory."""
        return None if self._process is None else self._process.pid

    @property
    def exited(self) -> bool:
        return self._process is not None and self._process.returncode is not None

    async def watch(self) -> None:
        """Restart the child whenever it dies unexpectedly, with backoff; show why it died."""
        while not self._stopping:
            assert self._process is not None
            code = await self._process.wait()
            if self._stopping:
                return
            self.ready = False
            backoff = RESTART_BACKOFF_S[min(self.restarts, len(RESTART_BACKOFF_S) - 1)]
            say(
                self.name,
                f"FAILED (exit {code}); restarting in {backoff:.0f} s. Last lines of "
                f"{self.log_path}:",
            )
            for line in self.tail(8):
                print(f"             | {line}", flush=True)
            await asyncio.sleep(backoff)
            if self._stopping:
                return
            self.restarts += 1
            await self.start()
            if await self.wait_ready(120):
                say(self.name, f"ready again (restart {self.restarts})")

    async def stop(self, within_s: float = 20.0) -> None:
        self._stopping = True
        process = self._process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), within_s)
        except TimeoutError:
            say(self.name, f"did not stop in {within_s:.0f} s; killing")
            process.kill()
            await process.wait()

    def tail(self, lines: int) -> list[str]:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return text.rstrip().splitlines()[-lines:]


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def http_ok(url: str) -> ReadyCheck:
    """Ready when `url` answers 200 (a service's /readyz)."""

    async def check() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2.0) as client:
                return (await client.get(url)).status_code == 200
        except httpx.HTTPError:
            return False

    return check
