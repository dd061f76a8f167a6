"""Completing a data-key rotation: every sealed row rewritten under the current key, so that the
retired key can be dropped (a key that leaked stops being useful once no row needs it).

Rotation, for a service's data key (identity: `IDENTITY_DATA_KEY`, `IDENTITY_DATA_KEY_ID` and
`IDENTITY_RETIRED_DATA_KEYS="id:base64,…"`; survey: `SURVEY_DATA_KEY`, `SURVEY_DATA_KEY_ID` and
`SURVEY_RETIRED_DATA_KEYS="id:base64,…"`):

1. Make the new key current (with a new key id) and add the old one to the retired keys; roll
   out every process of the service. New rows are sealed under the new key; old rows still open.
2. Run `python -m canbao_<service>.reseal` with the same settings, while the service runs. Per
   sealed column it prints how many rows it rewrote, skipped (changed or locked by the service
   meanwhile) and could not open (by key id, never a row's contents), then how many rows each
   key id seals now, and for each retired key whether it still seals any row. It exits 1 if a
   row did not open or is left under a key it was not given: find that key before going on.
3. When it reports that the old key seals no row, remove it from the retired keys and roll out
   again. If the old key still seals rows (skipped ones), run step 2 again.

How a batch is written, and why: rows under another key than the current one are read in primary
key order (default 500 at a time) without locks, opened and sealed again in memory, then written
back in one short transaction per batch with a compare-and-set (key id and ciphertext still what
was read), so a row the service rewrote in between is never clobbered. Rows that the service
holds locked at that moment are skipped rather than waited for: the job never waits for a lock,
so it can never be half of a deadlock with the golden-record builder.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag

from canbao_platform.db import Database
from canbao_platform.sealing import Sealer, UnknownKey

BATCH_SIZE = 500

Key = tuple[Any, ...]  # a row's primary key values, in the table's order


@dataclass(frozen=True)
class SealedColumn:
    """One column of sealed documents: where it lives, where its key id is, and the associated
    data each ciphertext was sealed with (computed from `context_columns` of its row)."""

    table: sa.Table
    ciphertext: str
    key_id: str
    context: Callable[[Mapping[str, Any]], str]
    context_columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.ciphertext}"

    @property
    def primary_key(self) -> tuple[sa.Column[Any], ...]:
        return tuple(self.table.primary_key.columns)


@dataclass(frozen=True)
class SealedRow:
    key: Key
    key_id: str
    ciphertext: bytes
    context: str


@dataclass(frozen=True)
class Resealed:
    """A row's new ciphertext, to be written only if the row is still `old_key_id`/`old`."""

    key: Key
    old_key_id: str
    old: bytes
    new: bytes


@dataclass
class ColumnReport:
    column: str
    rewritten: int = 0
    skipped: int = 0  # changed or held by the service between read and write
    unreadable: Counter[str] = field(default_factory=Counter)  # key id → rows that did not open
    remaining: dict[str, int] = field(default_factory=dict)  # key id → rows it seals, after


async def reseal_column(
    database: Database, sealer: Sealer, column: SealedColumn, *, batch_size: int = BATCH_SIZE
) -> ColumnReport:
    """Every row of `column` not under the sealer's current key rewritten under it, batch by
    batch; what could not be opened is counted by key id and left as it is."""
    report = ColumnReport(column.name)
    after: Key | None = None
    while batch := await read_batch(database, sealer, column, after=after, limit=batch_size):
        after = batch[-1].key
        resealed, unreadable = reseal(batch, sealer)
        rewritten = await write_back(database, sealer, column, resealed)
        report.rewritten += rewritten
        report.skipped += len(resealed) - rewritten
        report.unreadable.update(unreadable)
    report.remaining = await key_ids_in_use(database, column)
    return report


async def read_batch(
    database: Database, sealer: Sealer, column: SealedColumn, *, after: Key | None, limit: int
) -> list[SealedRow]:
    """Up to `limit` rows sealed under another key than the current one, after `after` in
    primary key order (keyset: unreadable rows stay behind without being read again)."""
    table, pk = column.table, column.primary_key
    names = dict.fromkeys([c.name for c in pk] + list(column.context_columns))
    ciphertext, key_id = table.c[column.ciphertext], table.c[column.key_id]
    query = (
        sa.select(*(table.c[name] for name in names), key_id, ciphertext)
        .where(key_id.is_not(None), key_id != sealer.key_id, ciphertext.is_not(None))
        .order_by(*pk)
        .limit(limit)
    )
    if after is not None:
        query = query.where(sa.tuple_(*pk) > sa.tuple_(*_literals(pk, after)))
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).mappings().all()
    return [
        SealedRow(
            key=tuple(row[c.name] for c in pk),
            key_id=row[column.key_id],
            ciphertext=row[column.ciphertext],
            context=column.context(dict(row)),
        )
        for row in rows
    ]


