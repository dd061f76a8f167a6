"""Identity's tables as the handlers use them: load and save source records, find owners of
numbers and demographic keys, persons. Never commits (the unit of work does)."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.sql.dml import ReturningDelete

from canbao_identity import history
from canbao_identity.golden import LinkedRecord
from canbao_identity.metrics import Backlog
from canbao_identity.protection import Protector, record_context
from canbao_identity.records import FactDraft
from canbao_identity.resolution import LinkKind, ReviewOutcome, ReviewState
from canbao_identity.staging import StagedChange
from canbao_identity.tables import (
    STAGED_SHARES,
    identities,
    pending_persons,
    persons,
    review_queue,
    set_aside_persons,
    source_records,
)
from canbao_platform import bulk

LINKED = (LinkKind.EXACT.value, LinkKind.CANDIDATE.value, LinkKind.REFERENCE.value)


class FullLooks:
    """When a queue's next look must start from the beginning rather than at a floor: every
    `every_s`, or ten times as long as the last such look took, so that these looks, slow
    when the queue's dead entries are many, never take more than a tenth of the taker's time.
    staged_changes and pending_persons are queues — every row is deleted soon after it is
    written — and until vacuum runs, the start of their indexes is a run of dead entries that a
    look from the beginning steps through, longer the faster rows come and go. A taker starts
    at the floor of its last take instead; a row that comes back below the floor (committed
    late, or put back by a rollback) waits for the next look from the beginning."""

    def __init__(self, every_s: float) -> None:
        self._every_s = every_s
        self._started_at = -math.inf  # when the last look from the beginning started
        self._took = 0.0  # how long the last one that finished took (`done`)
        self._under_way = False

    def due(self) -> bool:
        """Whether this look starts from the beginning (and is then timed until `done`)."""
        if time.monotonic() - self._started_at >= max(self._every_s, 10 * self._took):
            self._started_at, self._under_way = time.monotonic(), True
            return True
        return False

    def done(self) -> None:
        """The look just begun is done."""
        if self._under_way:
            self._took, self._under_way = time.monotonic() - self._started_at, False


class ShareFloors:
    """Per share, the id up to which one resolver took that share's staged changes: where its
    next look for the share's oldest change starts (FullLooks)."""

    def __init__(self, *, full_every_s: float = 5.0) -> None:
        self._floors = [0] * STAGED_SHARES
        self._full = FullLooks(full_every_s)

    def current(self) -> list[int]:
        """The floors for this look: all 0 when a look from the beginning is due."""
        return [0] * STAGED_SHARES if self._full.due() else list(self._floors)

    def looked(self) -> None:
        """The look `current` gave the floors for is done."""
        self._full.done()

    def taken(self, share: int, up_to: int) -> None:
        self._floors[share] = max(self._floors[share], up_to)


class MarkFloor:
    """The newest `marked_at` a builder took from pending_persons (taken oldest mark first):
    where its next take starts (FullLooks). After a first load nearly everyone is pending at
    once, and a take from the beginning read thousands of index pages for its 500 rows."""

    def __init__(self, *, full_every_s: float = 5.0) -> None:
        self._floor: datetime | None = None
        self._full = FullLooks(full_every_s)

    def current(self) -> datetime | None:
        """The floor for this take: None when a take from the beginning is due."""
        return None if self._full.due() else self._floor

    def taken(self, newest: datetime | None) -> None:
        """The take `current` gave the floor for is done, up to `newest` (None: nothing)."""
        self._full.done()
        if newest is not None and (self._floor is None or newest > self._floor):
            self._floor = newest


@dataclass(frozen=True)
class Settling:
    """How persons reached only by a snapshot's reads wait for the rest of it
    (tables.pending_persons): until no read has marked anyone for `quiet_s`, or for
    `max_wait_s` at most (how far behind the registry may fall during a first load). `quiet_s`
    spans the resolution of a large batch of reads with room to spare: a quiet shorter than one
    resolution would let the builder build everyone read so far between two of them."""

    quiet_s: float = 5.0
    max_wait_s: float = 1800.0


