"""Batches from partner departments (api.md "Partner departments"): a CSV or JSON Lines file of
one dataset (canbao_contracts.partners), read as it streams in, every row checked, the accepted
rows staged for resolution exactly like a change event of that source table (the same adapter,
the same precedence), the refused ones kept by line number with every reason.

Nothing is lost, and nothing is held whole:
* the body is read line by line (a line is at most `MAX_LINE_BYTES`; memory does not grow with
  the batch), `CHUNK_ROWS` rows per transaction;
* each transaction stages the chunk's accepted rows, writes its refused lines and moves the
  batch's counts, together: `received = accepted + rejected` holds at every commit (and a check
  constraint says so);
* a batch is unique per client and Idempotency-Key. The same key again after the batch was
  received is answered with that batch and executes nothing (the body is read to compare its
  digest: another body under a used key is 409 `idempotency-key-reused`). An upload cut off
  midway leaves the batch `receiving`; sending it again with the same key takes it over from the
  first line — rows already staged are staged again at the same position, which resolution
  treats as the same change.

An accepted row is a record of the registry keyed by the dataset's key columns (a number as its
blind index), so the same row in a later batch updates that record rather than adding one; its
position is the batch's sequence × 10^8 + its line, so the later batch wins.

A file is UTF-8 or GB18030 (api.md "Partner departments": GBK files are common in Chinese
departments), declared or detected, and the batch says which (`encoding`, `encoding_source`):
* declared: the Content-Type's `charset` (canbao_contracts.partners.read_content_type: `gbk` and
  `gb2312` are read as GB18030, their superset); any other charset is refused whole, 415
  `unsupported-charset`, nothing stored;
* detected otherwise, from the first lines only (`DETECT_BYTES`, never the whole body): a UTF-8
  BOM is UTF-8, a GB18030 one GB18030; else UTF-8 unless more of those lines with a non-ASCII
  byte fail to decode as UTF-8 than decode (Chinese text in GB18030 is practically never valid
  UTF-8, while UTF-8 text mostly is valid GB18030: one broken line of a UTF-8 file does not
  turn it into GB18030).
The body is split into lines as bytes, on 0x0A, which is never part of a multi-byte character
in either encoding, and each line is decoded whole: a character cut between two chunks of the
stream is joined before it is decoded. A line that does not decode in the batch's encoding is
refused alone (`encoding`); the others are read.

Our conventions: a BOM is allowed, one record per line (a quoted line break is not read as part
of a field: that line is refused as malformed); blank lines are not rows; line numbers are the
file's physical lines, counting the CSV header as line 1."""

from __future__ import annotations

import codecs
import csv
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert

from canbao_contracts.partners import (
    CHARSETS,
    OP_COLUMN,
    WITHDRAW,
    Dataset,
    Encoding,
    Kind,
    Rejection,
    check_row,
    missing_columns,
    unknown_columns,
)
from canbao_identity.adapters import ADAPTERS
from canbao_identity.protection import Protector
from canbao_identity.staging import add_staged, stage
from canbao_identity.tables import partner_batch_rejects, partner_batches
from canbao_platform.db import Database
from canbao_platform.messaging import unit_of_work
from canbao_platform.problems import Problem

MAX_LINE_BYTES: Final = 64 * 1024
CHUNK_ROWS: Final = 1000
LINES_PER_BATCH: Final = 10**8  # positions: seq × 10^8 + line
# An upload that has not committed a chunk for this long was cut off: its key may be taken over.
STALE_AFTER: Final = timedelta(seconds=60)
KEY_PREFIX: Final = "partner:"
# The detection of an undeclared encoding reads the body's lines up to this many bytes.
DETECT_BYTES: Final = 64 * 1024
GB18030_BOM: Final = b"\x84\x31\x95\x33"  # U+FEFF in GB18030


class MediaType(StrEnum):
    CSV = "text/csv"
    NDJSON = "application/x-ndjson"


class EncodingSource(StrEnum):
    DECLARED = "declared"  # the Content-Type's charset
    DETECTED = "detected"  # read from the first lines (module docstring)


class CharsetUnsupported(Problem):
    def __init__(self, charset: str) -> None:
        super().__init__(
            415,
            "unsupported-charset",
            "批次须为UTF-8或GB18030编码 (a batch is UTF-8 or GB18030: GBK and GB2312 are read as "
            "GB18030)",
            f"charset {charset!r}; declare utf-8, gb18030, gbk or gb2312, or none to detect it",
            accepted=list(CHARSETS),
        )


class BatchHeaderInvalid(Problem):
    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(
            422,
            "batch-header-invalid",
            "批量文件的表头与数据集不符 (the batch's header does not fit the dataset)",
            detail,
            **extensions,
        )


