"""What the bridge tells its operator: a progress line in the log every few seconds, and the
same facts as JSON in a status file (for `make run`'s console and for tests). Counts, offsets
and topic names only: never a key or a value, which carry personal data."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from canbao_stack.cdc.backpressure import BacklogGuard
from canbao_stack.cdc.publisher import PublishCounters

log = logging.getLogger("canbao.cdc")


@dataclass
class Progress:
    """Turns the publisher's counters into rates between two reports."""

    status_file: Path | None
    started: float = field(default_factory=time.monotonic)
    _last_time: float = field(default_factory=time.monotonic)
    _last_events: int = 0

    def report(
        self, state: str, counters: PublishCounters, guard: BacklogGuard | None, *, say: bool
    ) -> dict[str, Any]:
        now = time.monotonic()
        rate = (counters.events - self._last_events) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_events = now, counters.events
        status = {
            "state": state,
            "phase": _phase(counters),
            "uptime_s": round(now - self.started, 1),
            "events": counters.events,
            "snapshot_events": counters.snapshot_events,
            "tombstones": counters.tombstones,
            "bytes": counters.bytes,
            "batches": counters.batches,
            "snapshot_s": _snapshot_seconds(counters),
            "events_per_s": round(rate, 1),
            "bytes_by_partition": dict(counters.bytes_by_partition),
            "backpressure": _backpressure(guard),
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if say:
            log.info("%s", _line(status))
        if self.status_file is not None:
            _write_atomically(self.status_file, status)
        return status


def _snapshot_seconds(counters: PublishCounters) -> float | None:
    """From the first published event to the last snapshot row (None: no snapshot finished)."""
    if counters.first_event_at is None or counters.snapshot_done_at is None:
        return None
    return round(counters.snapshot_done_at - counters.first_event_at, 2)


def _phase(counters: PublishCounters) -> str:
    if counters.batches == 0:
        return "starting"
    return "snapshot" if counters.snapshot_running else "streaming"


def _backpressure(guard: BacklogGuard | None) -> dict[str, Any]:
    if guard is None:
        return {"enabled": False}
    stats = guard.stats
    blocked_now = time.monotonic() - stats.blocked_since if stats.blocked_since is not None else 0.0
    return {
        "enabled": True,
        "watched_groups": list(guard.groups),
        "limit_bytes": guard.max_bytes,
        "limit_messages": guard.max_messages,
        "blocked": stats.blocked_since is not None,
        "blocked_s": round(stats.blocked_seconds + blocked_now, 1),
        "waits": stats.waits,
        "worst_partition": stats.worst_partition,
        "worst_backlog": asdict(stats.worst),
        "max_backlog": asdict(stats.max_backlog),
        "groups_without_commits": list(stats.groups_without_commits),
        "evicted_unread": stats.evicted_unread,
    }


def _line(status: dict[str, Any]) -> str:
    text = (
        f"{status['state']} ({status['phase']}): {status['events']:,} events "
        f"({status['events_per_s']:,.0f}/s), {status['snapshot_events']:,} from the snapshot, "
        f"{status['tombstones']:,} tombstones, {status['bytes'] / 2**20:,.1f} MiB"
    )
    bp = status["backpressure"]
    if not bp["enabled"]:
        return text + "; backpressure off"
    worst = bp["worst_backlog"]
    text += (
        f"; backlog {worst['messages']:,} msgs / {worst['bytes'] / 2**20:.2f} MiB "
        f"on {bp['worst_partition'] or '-'} (group {worst['group'] or '-'}), "
        f"blocked {bp['blocked_s']:.1f} s in {bp['waits']} waits"
    )
    if bp["groups_without_commits"]:
        text += f"; no commits yet from {', '.join(bp['groups_without_commits'])}"
    if bp["evicted_unread"]:
        text += f"; EVICTED UNREAD: {bp['evicted_unread']:,} messages"
    return text


def _write_atomically(path: Path, status: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(status, indent=1) + "\n")
    os.replace(temporary, path)
