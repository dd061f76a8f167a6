"""`make run` end to end: the whole stack comes up on a fresh state directory, reports where to
look, serves every service, carries the demo data through Debezium, stops cleanly on Ctrl-C and
resumes with its data on the next run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from canbao_platform.local.postgres import free_port

SERVICES = ("gateway", "identity", "matching", "survey", "reporting")
READY_WITHIN_S = 300


def free_port_run(count: int) -> int:
    """The first of `count` consecutive free loopback ports."""
    for base in range(21000, 60000, 97):
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


class Stack:
    def __init__(self, state_dir: Path, postgres_port: int, gateway_port: int) -> None:
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
            [sys.executable, "-m", "canbao_stack.cli", "run", "--state-dir", str(state_dir),
             "--postgres-port", str(postgres_port), "--gateway-port", str(gateway_port),
             "--people", "300", "--seed", "5"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip

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

    def interrupt(self) -> int:
        self.process.send_signal(signal.SIGINT)
        self.wait_for("stopped", within_s=120)
        return self.process.wait(timeout=60)


def test_run_starts_everything_stops_cleanly_and_resumes() -> None:
    with tempfile.TemporaryDirectory(prefix="canbao-stack-") as tmp:
        os.chmod(tmp, 0o755)  # PostgreSQL runs as the `postgres` user when we are root
        run_twice(Path(tmp) / "state")


def run_twice(stack_dir: Path) -> None:
    postgres_port, gateway_port = free_port(), free_port_run(len(SERVICES))
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
        assert stack.interrupt() == 0
    finally:
        if stack.process.poll() is None:
            stack.process.kill()

    again = Stack(stack_dir, postgres_port, gateway_port)
    try:
        again.wait_for("Where to look")
        text = "\n".join(again.output)
        assert "resuming" in text
        assert "kept from an earlier run (300 people, seed 5)" in text
        assert again.interrupt() == 0
    finally:
        if again.process.poll() is None:
            again.process.kill()