# Resolution's advisory locks (transaction-scoped; take_staged, hold_resolution). The resolver's
# key: held shared by every resolution, exclusive by linking work. A share's: (class, share), held
# by the one resolution taking that share's changes (tables.staged_changes).
_RESOLVER_LOCK = 0x6964656E74  # "ident" in ASCII
SHARE_LOCK_CLASS = 0x69647368  # "idsh"
# The shares with staged changes above their floor (ShareFloors), oldest change first — if no
# linking work holds the resolver's key (else none: this resolver finds nothing this time). One
# index probe per share.
_SHARES_TO_TAKE = sa.text(
    "SELECT CASE WHEN pg_try_advisory_xact_lock_shared(:key) THEN ARRAY("
    " SELECT s FROM (SELECT s, (SELECT id FROM staged_changes WHERE share = s"
    "  AND id > (CAST(:floors AS bigint[]))[s + 1] ORDER BY id LIMIT 1)"
    f" AS oldest FROM generate_series(0, {STAGED_SHARES - 1}) s) o"
    " WHERE oldest IS NOT NULL ORDER BY oldest) END"
)
# Dependents (ac02/ac60) follow the row they name: reference when it has a person, else waiting.
_RELINK = sa.text(
    "UPDATE source_records s SET person_id = v.pid, link_kind = CASE WHEN v.pid IS NULL "
    "THEN 'waiting' ELSE 'reference' END, updated_at = now() "
    "FROM (SELECT unnest(CAST(:refs AS text[])) AS ref, unnest(CAST(:pids AS uuid[])) AS pid) v "
    "WHERE s.link_ref = v.ref AND NOT s.deleted AND s.person_id IS DISTINCT FROM v.pid"
)


# Bulk writes (canbao_platform.bulk). JSON columns take text: facts and provenance as staged,
# the persons' documents encoded in save_persons.
# Every column but updated_at (the statements set it), the keys first.
_RECORD_COLUMNS = bulk.columns(source_records, without=("updated_at",))
_PERSON_COLUMNS = bulk.columns(persons, without=("updated_at",))
_SAVE_RECORDS = sa.text(
    bulk.insert("source_records", _RECORD_COLUMNS)
    + " ON CONFLICT (source_table, record_key) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in list(_RECORD_COLUMNS)[2:] if c != "changed_at")
    # The later of what we knew and what the change says: a snapshot read dates a row by its
    # updated_at, which may be older than the streamed change we already applied.
    + ", changed_at = greatest(source_records.changed_at, excluded.changed_at)"
    + ", updated_at = now()"
    # Only a newer change: resolution drops older ones (GoldenRecords.resolve), but a row another
    # resolver inserted meanwhile was not there to compare with (a dependent's deletion may be
    # resolved in another share than its versions, tables.staged_changes).
    + " WHERE source_records.position < excluded.position"
)
_SAVE_PERSONS = sa.text(
    "UPDATE persons p SET "
    + ", ".join(f"{c} = {bulk.value(c, t)}" for c, t in list(_PERSON_COLUMNS.items())[1:])
    + f", updated_at = now() FROM {bulk.rows(_PERSON_COLUMNS)} WHERE p.person_id = v.person_id"
)
_SAVE_CHANGES = sa.text(history.INSERT)
# A person already pending is locked, not skipped (an update that keeps their place in the
# queue, `marked_at`): a builder that took the row to rebuild the person before this
# transaction's records were committed makes this wait until it has, and the row is then inserted
# afresh; a builder that comes later skips the locked row until then. With DO NOTHING, a rebuild
# that read the person's records before this commit consumed the mark and the new record was never
# built in. The update notes when they were last marked, and they keep settling only while every
# mark came from a snapshot's reads (tables.pending_persons).
# Marked at the statement's time, not the transaction's start (now()): a resolution of a large
# batch may take seconds, and its marks must look as recent as they are.
_MARK_PENDING = sa.text(
    "INSERT INTO pending_persons (person_id, settling, last_marked_at) "
    "SELECT *, clock_timestamp() FROM unnest(CAST(:ids AS uuid[]), CAST(:settling AS boolean[])) "
    "ON CONFLICT (person_id) DO UPDATE SET last_marked_at = excluded.last_marked_at, "
    "settling = pending_persons.settling AND excluded.settling"
)
# A snapshot is still coming in: its reads marked a settling person lately. (Not "a read is
# staged": a look into the staged queue steps through its dead entries, ShareFloors; the
# builder resolves before it rebuilds, so reads still staged mark someone before it asks.)
_SNAPSHOT_STREAMING = sa.text(
    "SELECT coalesce((SELECT max(last_marked_at) FROM pending_persons WHERE settling) "
    "> now() - make_interval(secs => :quiet_s), false)"
)
# The numbers nobody holds yet, each with its new person (Store.claim_identities).
_CLAIM = sa.text(
    "WITH won AS (INSERT INTO identities (document_type, number_index, person_id)"
    " SELECT * FROM unnest(CAST(:types AS text[]), CAST(:indexes AS text[]),"
    " CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING RETURNING person_id)"
    " INSERT INTO persons (person_id) SELECT person_id FROM won ON CONFLICT DO NOTHING"
)
_ENSURE_PERSONS = sa.text(
    "INSERT INTO persons (person_id) SELECT unnest(CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING"
)
# What resolution compares a change with, and what a rebuild reads: not the whole row.
_RESOLUTION_COLUMNS = ("source_table", "record_key", "person_id", "link_kind", "position")
# Read positionally (Store._linked), in this order: a Row's attribute costs ~0.25 µs, its
# unpacking ~0.05 µs for all of them, for every record of every person rebuilt.
_LINKED_COLUMNS = (
    "source_table", "record_key", "person_id", "link_kind", "position", "observed_at",
    "claims_ciphertext", "key_id", "facts", "provenance", "changed_at",
)  # fmt: skip
_LINK_KINDS = {kind.value: kind for kind in LinkKind}
# The oldest staged change by id (the primary key's index), not by a scan for min(staged_at).
_BACKLOG = sa.text(
    "SELECT (SELECT count(*) FROM staged_changes) AS staged, "
    "(SELECT extract(epoch FROM clock_timestamp() - staged_at) FROM staged_changes "
    " ORDER BY id LIMIT 1) AS oldest_age_s, "
    "p.pending, p.settling, (SELECT count(*) FROM set_aside_persons) AS set_aside "
    "FROM (SELECT count(*) AS pending, count(*) FILTER (WHERE settling) AS settling "
    " FROM pending_persons) p"  # one scan of the pending persons for both counts
)
_SET_ASIDE = sa.text(
    "INSERT INTO set_aside_persons (person_id, reason) VALUES (:person_id, :reason) "
    "ON CONFLICT (person_id) DO UPDATE SET reason = excluded.reason, set_aside_at = now()"
)
_RETRY_SET_ASIDE = sa.text(
    "INSERT INTO pending_persons (person_id) SELECT person_id FROM set_aside_persons "
    "ON CONFLICT DO NOTHING"
)


