"""Forgetting old idempotency records on a schedule: a component the service shell runs beside
the consumers of every service that has any (service.py).

How long a record is kept (`ServiceSettings.processed_messages_kept`) is longer than any
non-compacted topic keeps a message, so every redelivery that can still happen finds its record.
A compacted topic (registry.persons, registry.statuses) keeps its newest message per person for
ever, and a consumer that reads it again from the beginning (an offset reset, a new consumer
group) re-applies events whose records are gone. That is harmless by the contract of those
topics (contracts/canbao_contracts/topics.py): every event on them carries the person's whole
current state and one person's events stay in order on one partition, so applying them again
in order replaces state with state and ends at the newest; their consumers keep the newest
state (matching's `store.save_person`) rather than adding to it. A dead letter replayed after
any age (replay.py) has no record to find: a dead-lettered message's record is removed with its
effect (dead_letters.py), so it is applied once, then."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, Final

from sqlalchemy.exc import DBAPIError

from canbao_platform.background import BackgroundLoop
from canbao_platform.db import Database
from canbao_platform.messaging.tables import prune_processed_messages

log = logging.getLogger(__name__)
PRUNE_EVERY_S: Final = 3_600.0  # hourly: a day's records are a few batches


class ProcessedMessagesPruner(BackgroundLoop):
    """Prunes at start and then every `interval_s`; a failed run (database away) is logged
    and tried again at the next one."""

    name = "processed-messages-pruner"

    def __init__(
        self, database: Database, *, kept: timedelta, interval_s: float = PRUNE_EVERY_S
    ) -> None:
        super().__init__()
        self.database, self.kept, self.interval_s = database, kept, interval_s
        self.pruned = 0
        self.runs = 0

    def health(self) -> dict[str, Any]:
        # Pruning late is no reason to take the service out of rotation.
        return {"ready": True, "pruned": self.pruned, "runs": self.runs}

    async def run(self) -> None:
        while not self.stopping:
            try:
                self.pruned += await prune_processed_messages(self.database, older_than=self.kept)
                self.runs += 1
            except (OSError, DBAPIError) as error:
                log.warning("pruning processed messages failed (%s)", type(error).__name__)
            await self.sleep(self.interval_s)
