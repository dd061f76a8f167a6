"""A partner department's batch (api.md "Partner departments"; partner_batches.py) on a real
database: every row checked and counted, refused lines kept with their reasons, accepted rows
resolved like the source table's change events, nothing done twice under one Idempotency-Key,
and an upload cut off midway completed by sending it again."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from canbao_contracts.id_numbers import check_character
from canbao_contracts.partners import DATASETS, Department
from canbao_identity import partner_batches as pb
from canbao_identity.partner_batches import MediaType, Upload
from canbao_identity.staging import record_context
from canbao_identity.tables import (
    partner_batch_rejects,
    partner_batches,
    source_records,
    staged_changes,
)
from tests.identity.conftest import Harness

NOW = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
DIBAO = DATASETS[(Department.CIVIL, "dibao")]
CREMATION = DATASETS[(Department.CIVIL, "cremation")]


def number(serial: int, region: str = "520102", born: str = "19800101") -> str:
    first17 = f"{region}{born}{serial:03d}"
    return first17 + check_character(first17)


async def body(*parts: bytes | str, fail_after: int | None = None) -> AsyncIterator[bytes]:
    """The request body in `parts`, as a client streams it; cut off after `fail_after` parts."""
    for index, part in enumerate(parts):
        if fail_after is not None and index == fail_after:
            raise ConnectionResetError("the client went away")
        yield part.encode() if isinstance(part, str) else part


def upload(key: str = "k-1", dataset: Any = DIBAO, media: MediaType = MediaType.CSV) -> Upload:
    return Upload(client_id="demo-civil", idempotency_key=key, dataset=dataset, media_type=media)


async def receive(harness: Harness, up: Upload, *parts: bytes | str, **kw: Any) -> Any:
    now = kw.pop("now", NOW)
    batch_id, replayed = await pb.receive(
        harness.db, harness.protector, up, body(*parts, **kw), now=now
    )
    return await pb.batch(harness.db, batch_id, "civil"), replayed


async def rejected(harness: Harness, batch_id: Any) -> dict[int, list[str]]:
    return {
        row.line: [r["code"] for r in row.reasons] async for row in pb.rejects(harness.db, batch_id)
    }


async def records(harness: Harness, source_table: str) -> list[Any]:
    """The source records of `source_table`, with their claims decrypted (`claims`)."""
    async with harness.db.engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(source_records).where(source_records.c.source_table == source_table)
            )
        ).all()
    return [
        {
            "key": row.record_key,
            "person_id": row.person_id,
            "provenance": row.provenance,
            "claims": harness.protector.decrypt(
                row.claims_ciphertext,
                key_id=row.key_id,
                context=record_context(source_table, row.record_key),
            ),
        }
        for row in rows
    ]


def csv_rows(rows: Iterable[str]) -> str:
    return "".join(row + "\r\n" for row in rows)


async def test_every_row_is_counted_and_the_refused_ones_say_why(harness: Harness) -> None:
    good, other = number(11), number(12)
    # fmt: off
    text = csv_rows([
        "\ufeffsfzh,xm,xzqh,ksrq,jsrq",              # 1: header, with Excel's BOM
        f"{good},李梅,520102,2024-01-01,",            # 2: accepted
        f"{good[:-1]}0,王五,520102,2024-01-01,",      # 3: wrong check digit
        f"{other},,520102,2024-01-01,",              # 4: no name
        f"{other},赵六,520102,2024-13-01,",           # 5: no such date
        f"{other},赵六,520102",                       # 6: too few fields
        "",                                          # 7: blank: not a row
        f"{other},赵六,999999,2024-01-01,2023-01-01",  # 8: bad region, ends before it starts
        f"{other},\"赵六,520102,2024-01-01,",          # 9: unterminated quote
    ])
    # fmt: on
    invalid_utf8 = f"{other},".encode() + b"\xff\xfe" + b",520102,2024-01-01,\n"  # 10
    row, replayed = await receive(harness, upload(), text, invalid_utf8)

    assert not replayed and row.state == "received"
    assert (row.received, row.accepted, row.rejected) == (8, 1, 7)
    assert await rejected(harness, row.batch_id) == {
        3: ["invalid-id-number"],
        4: ["required"],
        5: ["invalid-date"],
        6: ["malformed-row"],
        8: ["invalid-region", "date-order"],
        9: ["malformed-row"],
        10: ["not-utf8"],
    }

    await harness.drain()
    person = await harness.person_of(good)
    assert person is not None
    [record] = await records(harness, "civil.dibao")
    assert record["person_id"] == person and record["claims"]["name"] == "李梅"
    assert record["key"].startswith("partner:sfzh=#") and good not in record["key"]
    assert record["provenance"] == {
        "batch_id": str(row.batch_id),
        "client": "demo-civil",
        "line": 2,
    }
    assert await harness.person_of(other) is None  # every row of it was refused


async def test_the_same_key_again_does_nothing_and_another_body_is_refused(
    harness: Harness,
) -> None:
    text = csv_rows(["sfzh,xm,xzqh,ksrq", f"{number(21)},钱七,520102,2024-03-01"])
    first, _ = await receive(harness, upload(), text)
    async with harness.db.engine.connect() as connection:
        staged = await connection.scalar(sa.select(sa.func.count()).select_from(staged_changes))

    again, replayed = await receive(harness, upload(), text[:10], text[10:])  # other chunking
    assert replayed and again.batch_id == first.batch_id
    async with harness.db.engine.connect() as connection:
        assert (
            await connection.scalar(sa.select(sa.func.count()).select_from(staged_changes))
            == staged
        )
        assert await connection.scalar(sa.select(sa.func.count()).select_from(partner_batches)) == 1

    with pytest.raises(pb.IdempotencyKeyReused):
        await receive(harness, upload(), text.replace("钱七", "钱八"))


async def test_a_header_that_does_not_fit_refuses_the_batch_and_stores_nothing(
    harness: Harness,
) -> None:
    with pytest.raises(pb.BatchHeaderInvalid) as refused:
        await receive(harness, upload(), "sfzh,name,xzqh,ksrq\r\n", f"{number(31)},孙,520102,\r\n")
    assert refused.value.extensions["unknown"] == ["name"]
    assert refused.value.extensions["missing"] == ["xm"]
    with pytest.raises(pb.BatchHeaderInvalid):
        await receive(harness, upload("k-2"), "")
    async with harness.db.engine.connect() as connection:
        assert await connection.scalar(sa.select(sa.func.count()).select_from(partner_batches)) == 0


async def test_json_lines_of_cremations_make_the_person_deceased(harness: Harness) -> None:
    dead, alive = number(41), number(42)
    lines = [
        json.dumps({"sfzh": dead, "xm": "周八", "swrq": "2025-06-01"}, ensure_ascii=False),
        json.dumps({"sfzh": alive, "xm": "吴九", "swrq": "2099-01-01"}, ensure_ascii=False),
        json.dumps(["not", "an", "object"]),
        "{broken",
        json.dumps({"sfzh": alive, "xm": "吴九", "swrq": "2025-01-01", "extra": 1}),
    ]
    row, _ = await receive(
        harness, upload(dataset=CREMATION, media=MediaType.NDJSON), "\n".join(lines)
    )
    assert (row.received, row.accepted, row.rejected) == (5, 1, 4)
    assert await rejected(harness, row.batch_id) == {
        2: ["future-date"],
        3: ["malformed-row"],
        4: ["malformed-row"],
        5: ["unknown-column"],
    }
    await harness.drain()
    person = await harness.person_of(dead)
    assert person is not None
    assert (await harness.golden(person))["deceased"] is True


async def test_a_later_batch_updates_the_same_record(harness: Harness) -> None:
    who = number(51)
    header = "sfzh,xm,xzqh,ksrq\r\n"
    await receive(harness, upload("first"), header, f"{who},郑十,520102,2024-01-01\r\n")
    await receive(harness, upload("second"), header, f"{who},郑拾,520102,2024-01-01\r\n")
    await harness.drain()
    [record] = await records(harness, "civil.dibao")
    assert record["claims"]["name"] == "郑拾"
    assert record["person_id"] == await harness.person_of(who)


async def test_an_upload_cut_off_is_completed_by_sending_it_again(harness: Harness) -> None:
    rows = [
        f"{number(100 + i % 800, born='19900101')},冯{i},520102,2024-01-01" for i in range(1500)
    ]
    text = csv_rows(["sfzh,xm,xzqh,ksrq", *rows])
    parts = [text[i : i + 4096] for i in range(0, len(text), 4096)]

    with pytest.raises(ConnectionResetError):
        await receive(harness, upload(), *parts, fail_after=len(parts) - 2)
    async with harness.db.engine.connect() as connection:
        cut = (await connection.execute(sa.select(partner_batches))).one()
    assert cut.state == "receiving" and cut.received == pb.CHUNK_ROWS == cut.accepted

    with pytest.raises(pb.BatchInProgress):  # the first upload may still be alive
        await receive(harness, upload(), *parts)
    row, replayed = await receive(
        harness, upload(), *parts, now=NOW + pb.STALE_AFTER + timedelta(seconds=1)
    )
    assert not replayed and row.batch_id == cut.batch_id and row.state == "received"
    assert (row.received, row.accepted, row.rejected) == (1500, 1500, 0)


async def test_an_overlong_line_is_refused_and_the_next_ones_are_read(harness: Harness) -> None:
    long_name = "名" * (pb.MAX_LINE_BYTES // 3 + 10)
    text = csv_rows(
        [
            "sfzh,xm,xzqh,ksrq",
            f"{number(61)},{long_name},520102,2024-01-01",
            f"{number(62)},陈一,520102,2024-01-01",
        ]
    )
    parts = [text[i : i + 1000] for i in range(0, len(text), 1000)]
    row, _ = await receive(harness, upload(), *parts)
    assert (row.received, row.accepted, row.rejected) == (2, 1, 1)
    assert await rejected(harness, row.batch_id) == {2: ["line-too-long"]}
    async with harness.db.engine.connect() as connection:
        assert (
            await connection.scalar(sa.select(sa.func.count()).select_from(partner_batch_rejects))
            == 1
        )