class BatchInProgress(Problem):
    def __init__(self) -> None:
        super().__init__(
            409,
            "batch-in-progress",
            "同一幂等键的批次正在接收 (a batch with this Idempotency-Key is being received)",
            "retry after the other upload ends, or in a minute",
        )


class IdempotencyKeyReused(Problem):
    def __init__(self) -> None:
        super().__init__(
            409,
            "idempotency-key-reused",
            "此幂等键已用于另一批次 (this Idempotency-Key was used for another batch)",
            "a new batch needs a new Idempotency-Key",
        )


class BatchUnknown(Problem):
    def __init__(self) -> None:
        super().__init__(404, "batch-unknown", "没有此批次 (no such batch)")


@dataclass(frozen=True, slots=True)
class Upload:
    client_id: str
    idempotency_key: str
    dataset: Dataset
    media_type: MediaType
    declared: Encoding | None = None  # the Content-Type's charset; None: detect it


class Lines:
    """The body's physical lines, numbered from 1, without their line ends; a line longer than
    MAX_LINE_BYTES as None (never buffered). The SHA-256 of every byte read, for the replay
    check."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.sha256 = hashlib.sha256()
        self.number = 0

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes | None]]:
        pending = bytearray()
        overlong = False
        async for chunk in self._chunks:
            self.sha256.update(chunk)
            start = 0
            while (end := chunk.find(b"\n", start)) != -1:
                if not overlong:
                    pending += chunk[start:end]
                self.number += 1
                yield (
                    self.number,
                    (
                        None
                        if overlong or len(pending) > MAX_LINE_BYTES
                        else bytes(pending).rstrip(b"\r")
                    ),
                )
                pending.clear()
                overlong = False
                start = end + 1
            if not overlong:
                pending += chunk[start:]
                if len(pending) > MAX_LINE_BYTES:
                    overlong = True
                    pending.clear()
        if pending or overlong:
            self.number += 1
            yield self.number, None if overlong else bytes(pending).rstrip(b"\r")


@dataclass(slots=True)
class Row:
    line: int
    values: dict[str, str | None] = field(default_factory=dict)
    reasons: list[Rejection] = field(default_factory=list)


def _malformed(line: int, message_zh: str, code: str = "malformed-row") -> Row:
    return Row(line, reasons=[Rejection(code, None, message_zh)])


class Reader:
    """One line of the body → a Row (values, or why it is refused)."""

    def __init__(
        self,
        dataset: Dataset,
        media_type: MediaType,
        today: Any,
        encoding: Encoding = Encoding.UTF8,
    ) -> None:
        self.dataset, self.media_type, self.today = dataset, media_type, today
        self.encoding = encoding
        self.header: list[str] | None = None

    def decode(self, line: int, raw: bytes) -> str | None:
        """The line's text in the batch's encoding (a BOM of the first line dropped); None if
        its bytes are not of that encoding."""
        try:
            text = raw.decode(self.encoding.value)
        except UnicodeDecodeError:
            return None
        return text.removeprefix("\ufeff") if line == 1 else text

    def read_header(self, raw: bytes | None, line: int = 1) -> None:
        """The CSV header, or 422 `batch-header-invalid` (nothing is stored)."""
        text = self.decode(line, raw or b"")
        if text is None:
            raise BatchHeaderInvalid(
                f"the header is not {self.encoding.value} text", encoding=self.encoding.value
            )
        names = [name.strip() for name in next(csv.reader([text]), [])]
        if len(set(names)) != len(names):
            raise BatchHeaderInvalid("a column is named twice", columns=names)
        unknown = unknown_columns(self.dataset, names)
        missing = missing_columns(self.dataset, names)
        if unknown or missing:
            raise BatchHeaderInvalid(
                f"dataset {self.dataset.source_table}: unknown columns {unknown}, "
                f"missing required columns {missing}",
                unknown=unknown,
                missing=missing,
                columns=[c.name for c in self.dataset.columns],
            )
        self.header = names

    def row(self, line: int, raw: bytes | None) -> Row:
        if raw is None:
            return _malformed(line, f"行超过{MAX_LINE_BYTES}字节", "line-too-long")
        text = self.decode(line, raw)
        if text is None:
            label = self.encoding.value.upper()
            return _malformed(line, f"不是{label}编码（含无效字节）", "encoding")
        if self.media_type is MediaType.CSV:
            assert self.header is not None
            try:
                fields = next(csv.reader([text], strict=True))
            except csv.Error:
                return _malformed(line, "CSV格式错误（引号不配对或字段内换行）")
            if len(fields) != len(self.header):
                return _malformed(line, f"有{len(fields)}个字段，表头有{len(self.header)}个")
            values: dict[str, object] = dict(zip(self.header, fields, strict=True))
        else:
            try:
                parsed = json.loads(text)
            except ValueError:
                return _malformed(line, "不是JSON")
            if not isinstance(parsed, dict):
                return _malformed(line, "不是JSON对象")
            values = parsed
        clean, reasons = check_row(self.dataset, values, today=self.today)
        return Row(line, clean, reasons)


def record_key(dataset: Dataset, values: dict[str, str | None], protector: Protector) -> str:
    """`partner:` and the key columns as `column=value` (handlers.record_key's form), a number as
    its blind index: never in clear in a key."""
    parts = []
    for name in dataset.key:
        value = values[name]
        if dataset.by_name[name].kind is Kind.ID_NUMBER:
            value = "#" + protector.number_index("01", value or "")
        parts.append(f"{name}={value}")
    return KEY_PREFIX + ",".join(parts)


def detect(prefix: list[bytes]) -> Encoding:
    """The encoding of a batch that declares none, from its first lines (module docstring)."""
    if prefix and prefix[0].startswith(codecs.BOM_UTF8):
        return Encoding.UTF8
    if prefix and prefix[0].startswith(GB18030_BOM):
        return Encoding.GB18030
    decodes = fails = 0
    for raw in prefix:
        if raw.isascii():
            continue
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            fails += 1
        else:
            decodes += 1
    return Encoding.GB18030 if fails > decodes else Encoding.UTF8


async def _detected(
    rows: AsyncIterator[tuple[int, bytes | None]],
) -> tuple[Encoding, AsyncIterator[tuple[int, bytes | None]]]:
    """The encoding detected from the first `DETECT_BYTES` of lines, and all the lines again
    (those read to detect it are held: a bounded prefix, at most DETECT_BYTES + a line)."""
    prefix: list[tuple[int, bytes | None]] = []
    size = 0
    async for item in rows:
        prefix.append(item)
        size += MAX_LINE_BYTES if item[1] is None else len(item[1]) + 1
        if size >= DETECT_BYTES:
            break

    async def again() -> AsyncIterator[tuple[int, bytes | None]]:
        for item in prefix:
            yield item
        async for item in rows:
            yield item

    return detect([raw for _, raw in prefix if raw is not None]), again()


@dataclass(frozen=True, slots=True)
class Claim:
    batch_id: UUID
    seq: int
    attempt: UUID
    replay: bool  # the batch was received already: answer it, execute nothing
    digest: str | None
    dataset: str


async def _claim(
    database: Database, upload: Upload, encoding: Encoding, source: EncodingSource, now: datetime
) -> Claim:
    """The batch this upload writes: a new one, or the key's cut-off one taken over; or the
    key's received batch to replay; 409 `batch-in-progress` while another upload holds it."""
    attempt = uuid.uuid4()
    where = (
        partner_batches.c.client_id == upload.client_id,
        partner_batches.c.idempotency_key == upload.idempotency_key,
    )
    async with database.engine.begin() as connection:
        await connection.execute(
            insert(partner_batches)
            .values(
                batch_id=uuid.uuid4(),
                client_id=upload.client_id,
                idempotency_key=upload.idempotency_key,
                department=upload.dataset.department.value,
                dataset=upload.dataset.name,
                media_type=upload.media_type.value,
                encoding=encoding.value,
                encoding_source=source.value,
                state="receiving",
                attempt=attempt,
                created_at=now,
                heartbeat_at=now,
            )
            .on_conflict_do_nothing()
        )
        row = (
            await connection.execute(sa.select(partner_batches).where(*where).with_for_update())
        ).one()
        if row.state == "received":
            return Claim(row.batch_id, row.seq, row.attempt, True, row.digest, row.dataset)
        if row.attempt != attempt:  # another upload began this batch
            if now - row.heartbeat_at < STALE_AFTER:
                raise BatchInProgress()
            await connection.execute(
                sa.delete(partner_batch_rejects).where(
                    partner_batch_rejects.c.batch_id == row.batch_id
                )
            )
            await connection.execute(
                sa.update(partner_batches)
                .where(*where)
                .values(
                    attempt=attempt,
                    received=0,
                    accepted=0,
                    rejected=0,
                    heartbeat_at=now,
                    dataset=upload.dataset.name,
                    media_type=upload.media_type.value,
                    encoding=encoding.value,
                    encoding_source=source.value,
                )
            )
    return Claim(row.batch_id, row.seq, attempt, False, None, upload.dataset.name)


async def receive(
    database: Database,
    protector: Protector,
    upload: Upload,
    chunks: AsyncIterator[bytes],
    *,
    now: datetime,
) -> tuple[UUID, bool]:
    """Read, check and stage the batch; (its batch_id, whether this was a replay)."""
    lines = Lines(chunks)
    rows = aiter(lines)
    if upload.declared is None:
        encoding, rows = await _detected(rows)
        source = EncodingSource.DETECTED
    else:
        encoding, source = upload.declared, EncodingSource.DECLARED
    reader = Reader(upload.dataset, upload.media_type, now.date(), encoding)
    if upload.media_type is MediaType.CSV:
        async for line, raw in rows:
            if raw is None or raw.strip():
                reader.read_header(raw, line)
                break
        else:
            raise BatchHeaderInvalid("the body is empty: a CSV batch starts with its header")
    claim = await _claim(database, upload, encoding, source, now)
    if claim.replay:
        async for _ in rows:
            pass
        if lines.sha256.hexdigest() != claim.digest or claim.dataset != upload.dataset.name:
            raise IdempotencyKeyReused()
        return claim.batch_id, True
    adapter = ADAPTERS[f"cdc.{upload.dataset.source_table}"]
    provenance = {"batch_id": str(claim.batch_id), "client": upload.client_id}
    chunk: list[Row] = []
    async for line, raw in rows:
        if raw is not None and not raw.strip():
            continue  # a blank line is no row
        if line >= LINES_PER_BATCH:
            chunk.append(_malformed(line, f"批次超过{LINES_PER_BATCH - 1}行", "batch-too-long"))
        else:
            chunk.append(reader.row(line, raw))
        if len(chunk) >= CHUNK_ROWS:
            await _commit(database, protector, upload, claim, adapter, provenance, chunk, now)
            chunk = []
    await _commit(
        database,
        protector,
        upload,
        claim,
        adapter,
        provenance,
        chunk,
        now,
        digest=lines.sha256.hexdigest(),
    )
    return claim.batch_id, False


async def _commit(
    database: Database,
    protector: Protector,
    upload: Upload,
    claim: Claim,
    adapter: Any,
    provenance: dict[str, Any],
    chunk: list[Row],
    now: datetime,
    *,
    digest: str | None = None,
) -> None:
    """One chunk in one transaction: staged rows, refused lines and counts together; the last
    (`digest` given) also marks the batch received. 409 if another upload took the batch."""
    dataset = upload.dataset
    accepted = [row for row in chunk if not row.reasons]
    refused = [
        {
            "batch_id": claim.batch_id,
            "line": row.line,
            "reasons": [
                {"code": r.code, "column": r.column, "message_zh": r.message_zh}
                for r in row.reasons
            ],
        }
        for row in chunk
        if row.reasons
    ]
    values: dict[str, Any] = {
        "received": partner_batches.c.received + len(chunk),
        "accepted": partner_batches.c.accepted + len(accepted),
        "rejected": partner_batches.c.rejected + len(refused),
        "heartbeat_at": now,
    }
    if digest is not None:
        values |= {"state": "received", "digest": digest, "completed_at": now}
    async with unit_of_work(database, service="identity") as uow:
        for row in accepted:
            withdrawn = row.values.get(OP_COLUMN) == WITHDRAW  # staged as a deleted row
            add_staged(
                uow,
                stage(
                    protector,
                    dataset.source_table,
                    record_key(dataset, row.values, protector),
                    claim.seq * LINES_PER_BATCH + row.line,
                    now.isoformat(),
                    None if withdrawn else adapter.to_record(row.values),
                    provenance=provenance | {"line": row.line},
                    changed_at=now,
                ),
            )
        connection = await uow.session.connection()
        if refused:
            await connection.execute(sa.insert(partner_batch_rejects), refused)
        result = await connection.execute(
            sa.update(partner_batches)
            .where(
                partner_batches.c.batch_id == claim.batch_id,
                partner_batches.c.attempt == claim.attempt,
            )
            .values(**values)
        )
        if result.rowcount != 1:
            raise BatchInProgress()  # rolls the chunk back: the other upload owns the batch


async def batch(database: Database, batch_id: UUID, department: str) -> Any:
    """The batch's row, if it is this department's; 404 `batch-unknown` otherwise."""
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(partner_batches).where(
                    partner_batches.c.batch_id == batch_id,
                    partner_batches.c.department == department,
                )
            )
        ).first()
    if row is None:
        raise BatchUnknown()
    return row


async def rejects(
    database: Database, batch_id: UUID, *, after: int = 0, limit: int | None = None
) -> AsyncIterator[Any]:
    """The batch's refused lines in line order, after line `after`, streamed."""
    query = (
        sa.select(partner_batch_rejects.c.line, partner_batch_rejects.c.reasons)
        .where(partner_batch_rejects.c.batch_id == batch_id, partner_batch_rejects.c.line > after)
        .order_by(partner_batch_rejects.c.line)
    )
    if limit is not None:
        query = query.limit(limit)
    async with database.engine.connect() as connection:
        result = await connection.stream(query)
        async for row in result:
            yield row