# A resolution's take (Store.take_staged), in one statement: the shares in the order given
# (oldest change first), each whose lock this transaction gets (a transaction-scoped advisory
# lock: one resolver per share at a time) giving its oldest changes above its floor, one share
# after another until `limit` changes are chosen; those are deleted and returned, with their
# share. A walk (recursive CTE) rather than a statement per share: a resolver that keeps up with
# the consumers finds a few changes in each of the 64 shares, and took them by 64 statements.
#
# Without row locks: the share's lock already makes this transaction the only one taking the
# share's rows, and a row that one before it took and committed after this statement's snapshot
# is skipped by the DELETE itself (READ COMMITTED rechecks it). A row lock each would cost a heap
# write and a WAL record per change resolved, on top of its deletion. The chosen rows are found
# again by their place in the heap (`ctid = ANY (…)`, a TID scan): a staged change is never
# updated, and a row this statement's snapshot sees cannot be vacuumed away under it, so its
# ctid is its address until the DELETE. By `id = ANY (…)` each was a descent of the primary
# key's index: 3.8 of the 6.6 buffers read per change taken from a staged backlog.
#
# A staged change's facts and provenance go on to source_records as they are: read as text. In
# StagedChange's field order, so a row makes one positionally: a tenth of the time by name.
_STAGED_RETURNING = ", ".join(
    f"CAST({name} AS text) AS {name}" if name in ("facts", "provenance") else name
    for name in (f.name for f in fields(StagedChange))
)
TAKE_SHARES = sa.text(f"""
    WITH RECURSIVE walk (step, ctids, chosen) AS (
        SELECT 0, CAST('{{}}' AS tid[]), 0
      UNION ALL
        SELECT w.step + 1, w.ctids || taken.ctids, w.chosen + cardinality(taken.ctids)
        FROM walk w CROSS JOIN LATERAL (
            SELECT CASE WHEN pg_try_advisory_xact_lock({SHARE_LOCK_CLASS}, this.share)
                THEN ARRAY(
                    SELECT ctid FROM staged_changes
                    WHERE share = this.share
                      AND id > (CAST(:floors AS bigint[]))[this.share + 1]
                    ORDER BY id LIMIT :limit - w.chosen)
                ELSE CAST('{{}}' AS tid[]) END AS ctids
            FROM (SELECT (CAST(:shares AS int[]))[w.step + 1] AS share) AS this
        ) AS taken
        WHERE w.step < cardinality(CAST(:shares AS int[])) AND w.chosen < :limit
    )
    DELETE FROM staged_changes
    WHERE ctid = ANY (CAST((SELECT ctids FROM walk ORDER BY step DESC LIMIT 1) AS tid[]))
    RETURNING {_STAGED_RETURNING}, share
""")