def reseal(rows: Sequence[SealedRow], sealer: Sealer) -> tuple[list[Resealed], Counter[str]]:
    """Each row opened under its key and sealed under the current one; the rows that did not
    open (key not held, or not this row's ciphertext), counted by key id."""
    resealed, unreadable = [], Counter[str]()
    for row in rows:
        try:
            document = sealer.open(row.ciphertext, key_id=row.key_id, context=row.context)
        except (UnknownKey, InvalidTag):
            unreadable[row.key_id] += 1
            continue
        new = sealer.seal(document, context=row.context)
        resealed.append(Resealed(row.key, row.key_id, row.ciphertext, new))
    return resealed, unreadable


async def write_back(
    database: Database, sealer: Sealer, column: SealedColumn, rows: Sequence[Resealed]
) -> int:
    """The rows written in one transaction, each only if it is still as read and not locked by
    the service; how many were written."""
    if not rows:
        return 0
    table, pk = column.table, column.primary_key
    async with database.engine.begin() as connection:
        held = await connection.execute(
            sa.select(*pk)
            .where(sa.tuple_(*pk).in_([r.key for r in rows]))
            .with_for_update(skip_locked=True)
        )
        locked = {tuple(key) for key in held}
        mine = [r for r in rows if r.key in locked]
        if not mine:
            return 0
        written = _values(column, mine)
        result = await connection.execute(
            sa.update(table)
            .where(
                *(c == written.c[c.name] for c in pk),
                table.c[column.key_id] == written.c.old_key_id,
                table.c[column.ciphertext] == written.c.old,
            )
            .values({column.ciphertext: written.c.new, column.key_id: sealer.key_id})
            .returning(*pk)
        )
        return len(result.all())


async def key_ids_in_use(database: Database, column: SealedColumn) -> dict[str, int]:
    """Key id → how many rows of `column` are sealed under it."""
    key_id, ciphertext = column.table.c[column.key_id], column.table.c[column.ciphertext]
    query = sa.select(key_id, sa.func.count()).where(ciphertext.is_not(None)).group_by(key_id)
    async with database.engine.connect() as connection:
        return {k: n for k, n in await connection.execute(query)}


def _literals(columns: Sequence[sa.Column[Any]], values: Key) -> list[Any]:
    return [sa.literal(v, c.type) for c, v in zip(columns, values, strict=True)]


def _values(column: SealedColumn, rows: Sequence[Resealed]) -> Any:
    """The batch as a VALUES list to join the UPDATE with: one statement per batch."""
    return sa.values(
        *(sa.column(c.name, c.type) for c in column.primary_key),
        sa.column("old_key_id", sa.String),
        sa.column("old", sa.LargeBinary),
        sa.column("new", sa.LargeBinary),
        name="resealed",
    ).data([(*r.key, r.old_key_id, r.old, r.new) for r in rows])


# The command (`python -m canbao_<service>.reseal`): each service names its columns and builds
# its sealer from its own settings, then hands over to `main`.


async def reseal_service(
    database_url: str,
    sealer: Sealer,
    columns: Sequence[SealedColumn],
    *,
    batch_size: int = BATCH_SIZE,
) -> list[ColumnReport]:
    database = Database(database_url, pool_size=2)
    try:
        return [
            await reseal_column(database, sealer, column, batch_size=batch_size)
            for column in columns
        ]
    finally:
        await database.dispose()


def report_lines(service: str, sealer: Sealer, reports: Sequence[ColumnReport]) -> list[str]:
    """What the command prints: counts and key ids only, never a row's contents."""

    def key(key_id: str) -> str:
        return key_id if key_id in sealer.keys else f"{key_id} (key not held)"

    lines = []
    for r in reports:
        unreadable = ", ".join(f"{key(k)}: {n}" for k, n in sorted(r.unreadable.items()))
        remaining = ", ".join(f"{key(k)}: {n}" for k, n in sorted(r.remaining.items()))
        lines.append(
            f"{service}: {r.column}: {r.rewritten} rewritten, {r.skipped} skipped (changed or "
            f"locked by the service), {sum(r.unreadable.values())} unreadable"
            + (f" ({unreadable})" if unreadable else "")
            + f"; rows per key id now: {remaining or 'none'}"
        )
    for retired in sorted(set(sealer.keys) - {sealer.key_id}):
        if rows := sum(r.remaining.get(retired, 0) for r in reports):
            lines.append(f"{service}: retired key {retired} still seals {rows} rows: keep it")
        else:
            lines.append(f"{service}: retired key {retired} seals no row: it can be removed")
    return lines


def exit_status(sealer: Sealer, reports: Sequence[ColumnReport]) -> int:
    """1 if a row did not open or is left under a key the sealer does not hold, else 0."""
    stuck = any(r.unreadable for r in reports) or any(
        k not in sealer.keys for r in reports for k in r.remaining
    )
    return 1 if stuck else 0


def main(
    service: str,
    database_url: str,
    sealer: Sealer,
    columns: Sequence[SealedColumn],
    argv: list[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m canbao_{service}.reseal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    args = parser.parse_args(argv)
    print(f"{service}: resealing under key {sealer.key_id}")
    reports = asyncio.run(reseal_service(database_url, sealer, columns, batch_size=args.batch_size))
    for line in report_lines(service, sealer, reports):
        print(line)
    return exit_status(sealer, reports)
