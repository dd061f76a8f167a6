"""Continuous backup of a local PostgreSQL cluster with pgBackRest (44号 Art.26 容灾备份): base
backups into a repository directory, and every WAL segment archived there by the server's
`archive_command`, so the cluster can be restored to any moment since its first backup.

The same tool and the same settings as production (deploy/pgbackrest/), on one machine:
`make backup` (the local stack's cluster under .state/) and the restore drill of
tests/recovery. The server runs as `postgres` when we are root, and so does pgBackRest.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from canbao_platform.local.postgres import PostgresCluster

STANZA = "canbao"  # pgBackRest's name for one cluster's backups
# Until a repository is configured, WAL is "archived" to nowhere: archive_mode needs a restart to
# change, archive_command only a reload, so the cluster starts ready for `make backup`.
DISCARD = "/bin/true"


def archive_settings(data_dir: Path) -> dict[str, str]:
    """Server settings for archiving: archive_mode (its command is set in postgresql.auto.conf,
    `PgBackRest.enable`) and a unix socket in the data directory, which pgBackRest connects
    through (it has no TCP option for the server on its own host)."""
    return {"archive_mode": "on", "unix_socket_directories": str(data_dir)}


def discard_wal_until_configured(cluster: PostgresCluster) -> None:
    """With archive_mode on and no archive_command the server keeps every WAL segment: until
    `make backup` points it at a repository, it archives to nowhere (as with archiving off)."""
    if cluster.psql("postgres", "SHOW archive_command").strip() in ("", "(disabled)"):
        cluster.psql("postgres", f"ALTER SYSTEM SET archive_command = '{DISCARD}'")
        cluster.psql("postgres", "SELECT pg_reload_conf()")


def require_pgbackrest() -> str:
    found = shutil.which("pgbackrest")
    if found is None:
        raise RuntimeError("pgBackRest not installed: apt-get install -y pgbackrest")
    return found


@dataclass(frozen=True)
class Backup:
    label: str
    kind: str  # full | diff | incr
    size: int  # bytes of the cluster it copied
    stored: int  # bytes this backup added to the repository (compressed)
    seconds: float


class PgBackRest:
    """One cluster's pgBackRest repository under `home` (repo/, its config, lock and log)."""

    def __init__(self, cluster: PostgresCluster, home: Path, *, stanza: str = STANZA) -> None:
        self.cluster, self.home, self.stanza = cluster, Path(home), stanza
        self.config = self.home / "pgbackrest.conf"
        self._binary = require_pgbackrest()

    def archive_command(self, data_dir: Path | None = None) -> str:
        """What the server at `data_dir` (default: ours) runs per finished WAL segment; `%p` is
        relative to the data directory, hence its path on the command line."""
        data_dir = data_dir or self.cluster.data_dir
        return (
            f"{self._binary} --config={self.config} --stanza={self.stanza} "
            f"--pg1-path={data_dir} archive-push %p"
        )

    def configure(self) -> None:
        """Write the config and create the stanza (both idempotent)."""
        for sub in ("", "repo", "lock", "log", "spool"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
            self.cluster.own(self.home / sub)
        self.config.write_text(
            "[global]\n"
            f"repo1-path={self.home / 'repo'}\n"
            "repo1-retention-full=2\n"
            f"lock-path={self.home / 'lock'}\n"
            f"log-path={self.home / 'log'}\n"
            f"spool-path={self.home / 'spool'}\n"
            "log-level-console=warn\nlog-level-file=off\n"
            "compress-type=lz4\nstart-fast=y\n"
            f"\n[{self.stanza}]\n"
            f"pg1-path={self.cluster.data_dir}\n"
            f"pg1-port={self.cluster.port}\n"
            f"pg1-socket-path={self.cluster.data_dir}\n"
            f"pg1-user={self.cluster.user}\n"
        )
        self.config.chmod(0o644)
        self._pgbackrest("stanza-create")

    def enable(self) -> None:
        """Point the running server's archive_command at the repository (a reload, no restart)."""
        command = self.archive_command().replace("'", "''")
        self.cluster.psql("postgres", f"ALTER SYSTEM SET archive_command = '{command}'")
        self.cluster.psql("postgres", "SELECT pg_reload_conf()")

    def backup(self, kind: str = "full") -> Backup:
        started = time.monotonic()
        self._pgbackrest("backup", f"--type={kind}")
        seconds = time.monotonic() - started
        last = self.info()["backup"][-1]
        return Backup(
            label=last["label"],
            kind=last["type"],
            size=last["info"]["size"],
            stored=last["info"]["repository"]["delta"],
            seconds=seconds,
        )

    def has_full_backup(self) -> bool:
        return any(b["type"] == "full" for b in self.info().get("backup", []))

    def info(self) -> dict:  # type: ignore[type-arg]
        found = json.loads(self._pgbackrest("info", "--output=json"))
        return next((stanza for stanza in found if stanza["name"] == self.stanza), {})

    def check(self) -> None:
        """Switch to a new WAL segment and wait until it is archived: everything committed so far
        can then be restored."""
        self._pgbackrest("check")

    def restore(self, into: Path, *, target: datetime, backup: str | None = None) -> None:
        """Restore into the empty directory `into`, set to recover up to `target` (a committed
        transaction after it ends the replay) and then promote. From the backup labelled
        `backup`, else the newest that ended before `target` (pgBackRest compares in whole
        seconds: a backup ending within a second of `target` must be named)."""
        into.mkdir(parents=True, exist_ok=True)
        self.cluster.own(into)
        self._pgbackrest(
            "restore",
            f"--pg1-path={into}",
            "--type=time",
            f"--target={target.isoformat(' ')}",
            "--target-action=promote",
            *([f"--set={backup}"] if backup else []),
        )

    def _pgbackrest(self, command: str, *options: str) -> str:
        args = [self._binary, f"--config={self.config}", f"--stanza={self.stanza}", *options]
        return self.cluster.run_as_owner([*args, command])


def wait_promoted(cluster: PostgresCluster, *, timeout: float = 60.0) -> None:
    """A restored cluster accepts connections once consistent, writes once promoted."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if cluster.psql("postgres", "SELECT pg_is_in_recovery()").strip() == "f":
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError("the restored cluster is still recovering")
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="`make backup`: back up the local stack's cluster")
    parser.add_argument("--state-dir", type=Path, default=Path(".state"))
    parser.add_argument("--port", type=int, default=54320, help="its PostgreSQL port")
    parser.add_argument("--type", choices=("full", "diff", "incr"), default="full")
    args = parser.parse_args(argv)
    state = args.state_dir.resolve()
    cluster = PostgresCluster(state / "postgres", port=args.port)
    if not (state / "postgres" / "postmaster.pid").exists():
        raise SystemExit("no running local stack here: start it with `make run` first")
    backrest = PgBackRest(cluster, state / "backup")
    backrest.configure()
    backrest.enable()
    kind = args.type if backrest.has_full_backup() else "full"
    done = backrest.backup(kind)
    print(
        f"backup {done.label} ({done.kind}): cluster {done.size / 2**20:.1f} MiB, "
        f"stored {done.stored / 2**20:.1f} MiB, {done.seconds:.1f} s; "
        f"WAL archived continuously to {backrest.home / 'repo'}"
    )


if __name__ == "__main__":
    main()