# The pending persons not settling, as the predicate of ix_pending_persons_due reads (`NOT
# settling`): the planner uses a partial index only for a condition it can prove implies the
# index's, and it cannot from `settling IS false`, so a take on that condition scanned the whole
# queue — the million persons a first load leaves settling — to find none due.
DUE: Final = sa.not_(pending_persons.c.settling)


def take_pending(
    limit: int,
    condition: sa.ColumnElement[bool] | sa.TextClause,
    *,
    since: datetime | None = None,
) -> ReturningDelete[Any]:
    """Up to `limit` pending persons meeting `condition` and marked at `since` or later (a
    MarkFloor's), oldest mark first, that no other transaction holds (FOR UPDATE SKIP LOCKED),
    deleted and returned with their marks. They are found again by `person_id = ANY (ARRAY(…))`:
    the choice runs once as an initplan and the rows are fetched by the primary key's index
    whatever the planner believes of the queue's size; as `IN (…)`, a plan made while the queue
    was nearly empty may join the choice against every row once it holds millions."""
    c = pending_persons.c
    chosen = (
        sa.select(c.person_id)
        .where(condition, *(() if since is None else (c.marked_at >= since,)))
        .order_by(c.marked_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (
        sa.delete(pending_persons)
        .where(c.person_id == sa.any_(sa.func.array(chosen.scalar_subquery())))
        .returning(c.person_id, c.marked_at)
    )


def _pairs(first: Any, second: Any, pairs: Iterable[tuple[str, str]]) -> tuple[Any, Any]:
    """A join target for rows whose (first, second) is one of `pairs`, and its condition.

    Through unnest() of two arrays, not a row-value IN list: PostgreSQL takes over a second to
    plan an IN list of 2,000 pairs, and plans this as one index probe per pair."""
    a, b = zip(*sorted(pairs), strict=True)
    keys = (
        sa.func.unnest(_array(list(a), sa.Text), _array(list(b), sa.Text))
        .table_valued("a", "b")
        .render_derived(name="k")
    )
    return keys, sa.and_(first == keys.c.a, second == keys.c.b)


def _any(column: Any, values: Iterable[Any], item_type: Any = sa.Text) -> Any:
    """`column = ANY(array)`: one parameter however many values (see _pairs)."""
    return column == sa.any_(_array(list(values), item_type))


def _array(values: list[Any], item_type: Any) -> Any:
    return sa.bindparam(None, values, type_=ARRAY(item_type))


@dataclass
class Store:
    session: AsyncSession
    protector: Protector

    async def _connection(self) -> AsyncConnection:
        # Core statements on the unit of work's own connection (same transaction).
        return await self.session.connection()

    async def demographic_matches(self, demographic_index: str | None) -> tuple[UUID, ...]:
        if demographic_index is None:
            return ()
        rows = await (await self._connection()).scalars(
            sa.select(persons.c.person_id)
            .where(persons.c.demographic_index == demographic_index)
            .limit(2)
        )
        return tuple(rows)

    async def records(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        """The current rows of these records, locked until the unit of work ends."""
        if not keys:
            return {}
        wanted, on = _pairs(source_records.c.source_table, source_records.c.record_key, keys)
        query = (
            sa.select(*(source_records.c[name] for name in _RESOLUTION_COLUMNS))
            .join(wanted, on)
            .with_for_update(of=source_records)
        )
        rows = (await (await self._connection()).execute(query)).all()
        return {(row.source_table, row.record_key): row for row in rows}

    async def save_records(self, rows: list[dict[str, Any]]) -> None:
        """Upsert the records' current state (one row per key): one statement, a column array
        per column."""
        if not rows:
            return
        await (await self._connection()).execute(_SAVE_RECORDS, bulk.arrays(rows, _RECORD_COLUMNS))

    async def number_owners(self, numbers: set[tuple[str, str]]) -> dict[tuple[str, str], UUID]:
        if not numbers:
            return {}
        wanted, on = _pairs(identities.c.document_type, identities.c.number_index, numbers)
        query = sa.select(identities).join(wanted, on)
        rows = (await (await self._connection()).execute(query)).all()
        return {(row.document_type, row.number_index): row.person_id for row in rows}

    async def claim_identities(
        self, claims: dict[tuple[str, str], UUID]
    ) -> dict[tuple[str, str], UUID]:
        """Give each unheld number its new person; where a concurrent unit of work won the
        race, its person (read back), so the loser's uuid never becomes a person.

        The claims and the persons they found commit at once, in a short transaction of their
        own: a person's records lie in several shares (tables.staged_changes), so during a first
        snapshot resolvers claim the same new numbers all the time, and a claim (or its person's
        row) held until its resolution commits made the others wait for all of it, one
        resolution after another. A claim whose resolution then rolls back stays: the number's
        person is reserved (a person row with nothing linked yet, as between a resolution and
        its rebuild), and is linked and built when the changes, staged again by the rollback,
        are resolved again. In key order, so concurrent claims lock the numbers in one order."""
        numbers = sorted(claims)
        engine = self.session.bind
        assert isinstance(engine, AsyncEngine), "a session bound to the engine"
        async with engine.begin() as connection:
            await connection.execute(
                _CLAIM,
                {
                    "types": [d for d, _ in numbers],
                    "indexes": [i for _, i in numbers],
                    "ids": [claims[n] for n in numbers],
                },
            )
        return await self.number_owners(set(claims))

    async def ensure_persons(self, person_ids: set[UUID]) -> None:
        if person_ids:
            await (await self._connection()).execute(
                _ENSURE_PERSONS, {"ids": sorted(person_ids, key=str)}
            )

    async def demographic_matches_many(self, indexes: set[str]) -> dict[str, tuple[UUID, ...]]:
        """Persons per demographic key (two at most: one is a candidate, two are too many)."""
        if not indexes:
            return {}
        rows = (
            await (await self._connection()).execute(
                sa.select(persons.c.demographic_index, persons.c.person_id)
                .where(_any(persons.c.demographic_index, sorted(indexes)))
                .order_by(persons.c.person_id)
            )
        ).all()
        found: dict[str, tuple[UUID, ...]] = {}
        for row in rows:
            found[row.demographic_index] = (
                *found.get(row.demographic_index, ())[:1],
                row.person_id,
            )
        return found

    async def reference_owners(self, refs: set[str]) -> dict[str, UUID | None]:
        """The person each referenced row (si_core.ac01) is linked to."""
        if not refs:
            return {}
        keys = [(table, key) for table, _, key in (ref.partition("|") for ref in refs)]
        wanted, on = _pairs(source_records.c.source_table, source_records.c.record_key, keys)
        query = (
            sa.select(
                source_records.c.source_table,
                source_records.c.record_key,
                source_records.c.person_id,
            )
            .join(wanted, on)
            .where(
                source_records.c.link_kind.in_(LINKED[:2]),
                source_records.c.deleted.is_(False),
            )
        )
        rows = (await (await self._connection()).execute(query)).all()
        return {f"{row.source_table}|{row.record_key}": row.person_id for row in rows}

    async def relink_dependents_many(self, owners: dict[str, UUID | None]) -> set[UUID]:
        """Rows naming one of these rows follow it to its person (or wait when it has none);
        the persons they leave and join, returned."""
        if not owners:
            return set()
        connection = await self._connection()
        refs = sorted(owners)
        left = set(
            (
                await connection.scalars(
                    sa.select(source_records.c.person_id)
                    .distinct()
                    .where(
                        _any(source_records.c.link_ref, refs),
                        source_records.c.deleted.is_(False),
                        source_records.c.person_id.is_not(None),
                    )
                )
            ).all()
        )
        await connection.execute(_RELINK, {"refs": refs, "pids": [owners[r] for r in refs]})
        return left | {p for p in owners.values() if p is not None}

    async def hold_resolution(self) -> None:
        """Wait for the resolver's key, exclusive, and hold it until the unit of work ends:
        whatever links records to persons outside `take_staged`'s units of work (a queued record
        retried or linked by a clerk, a merge) waits for every resolution under way, and none
        starts meanwhile, instead of writing the same records and pending persons in another
        order (a deadlock)."""
        await (await self._connection()).execute(
            sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _RESOLVER_LOCK}
        )

    async def take_staged(
        self, limit: int, floors: ShareFloors | None = None
    ) -> list[StagedChange]:
        """Up to `limit` staged changes, removed (a rollback puts them back): the oldest of the
        shares (tables.staged_changes) this resolver could lock, oldest share first, one share
        after another until `limit` is reached. A share is resolved by one resolver at a time (a
        transaction-scoped advisory lock; the others take other shares), so a record's versions
        and the rows naming an ac01 are resolved in staging order by one; several resolve at
        once. None while linking work holds the resolver's key (`hold_resolution`). A resolver
        that runs again and again passes its `floors`: each share is looked at above it."""
        connection = await self._connection()
        current = floors.current() if floors is not None else [0] * STAGED_SHARES
        shares = await connection.scalar(
            _SHARES_TO_TAKE, {"key": _RESOLVER_LOCK, "floors": current}
        )
        if floors is not None:
            floors.looked()
        if not shares:
            return []
        rows = (
            await connection.execute(
                TAKE_SHARES, {"shares": shares, "limit": limit, "floors": current}
            )
        ).all()
        if floors is not None:
            newest: dict[int, int] = {}
            for row in rows:
                newest[row.share] = max(newest.get(row.share, 0), row.id)
            for share, up_to in newest.items():
                floors.taken(share, up_to)
        return [StagedChange(*row[:-1]) for row in sorted(rows, key=lambda r: r.id)]

    async def ensure_person(self, person_id: UUID) -> None:
        await (await self._connection()).execute(
            insert(persons).values(person_id=person_id).on_conflict_do_nothing()
        )

    async def person(self, person_id: UUID) -> Any:
        return (
            await (await self._connection()).execute(
                sa.select(persons).where(persons.c.person_id == person_id).with_for_update()
            )
        ).first()

    async def persons(self, person_ids: list[UUID]) -> dict[UUID, Any]:
        """What a rebuild compares with (demographic key, what was last published and built), locked
        until the unit of work ends (two builders never rebuild one person at once)."""
        rows = (
            await (await self._connection()).execute(
                sa.select(
                    persons.c.person_id,
                    persons.c.demographic_index,
                    persons.c.public_state,
                    persons.c.emitted_facts,
                    # The last golden record: what the history compares with (history.py).
                    persons.c.golden_ciphertext,
                    persons.c.key_id,
                )
                .where(_any(persons.c.person_id, person_ids, PG_UUID(as_uuid=True)))
                .order_by(persons.c.person_id)
                .with_for_update()
            )
        ).all()
        return {row.person_id: row for row in rows}

    async def linked_records(self, person_ids: list[UUID]) -> dict[UUID, list[LinkedRecord]]:
        """Each person's current linked records, claims decrypted."""
        rows = (
            await (await self._connection()).execute(
                sa.select(*(source_records.c[name] for name in _LINKED_COLUMNS)).where(
                    _any(source_records.c.person_id, person_ids, PG_UUID(as_uuid=True)),
                    source_records.c.deleted.is_(False),
                    source_records.c.link_kind.in_(LINKED),
                )
            )
        ).all()
        found: dict[UUID, list[LinkedRecord]] = {}
        for row in rows:
            found.setdefault(row[2], []).append(self._linked(row))  # person_id
        return found

    async def mark_pending(
        self, person_ids: Iterable[UUID], *, settling: Iterable[UUID] = ()
    ) -> None:
        """`person_ids` due for a rebuild; `settling` reached only by a snapshot's reads
        (tables.pending_persons): they wait for the rest of it, unless also marked due."""
        due = set(person_ids)
        marks = {person_id: False for person_id in due} | {
            person_id: True for person_id in settling if person_id not in due
        }
        ids = sorted(marks, key=str)
        if ids:
            await (await self._connection()).execute(
                _MARK_PENDING, {"ids": ids, "settling": [marks[i] for i in ids]}
            )

    async def take_pending(
        self, limit: int, settling: Settling | None = None, floor: MarkFloor | None = None
    ) -> list[UUID]:
        """Up to `limit` pending persons, oldest mark first, removed from the list (in this
        transaction: a rollback puts them back); rows another builder holds are skipped. With
        `settling`, persons still settling are left while a snapshot streams in, unless they
        have waited `settling.max_wait_s`. With `floor`, a builder that takes again and again
        starts where its last take ended, when no snapshot streams in (MarkFloor)."""
        streaming = settling is not None and bool(
            await (await self._connection()).scalar(
                _SNAPSHOT_STREAMING, {"quiet_s": settling.quiet_s}
            )
        )
        if not streaming:
            since = floor.current() if floor is not None else None
            rows = await self._take_pending_rows(limit, sa.true(), since)
            if floor is not None:
                floor.taken(max((row[1] for row in rows), default=None))
            return [row[0] for row in rows]
        assert settling is not None
        due = await self._take_pending(limit, DUE)
        if len(due) == limit:
            return due
        overdue = sa.text("marked_at < now() - make_interval(secs => :max_wait_s)")
        return due + await self._take_pending(
            limit - len(due), overdue.bindparams(max_wait_s=settling.max_wait_s)
        )

    async def _take_pending(
        self, limit: int, condition: sa.ColumnElement[bool] | sa.TextClause
    ) -> list[UUID]:
        return [row[0] for row in await self._take_pending_rows(limit, condition)]

    async def _take_pending_rows(
        self,
        limit: int,
        condition: sa.ColumnElement[bool] | sa.TextClause,
        since: datetime | None = None,
    ) -> list[Any]:
        """(person_id, marked_at) of each person taken."""
        statement = take_pending(limit, condition, since=since)
        return list((await (await self._connection()).execute(statement)).all())

    async def backlog(self) -> Backlog:
        """What the builder has yet to do: staged changes (and the oldest one's age), pending
        persons."""
        row = (await (await self._connection()).execute(_BACKLOG)).one()
        return Backlog(
            row.staged, float(row.oldest_age_s or 0.0), row.pending, row.set_aside, row.settling
        )

    async def set_aside(self, person_id: UUID, reason: str) -> None:
        """The person's rebuild failed for `reason` (value-free): set aside, no longer pending."""
        await (await self._connection()).execute(
            _SET_ASIDE, {"person_id": person_id, "reason": reason[:300]}
        )

    async def clear_set_aside(self, person_ids: list[UUID]) -> None:
        """These persons were rebuilt: whatever set them aside is over."""
        await (await self._connection()).execute(
            sa.delete(set_aside_persons).where(
                _any(set_aside_persons.c.person_id, person_ids, PG_UUID(as_uuid=True))
            )
        )

    async def set_aside_persons(self) -> list[Any]:
        """Who is set aside, why and since when, oldest first."""
        query = sa.select(set_aside_persons).order_by(set_aside_persons.c.set_aside_at)
        return list((await (await self._connection()).execute(query)).all())

    async def retry_set_aside(self) -> int:
        """Every set-aside person pending again (each stays listed until rebuilt): how many."""
        result = await (await self._connection()).execute(_RETRY_SET_ASIDE)
        return int(result.rowcount or 0)

    def _linked(self, row: Any) -> LinkedRecord:
        """A row of _LINKED_COLUMNS as the record it is."""
        (
            source_table, record_key, _, link_kind, position, observed_at,
            claims_ciphertext, key_id, facts, provenance, changed_at,
        ) = row  # fmt: skip
        claims = {}
        if claims_ciphertext is not None:
            claims = self.protector.decrypt(
                claims_ciphertext, key_id=key_id, context=record_context(source_table, record_key)
            )
        return LinkedRecord(
            source_table=source_table,
            record_key=record_key,
            link_kind=_LINK_KINDS[link_kind],
            position=position,
            observed_at=observed_at,
            claims=claims,
            facts=tuple([FactDraft(f["kind"], f["fields"]) for f in facts]),
            provenance=provenance or {},
            changed_at=changed_at,
        )

    async def save_persons(self, values: list[dict[str, Any]]) -> None:
        """Each rebuilt person's new state (GoldenRecords._rebuild_one's dicts): one statement."""
        if not values:
            return
        encoded = (
            row | {c: bulk.to_json(row[c]) for c in ("public_state", "emitted_facts")}
            for row in values
        )
        await (await self._connection()).execute(
            _SAVE_PERSONS, bulk.arrays(encoded, _PERSON_COLUMNS)
        )

    async def save_changes(self, rows: list[dict[str, Any]]) -> None:
        """Rows of the change history (history.py): one statement, none without rows."""
        if rows:
            await (await self._connection()).execute(
                _SAVE_CHANGES, bulk.arrays(rows, history.COLUMNS)
            )

    async def move_person(self, merged: UUID, survivor: UUID) -> None:
        """Every record, number and queue decision of `merged` now belongs to `survivor`."""
        connection = await self._connection()
        for table in (source_records, identities, review_queue):
            await connection.execute(
                sa.update(table).where(table.c.person_id == merged).values(person_id=survivor)
            )

    async def retire_person(self, person_id: UUID) -> None:
        connection = await self._connection()
        await connection.execute(
            sa.delete(pending_persons).where(pending_persons.c.person_id == person_id)
        )
        await connection.execute(sa.delete(persons).where(persons.c.person_id == person_id))

    async def link_candidate(self, source_table: str, record_key: str, person_id: UUID) -> None:
        await (await self._connection()).execute(
            sa.update(source_records)
            .where(
                source_records.c.source_table == source_table,
                source_records.c.record_key == record_key,
                source_records.c.deleted.is_(False),
            )
            .values(person_id=person_id, link_kind=LinkKind.CANDIDATE.value)
        )

    async def open_review(
        self, source_table: str, record_key: str, reason: str, demographic_index: str | None
    ) -> None:
        statement = insert(review_queue).values(
            source_table=source_table,
            record_key=record_key,
            reason=reason,
            demographic_index=demographic_index,
            state=ReviewState.OPEN,
        )
        await (await self._connection()).execute(
            statement.on_conflict_do_update(
                index_elements=["source_table", "record_key"],
                set_={
                    "reason": reason,
                    "demographic_index": demographic_index,
                    "state": ReviewState.OPEN,
                    "resolution": None,
                    "person_id": None,
                    "resolved_by": None,
                    "resolved_at": None,
                },
                where=review_queue.c.state == ReviewState.OPEN,  # a clerk's decision stands
            )
        )

    async def review_entry_of(self, source_table: str, record_key: str) -> Any:
        """The review-queue entry of a source record, if it was ever queued."""
        return (
            await (await self._connection()).execute(
                sa.select(review_queue).where(
                    review_queue.c.source_table == source_table,
                    review_queue.c.record_key == record_key,
                )
            )
        ).first()

    async def close_review(
        self,
        source_table: str,
        record_key: str,
        resolution: ReviewOutcome,
        person_id: UUID | None,
        resolved_by: str,
    ) -> None:
        await (await self._connection()).execute(
            sa.update(review_queue)
            .where(
                review_queue.c.source_table == source_table,
                review_queue.c.record_key == record_key,
                review_queue.c.state == ReviewState.OPEN,
            )
            .values(
                state=ReviewState.RESOLVED,
                resolution=resolution,
                person_id=person_id,
                resolved_by=resolved_by,
                resolved_at=sa.func.now(),
            )
        )

    async def review_entry(self, entry_id: int, *, for_update: bool = False) -> Any | None:
        """A review-queue entry; `for_update`: locked until the unit of work ends."""
        query = sa.select(review_queue).where(review_queue.c.entry_id == entry_id)
        if for_update:
            query = query.with_for_update()
        return (await (await self._connection()).execute(query)).first()

    async def review_entries(self, state: str, *, after: int, limit: int) -> list[Any]:
        """A page of the entries in `state`, by entry id after `after`."""
        query = (
            sa.select(review_queue)
            .where(review_queue.c.state == state, review_queue.c.entry_id > after)
            .order_by(review_queue.c.entry_id)
            .limit(limit)
        )
        return list((await (await self._connection()).execute(query)).all())

    async def open_reviews_for(self, demographic_indexes: Iterable[str]) -> list[Any]:
        return list(
            (
                await (await self._connection()).execute(
                    sa.select(review_queue).where(
                        _any(review_queue.c.demographic_index, sorted(demographic_indexes)),
                        review_queue.c.state == ReviewState.OPEN,
                    )
                )
            ).all()
        )
