"""The golden-record builder as app.py runs it, on a real database (without the broker: the
changes are staged as the consumers stage them, test_service.py covers the whole path)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from canbao_contracts.topics import PERSONS
from canbao_identity.builder import GoldenRecordBuilder
from canbao_platform.messaging.tables import outbox
from tests.identity.conftest import PROTECTOR, Harness, change

NUMBER = "110101198001010010"


def builder(harness: Harness) -> GoldenRecordBuilder:
    return GoldenRecordBuilder(harness.db, PROTECTOR, service="identity", resolve_batch=2)


async def test_a_person_arriving_in_three_batches_is_rebuilt_once_per_pass(
    harness: Harness,
) -> None:
    """A snapshot sends each source table in turn, so a person's rows arrive in separate
    consumed batches: one pass resolves them all (here two per unit of work), then builds the
    golden record once and announces the person once."""
    hukou = {"sfzh": NUMBER, "xm": "王伟", "xb": "1", "csrq": date(1980, 1, 1),
             "hjdz_xzqh": "110101", "ryzt": "0"}  # fmt: skip
    ac01 = {"aac001": "P1", "aac002": NUMBER, "aac003": "王伟", "aac004": "1",
            "aac006": "19800101", "aab301": "110101"}  # fmt: skip
    card = {"aaz500": "C1", "aac002": NUMBER, "aac003": "王伟", "aae005": "13800138000"}
    for table, row in (("si_core.ac01", ac01), ("hukou.person", hukou), ("card.card_holder", card)):
        await harness.apply([change(table, row)], drain=False)
    running = builder(harness)
    assert await running.drain_once() == 3 + 1
    assert (running.resolved, running.rebuilt) == (3, 1)
    async with harness.db.engine.connect() as connection:
        announced = await connection.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.topic == PERSONS.name)
        )
    assert announced == 1
    assert await running.drain_once() == 0
