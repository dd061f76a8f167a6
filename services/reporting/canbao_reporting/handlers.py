"""What reporting does with each event of registry.statuses: add the person's new state, stamped
with when it arrived; and of registry.units: keep the unit's newest state (units.py). The
messaging runtime gives the handler one transaction per batch with the idempotency records (a
redelivered event is skipped before it gets here)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from canbao_contracts.events import StatusesChanged, StatusesWithdrawn, UnitChanged, UnitDeleted
from canbao_platform.messaging import Handler, InboundMessage, UnitOfWork
from canbao_reporting import store
from canbao_reporting.units import apply_unit

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def system_clock() -> datetime:
    return datetime.now(UTC)


def handler(clock: Clock = system_clock) -> Handler:
    async def handle(message: InboundMessage, uow: UnitOfWork) -> None:
        _, event = message.decode()
        match event:
            case StatusesChanged():
                await store.apply_state(
                    uow.session,
                    event.person_id,
                    event.verdict,
                    evaluated_at=event.evaluated_at,
                    arrived_at=clock(),
                )
            case StatusesWithdrawn():
                # The withdrawal is a state too: an older verdict arriving later stays out.
                await store.apply_state(
                    uow.session,
                    event.person_id,
                    None,
                    evaluated_at=event.evaluated_at,
                    arrived_at=clock(),
                )
            case UnitChanged() | UnitDeleted():
                await apply_unit(uow.session, event)
            case _:
                log.warning("ignored %s on %s", event.type, message.topic)

    return handle
