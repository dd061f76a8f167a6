"""People the population generator draws (canbao_stack.simulators), each with their source
records as identity's store holds them once the first load has resolved them, without a database:
for the tests that compare what the builder makes of many realistic people, and the rebuild's
benchmark (bench/rebuild.py).

Each source row goes the way the first load takes it: a Debezium snapshot read, parsed and staged
by the consumers' handler (claims sealed, facts as JSON text), then read back as the store does
(`linked`: the jsonb columns parsed as the driver does, then `Store._linked`). Every record of a
person is linked to them (`link_kind`: a reference row as reference, a defective number as a
candidate, the rest exact), which is what resolution decides for a population without
collisions.
"""

from __future__ import annotations

import itertools
import json
import random
from collections import namedtuple
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pydantic_core
from sqlalchemy.engine.result import IteratorResult, SimpleResultMetaData

from canbao_contracts.debezium import parse_change_event
from canbao_identity.adapters import adapter_for
from canbao_identity.golden import LinkedRecord
from canbao_identity.handlers import staged_change
from canbao_identity.resolution import LinkKind
from canbao_identity.staging import StagedChange
from canbao_identity.store import Store
from canbao_stack.simulators import TABLES
from canbao_stack.simulators.chunk import _household
from canbao_stack.simulators.dirty import soil
from canbao_stack.simulators.households import Draw
from canbao_stack.simulators.lives import live
from canbao_stack.simulators.rates import Rates
from canbao_stack.simulators.rows import COLUMNS, person_rows
from canbao_stack.simulators.units import make_units
from tests.identity.conftest import KEYS, PROTECTOR, encode

SEED = 1
ORDER = {f"{schema}.{table}": n for n, (schema, table) in enumerate(TABLES)}
# A source_records row as Store.linked_records reads it (jsonb still as the text it travels as).
StoredRow = namedtuple(
    "StoredRow",
    "source_table record_key person_id link_kind position observed_at claims_ciphertext key_id "
    "facts provenance changed_at",
)


def generated_people(
    count: int, seed: int = SEED
) -> Iterator[dict[tuple[str, str], list[tuple[Any, ...]]]]:
    """Each generated person's source rows, per table."""
    rates = Rates()
    d = Draw(random.Random(f"generated:{seed}"), seed, make_units(seed, count), set(), 0)
    index = 0
    while index < count:
        people = _household(d, index, count - index, rates)
        for person in people:
            live(d, person, rates)
            soil(d, person, rates)
            rows: dict[tuple[str, str], list[tuple[Any, ...]]] = {t: [] for t in COLUMNS}
            person_rows(rows, person, seed)
            yield rows
        index += len(people)


def stored_rows(count: int, seed: int = SEED) -> list[tuple[UUID, list[StoredRow]]]:
    """Each of `count` people (person_id 1, 2…) with their source records as the store holds
    them, in snapshot order."""
    ids = itertools.count(1)
    lsns = itertools.count(10_000, 8)
    people = []
    for n, rows in enumerate(generated_people(count, seed)):
        person_id = UUID(int=n + 1)
        stored = []
        for (schema, table), values in rows.items():
            if (schema, table) == ("si_core", "ab01"):
                continue  # units: nobody's records
            name = f"{schema}.{table}"
            for value in values:
                after = {k: encode(v) for k, v in zip(COLUMNS[schema, table], value, strict=True)}
                if KEYS[name] == ("id",):  # a bigserial id: the source numbers its rows
                    after["id"] = next(ids)
                key = {c: after[c] for c in KEYS[name]}
                envelope = {
                    "before": None,
                    "after": after,
                    "op": "r",
                    "ts_ms": 1_763_800_000_000,
                    "source": {
                        "lsn": next(lsns),
                        "txId": 1,
                        "ts_ms": 1_763_800_000_000,
                        "schema": schema,
                        "table": table,
                        "snapshot": "true",
                    },
                }
                topic = f"cdc.{name}"
                event = parse_change_event(
                    json.dumps(key).encode(), json.dumps(envelope).encode(), topic=topic
                )
                adapter = adapter_for(topic)
                assert adapter is not None
                change = staged_change(PROTECTOR, adapter, event)
                assert change is not None
                stored.append(_stored(person_id, change))
        people.append((person_id, stored))
    return people


def _stored(person_id: UUID, change: StagedChange) -> StoredRow:
    kind = LinkKind.EXACT
    if change.link_ref is not None:
        kind = LinkKind.REFERENCE
    elif change.defects:
        kind = LinkKind.CANDIDATE
    return StoredRow(
        change.source_table,
        change.record_key,
        person_id,
        kind.value,
        change.position,
        change.observed_at,
        change.claims_ciphertext,
        change.key_id,
        change.facts,
        change.provenance,
        change.changed_at,
    )


def linked(store: Store, rows: list[StoredRow]) -> list[LinkedRecord]:
    """As Store.linked_records: the jsonb columns parsed (the driver's json_deserializer), the
    rows made SQLAlchemy's Rows, then `_linked`."""
    parsed = [
        row._replace(
            facts=pydantic_core.from_json(row.facts),
            provenance=pydantic_core.from_json(row.provenance),
        )
        for row in rows
    ]
    result = IteratorResult(SimpleResultMetaData(StoredRow._fields), iter(parsed))
    return [store._linked(row) for row in result.all()]
