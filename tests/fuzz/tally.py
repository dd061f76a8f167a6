"""What the fuzzing of the gateway saw: requests sent, and the failed checks by kind, each
distinct failure once with the shortest request that showed it (a curl command to replay)."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from schemathesis.core.failures import Failure

# The kinds the report counts apart: a 5xx, and an answer outside its declared schema.
SERVER_ERROR = "server error"
SCHEMA_VIOLATION = "schema violation"


def kind_of(failure: Failure) -> str:
    if failure.checks and "not_a_server_error" in failure.checks:
        return SERVER_ERROR
    if failure.checks and "response_schema_conformance" in failure.checks:
        return SCHEMA_VIOLATION
    return failure.kind_title if failure.checks else failure.title  # a custom check: its name


@dataclass
class Tally:
    requests: int = 0
    by_role: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)  # answers per status code
    failures: Counter[str] = field(default_factory=Counter)  # failing requests per kind
    distinct: dict[tuple[str, str, str], str] = field(default_factory=dict)
    started: float | None = None
    last: float = 0.0

    def sent(self, role: str, status: int) -> None:
        now = time.monotonic()
        self.started = self.started if self.started is not None else now
        self.last = now
        self.requests += 1
        self.by_role[role] += 1
        self.statuses[status] += 1

    def failed(
        self, operation: str, role: str, failures: list[Failure], curl: str
    ) -> set[tuple[str, str, str]]:
        """Count a failing request; the distinct failures it showed."""
        keys = set()
        for kind in {kind_of(f) for f in failures}:
            self.failures[kind] += 1
        for failure in failures:
            key = (operation, kind_of(failure), failure.title)
            keys.add(key)
            known = self.distinct.get(key)
            if known is None or len(curl) < len(known):
                self.distinct[key] = f"[{role}] {failure.message.strip()[:300]}\n    {curl}"
        return keys

    def described(self, key: tuple[str, str, str]) -> str:
        operation, kind, title = key
        return f"{operation} — {kind}: {title}\n  {self.distinct[key]}"

    def report(self) -> list[str]:
        elapsed = self.last - self.started if self.started is not None else 0.0
        roles = ", ".join(f"{role} {n}" for role, n in sorted(self.by_role.items()))
        failing = sum(self.failures.values())
        statuses = ", ".join(f"{status} ×{n}" for status, n in sorted(self.statuses.items()))
        lines = [
            f"{self.requests} requests in {elapsed:.0f} s ({roles})",
            f"answered: {statuses}",
            f"{self.failures[SERVER_ERROR]} server errors (5xx), "
            f"{self.failures[SCHEMA_VIOLATION]} schema violations, "
            f"{failing} failed checks in all, {len(self.distinct)} distinct",
        ]
        lines += [self.described(key) for key in self.distinct]
        return lines
