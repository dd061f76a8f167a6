"""How many logins a gateway replica checks at once.

A password check is Argon2id with the hasher's memory cost (64 MiB, accounts.py) in a worker
thread, so a handful at once would take the process past its pod's 512 MiB limit
(deploy/k8s/base/gateway.yaml). So logins are admitted here before any hashing:

* at most `MAX_PER_CLIENT` logins at once from one address and `MAX_PER_USERNAME` for one
  username, and at most `MAX_WAITING` waiting for a hashing slot; beyond that 429
  `too-many-logins` with Retry-After, without hashing anything;
* at most `hashes_at_once` admitted logins hash (and hold a database connection) at a time:
  the memory budget for hashing (settings.py) divided by the memory one check takes. The
  others wait their turn, which costs no hashing memory.

Per replica, in memory: these limits bound this process's memory, which is per replica too.
The failed-login limits that must hold across replicas are throttling.py's, in the database."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

from fastapi import Request

from canbao_gateway.problems import TooManyLogins

# A counter hall behind one NAT address logs in at the start of the day; its clerks retry.
MAX_PER_CLIENT: Final = 4
# One check per username at a time: throttling.py serialises them on a lock anyway.
MAX_PER_USERNAME: Final = 1
MAX_WAITING: Final = 32
RETRY_AFTER_S: Final = 1


class LoginGate:
    def __init__(self, hashes_at_once: int) -> None:
        if hashes_at_once < 1:
            raise ValueError("at least one login must be able to hash")
        self.hashes_at_once = hashes_at_once
        self.hashing = 0  # gauge: admitted logins holding a slot now
        self.waiting = 0  # gauge: admitted logins waiting for a slot
        self._slots = asyncio.Semaphore(hashes_at_once)
        self._per_client: Counter[str] = Counter()
        self._per_username: Counter[str] = Counter()

    @classmethod
    def for_memory(cls, budget_mib: int, hash_memory_kib: int) -> LoginGate:
        """A gate that lets as many checks run at once as `budget_mib` holds."""
        return cls(max(1, budget_mib * 1024 // hash_memory_kib))

    @asynccontextmanager
    async def admit(self, *, client: str, username: str) -> AsyncIterator[None]:
        """Hold one hashing slot for a login of `username` from `client` (raises TooManyLogins
        at once when over a limit)."""
        if (
            self._per_client[client] >= MAX_PER_CLIENT
            or self._per_username[username] >= MAX_PER_USERNAME
            or self.waiting >= MAX_WAITING
        ):
            raise TooManyLogins(RETRY_AFTER_S)
        self._per_client[client] += 1
        self._per_username[username] += 1
        try:
            self.waiting += 1
            try:
                await self._slots.acquire()
            finally:
                self.waiting -= 1
            self.hashing += 1
            try:
                yield
            finally:
                self.hashing -= 1
                self._slots.release()
        finally:
            _leave(self._per_client, client)
            _leave(self._per_username, username)


def _leave(counts: Counter[str], key: str) -> None:
    counts[key] -= 1
    if counts[key] <= 0:
        del counts[key]  # no entry per address ever seen: the maps stay as small as the load


async def login_gate(request: Request) -> LoginGate:
    """The dependency: this application's gate (app.py)."""
    gate: LoginGate = request.app.state.login_gate
    return gate
