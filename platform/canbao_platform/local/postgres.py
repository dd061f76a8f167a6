"""A PostgreSQL cluster of our own: Debian's `postgresql` binaries, `initdb` into a directory.

Used by the tests (a throwaway cluster in a temporary directory) and by the local stack
(a cluster kept under `.state/`). PostgreSQL refuses to run as root, so when we are root the
server runs as the `postgres` system user that Debian's package creates.
"""

from __future__ import annotations

import ctypes
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

_PR_SET_PDEATHSIG = 1

# Settings for a local cluster: logical decoding for Debezium, enough connections for five
# services and their pools. `durable=False` trades crash safety for speed (tests only).
_BASE_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "10",
    "max_connections": "300",
    "shared_buffers": "256MB",
    "log_min_messages": "warning",
}
_FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
# A server holding the services' databases (the local stack's, the pipeline benchmark's registry;
# deploy/compose.yaml's services-db alike). Identity's queues are vacuumed after a fixed number of
# dead rows (migration identity_0013), but autovacuum visits a database at most once per naptime
# (60 s by default): at ~3,000 resolved changes a second, up to ~190,000 dead entries piled up
# between two vacuums, and every look into the queue stepped through them.
SERVICES_SERVER_SETTINGS = {"autovacuum_naptime": "10s"}


def application_role(service: str) -> str:
    """The login a service connects as in the local stack and the tests: not the owner of its
    tables (the cluster's superuser runs the migrations), as in production (deploy/)."""
    return f"{service}_app"


def find_bindir() -> Path:
    """Where Debian installs the server binaries (not on PATH): /usr/lib/postgresql/<v>/bin."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    if found:
        return Path(found[0]).parent
    on_path = shutil.which("postgres")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError("PostgreSQL server not installed: apt-get install -y postgresql")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresCluster:
    """One PostgreSQL server process on 127.0.0.1:`port` with superuser `user`, trust auth."""

    def __init__(
        self,
        data_dir: Path,
        *,
        port: int,
        user: str = "canbao",
        durable: bool = True,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """`settings` are added to (and win over) the defaults, e.g. WAL archiving's."""
        self.data_dir = Path(data_dir)
        self.port = port
        self.user = user
        self.durable = durable
        self.settings = dict(settings or {})
        self._bindir = find_bindir()
        self._process: subprocess.Popen[bytes] | None = None
        self._run_as = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def url(
        self, database: str, *, driver: str = "postgresql+asyncpg", user: str | None = None
    ) -> str:
        """As the superuser, or as `user` (a role of `create_role`: trust auth, no password)."""
        return f"{driver}://{user or self.user}@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        """A libpq/asyncpg DSN (no SQLAlchemy driver suffix)."""
        return self.url(database, driver="postgresql")

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_dir)
        self._run(
            [
                str(self._bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                self.user,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
                # Text compared byte by byte (memcmp) instead of through strcoll: the same order
                # as C.UTF-8's (code points), and keys such as source records', idempotency
                # records' and blind indexes' are compared on every insert into their indexes
                # (an INSERT of 750 source records: 12.6 -> 11.3 ms here).
                "--lc-collate=C",
            ]
        )

    def start(self, *, timeout: float = 30.0) -> None:
        if not self.initialised:
            self.init()
        settings = dict(_BASE_SETTINGS, port=str(self.port), unix_socket_directories="")
        if not self.durable:
            settings.update(_FAST_SETTINGS)
        settings.update(self.settings)
        args = [str(self._bindir / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        log = open(self.data_dir / "server.log", "ab")  # noqa: SIM115 - owned by the child
        self._process = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, preexec_fn=self._demote
        )
        log.close()
        self._wait_ready(timeout)

    def stop(self, *, immediate: bool = False) -> None:
        """Fast shutdown: roll back open transactions, checkpoint, exit. `immediate`: exit
        without the checkpoint (the next start recovers from the WAL), for a cluster about to
        be thrown away."""
        if self._process and self._process.poll() is None:
            self._process.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
            try:
                self._process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create `name` unless it exists, as a copy of `template` if given (a database nobody
        is connected to); return its SQLAlchemy asyncpg URL."""
        exists = self.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
        if exists.strip() != "1":
            copy = f' TEMPLATE "{template}"' if template else ""
            self.psql("postgres", f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def create_role(self, name: str) -> None:
        """Create the login role `name` unless it exists: no superuser, no CREATEDB or
        CREATEROLE; it may connect to every database (PUBLIC's CONNECT) and owns nothing."""
        exists = self.psql("postgres", f"SELECT 1 FROM pg_roles WHERE rolname = '{name}'")
        if exists.strip() != "1":
            self.psql("postgres", f'CREATE ROLE "{name}" LOGIN')

    def psql(self, database: str, sql: str) -> str:
        psql = shutil.which("psql") or str(self._bindir / "psql")
        out = subprocess.run(
            [
                psql,
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                log = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL exited during start-up:\n{log}")
            ready = subprocess.run(
                [str(self._bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError(f"PostgreSQL not ready on port {self.port} after {timeout} s")

    def _run(self, args: list[str]) -> str:
        done = subprocess.run(args, capture_output=True, text=True, preexec_fn=self._demote)
        if done.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def run_as_owner(self, args: list[str]) -> str:
        """Run a tool as the user the server runs as (pgBackRest must own what it writes to the
        data directory and read what the server wrote); its stdout, or RuntimeError."""
        return self._run(args)

    def own(self, path: Path) -> None:
        """Make `path` (a directory) the server user's, like the data directory."""
        self._chown(path)

    def _chown(self, path: Path) -> None:
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)
            path.chmod(0o700)

    def _demote(self) -> None:
        """In the child before exec: drop root, and die with the parent (no orphan servers)."""
        if self._run_as is not None:
            os.setgid(self._run_as.pw_gid)
            os.setuid(self._run_as.pw_uid)
        # Set after setuid: a credential change clears the parent-death signal.
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
