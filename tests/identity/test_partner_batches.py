"""A partner department's batch (api.md "Partner departments"; partner_batches.py) on a real
database: every row checked and counted, refused lines kept with their reasons, accepted rows
resolved like the source table's change events, nothing done twice under one Idempotency-Key,
an upload cut off midway completed by sending it again, and a file read as UTF-8 or GB18030,
declared or detected, the batch saying which."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from canbao_contracts.id_numbers import check_character
from canbao_contracts.partners import (
    DATASETS,
    Department,
    Encoding,
    UnsupportedCharset,
    read_content_type,
)
from canbao_identity import partner_batches as pb
from canbao_identity.app import create
from canbao_identity.partner_batches import MediaType, Upload
from canbao_identity.protection import record_context
from canbao_identity.settings import IdentitySettings
from canbao_identity.tables import (
    partner_batch_rejects,
    partner_batches,
    source_records,
    staged_changes,
)
from canbao_platform.service import Resources
from tests.conftest import ServiceAuth
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


def upload(
    key: str = "k-1",
    dataset: Any = DIBAO,
    media: MediaType = MediaType.CSV,
    declared: Encoding | None = None,
) -> Upload:
    return Upload(
        client_id="demo-civil",
        idempotency_key=key,
        dataset=dataset,
        media_type=media,
        declared=declared,
    )


async def receive(harness: Harness, up: Upload, *parts: bytes | str, **kw: Any) -> Any:
    now = kw.pop("now", NOW)
    batch_id, replayed = await pb.receive(
        harness.db, harness.protector, up, body(*parts, **kw), now=now
    )
    return await pb.batch(harness.db, batch_id, up.dataset.department.value), replayed


async def rejected(harness: Harness, batch_id: Any) -> dict[int, list[str]]:
    return {
        row.line: [r["code"] for r in row.reasons] async for row in pb.rejects(harness.db, batch_id)
    }


async def records(harness: Harness, source_table: str) -> list[Any]:
    """The source records of `source_table` (not deleted: a deleted one keeps only its key and
    position), with their claims decrypted (`claims`)."""
    async with harness.db.engine.connect() as connection:
        rows = (
            await connection.execute(
                sa.select(source_records).where(
                    source_records.c.source_table == source_table, ~source_records.c.deleted
                )
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
        10: ["encoding"],
    }
    # One line that is not UTF-8 does not make a UTF-8 file GB18030.
    assert (row.encoding, row.encoding_source) == ("utf-8", "detected")

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

    # Undeclared, nothing is stored before the encoding is detected from the first 64 KiB.
    with pytest.raises(ConnectionResetError):
        await receive(harness, upload(), *parts, fail_after=len(parts) - 2)
    # Declared, the first chunk of rows is committed before the cut.
    with pytest.raises(ConnectionResetError):
        await receive(harness, upload(declared=Encoding.UTF8), *parts, fail_after=len(parts) - 2)
    async with harness.db.engine.connect() as connection:
        cut = (await connection.execute(sa.select(partner_batches))).one()
    assert cut.state == "receiving" and cut.received == pb.CHUNK_ROWS == cut.accepted
    assert cut.encoding_source == "declared"

    with pytest.raises(pb.BatchInProgress):  # the first upload may still be alive
        await receive(harness, upload(), *parts)
    row, replayed = await receive(
        harness, upload(), *parts, now=NOW + pb.STALE_AFTER + timedelta(seconds=1)
    )
    assert not replayed and row.batch_id == cut.batch_id and row.state == "received"
    assert (row.received, row.accepted, row.rejected) == (1500, 1500, 0)
    assert (row.encoding, row.encoding_source) == ("utf-8", "detected")  # as the taker read it


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


# Names GBK has no character for (䶮: two bytes in GB18030 only; 𬌗: four bytes) and common ones.
NAMES = ("王䶮", "李𬌗", "张伟")


def gb18030_dibao(*serials: int) -> bytes:
    text = csv_rows(
        ["sfzh,xm,xzqh,ksrq"]
        + [f"{number(s)},{name},520102,2024-01-01" for s, name in zip(serials, NAMES, strict=False)]
    )
    return text.encode("gb18030")


def byte_by_byte(data: bytes) -> list[bytes]:
    """A stream cut inside every multi-byte character."""
    return [data[i : i + 1] for i in range(len(data))]


async def names(harness: Harness, *serials: int) -> dict[str, str]:
    """The name the registry keeps from the batch for each number."""
    await harness.drain()
    by_person = {
        record["person_id"]: record["claims"]["name"]
        for record in await records(harness, "civil.dibao")
    }
    return {number(s): by_person[await harness.person_of(number(s))] for s in serials}


async def test_a_gb18030_file_declared_is_read_as_gb18030(harness: Harness) -> None:
    data = gb18030_dibao(71, 72, 73)
    row, _ = await receive(harness, upload(declared=Encoding.GB18030), *byte_by_byte(data))
    assert (row.received, row.accepted, row.rejected) == (3, 3, 0)
    assert (row.encoding, row.encoding_source) == ("gb18030", "declared")
    assert await names(harness, 71, 72, 73) == dict(
        zip(map(number, (71, 72, 73)), NAMES, strict=True)
    )


async def test_a_gb18030_file_undeclared_is_detected(harness: Harness) -> None:
    data = gb18030_dibao(74, 75, 76)
    row, _ = await receive(harness, upload(), data[:5], data[5:41], data[41:])
    assert (row.received, row.accepted, row.rejected) == (3, 3, 0)
    assert (row.encoding, row.encoding_source) == ("gb18030", "detected")
    assert await names(harness, 74, 75, 76) == dict(
        zip(map(number, (74, 75, 76)), NAMES, strict=True)
    )


async def test_a_utf8_file_is_detected_with_or_without_its_bom(harness: Harness) -> None:
    def text(serial: int) -> str:
        return csv_rows(["sfzh,xm,xzqh,ksrq", f"{number(serial)},欧阳娜,520102,2024-01-01"])

    bom = b"\xef\xbb\xbf" + text(77).encode()
    with_bom, _ = await receive(harness, upload("bom"), *byte_by_byte(bom))
    plain, _ = await receive(harness, upload("plain"), text(78))
    declared, _ = await receive(
        harness, upload("declared", declared=Encoding.UTF8), "\ufeff" + text(79)
    )
    assert [
        (b.accepted, b.rejected, b.encoding, b.encoding_source) for b in (with_bom, plain, declared)
    ] == [
        (1, 0, "utf-8", "detected"),
        (1, 0, "utf-8", "detected"),
        (1, 0, "utf-8", "declared"),
    ]
    assert await names(harness, 77, 78, 79) == dict.fromkeys(map(number, (77, 78, 79)), "欧阳娜")


async def test_a_line_not_of_the_encoding_is_refused_alone(harness: Harness) -> None:
    data = gb18030_dibao(81, 82, 83)
    lines = data.split(b"\r\n")
    lines[2] = lines[2].replace("李".encode("gb18030"), b"\xff")  # no GB18030 byte
    row, _ = await receive(harness, upload(), b"\r\n".join(lines))
    assert (row.encoding, row.encoding_source) == ("gb18030", "detected")
    assert (row.received, row.accepted, row.rejected) == (3, 2, 1)
    assert await rejected(harness, row.batch_id) == {3: ["encoding"]}
    [(_, [reason])] = [(r.line, r.reasons) async for r in pb.rejects(harness.db, row.batch_id)]
    assert reason["column"] is None and "GB18030" in reason["message_zh"]
    assert await names(harness, 81, 83) == {number(81): "王䶮", number(83): "张伟"}

    # Declared, its word is taken: a GB18030 file declared UTF-8 has every Chinese line refused.
    wrong, _ = await receive(harness, upload("wrong", declared=Encoding.UTF8), data)
    assert (wrong.accepted, wrong.rejected, wrong.encoding) == (0, 3, "utf-8")


def test_a_declared_charset_is_read_from_the_content_type() -> None:
    assert read_content_type("text/csv") == ("text/csv", None)
    assert read_content_type("Text/CSV; charset=UTF-8") == ("text/csv", Encoding.UTF8)
    for charset in ("gb18030", "GBK", '"gb2312"'):
        assert read_content_type(f"text/csv;charset={charset}")[1] is Encoding.GB18030
    assert read_content_type("application/x-ndjson; charset=gbk") == (
        "application/x-ndjson",
        Encoding.GB18030,
    )
    with pytest.raises(UnsupportedCharset):
        read_content_type("text/csv; charset=big5")


async def test_identity_reads_the_charset_the_content_type_declares(harness: Harness) -> None:
    settings = IdentitySettings(CANBAO_ENV="test", database_url=harness.db.url)
    app = create(settings)
    app.state.resources = Resources(settings=settings, database=harness.db)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://identity",
        auth=ServiceAuth("identity", username="demo-civil", role="partner"),
    ) as client:

        async def send(key: str, content_type: str) -> httpx.Response:
            headers = {"Idempotency-Key": key, "Content-Type": content_type}
            return await client.post(
                "/internal/partners/civil/batches", content=gb18030_dibao(91), headers=headers
            )

        sent = await send("gbk", "text/csv; charset=gbk")
        assert sent.status_code == 202, sent.text
        assert (sent.json()["encoding"], sent.json()["encoding_source"]) == ("gb18030", "declared")
        read = await client.get(f"/internal/partners/civil/batches/{sent.json()['batch_id']}")
        assert (read.json()["encoding"], read.json()["accepted"]) == ("gb18030", 1)

        refused = await send("big5", "text/csv; charset=big5")
        assert refused.status_code == 415
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/unsupported-charset"
    async with harness.db.engine.connect() as connection:  # nothing stored for it
        keys = await connection.scalars(sa.select(partner_batches.c.idempotency_key))
        assert list(keys) == ["gbk"]
    assert await names(harness, 91) == {number(91): "王䶮"}


async def test_public_security_sends_the_household_register_and_residence_permits(
    harness: Harness,
) -> None:
    """Public security's tables are hukou.* (sources.md): a batch of them is that source."""
    local, moved, visitor = number(61), number(62), number(63, region="110101")
    people = csv_rows(
        [
            "sfzh,xm,xb,csrq,hjdz_xzqh,hjdz,ryzt,zxrq",
            f"{local},钱一,1,1980-01-01,520102,贵州省贵阳市南明区某街1号,0,",
            f"{moved},孙二,2,1981-02-02,520103,,2,2026-03-01",
            f"{number(64)},李三,3,1982-03-03,520102,,0,",  # no such gender code
            f"{number(65)},周四,1,1990-01-01,520102,,1,1989-01-01",  # cancelled before born
        ]
    )
    person_dataset = DATASETS[(Department.PUBLIC_SECURITY, "person")]
    row, _ = await receive(harness, upload("hukou-1", dataset=person_dataset), people)
    assert (row.received, row.accepted, row.rejected) == (4, 2, 2)
    assert await rejected(harness, row.batch_id) == {4: ["invalid-code"], 5: ["date-order"]}
    permits = csv_rows(
        [
            "jzzh,sfzh,xm,xb,hjdz_xzqh,jzdz_xzqh,qfrq,yxqz,zt",
            f"JZ520102001,{visitor},吴五,1,110101,520102,2025-01-01,2027-01-01,1",
        ]
    )
    permit_dataset = DATASETS[(Department.PUBLIC_SECURITY, "resident_permit")]
    row, _ = await receive(harness, upload("permit-1", dataset=permit_dataset), permits)
    assert (row.received, row.accepted, row.rejected) == (1, 1, 0)
    await harness.drain()
    household = await records(harness, "hukou.person")
    assert sorted(r["person_id"] for r in household) == sorted(
        [await harness.person_of(local), await harness.person_of(moved)]
    )
    [permit] = await records(harness, "hukou.resident_permit")
    assert permit["person_id"] == await harness.person_of(visitor)
    golden = (await harness.golden(await harness.person_of(local)))["golden"]
    assert golden["name"]["value"] == "钱一"


async def test_a_department_withdraws_a_row_by_its_key(harness: Harness) -> None:
    kept, mistaken = number(71), number(72)
    header = "sfzh,xm,xzqh,ksrq\r\n"
    await receive(
        harness,
        upload("dibao-1"),
        header,
        f"{kept},冯一,520102,2024-01-01\r\n",
        f"{mistaken},陈二,520102,2024-02-01\r\n",
    )
    await harness.drain()
    assert len(await records(harness, "civil.dibao")) == 2
    lines = [
        json.dumps({"op": "d", "sfzh": mistaken, "ksrq": "2024-02-01"}),  # only the key
        json.dumps({"op": "d", "sfzh": kept}),  # the key is (sfzh, ksrq): which one?
        json.dumps(
            {"op": "x", "sfzh": kept, "xm": "冯一", "xzqh": "520102", "ksrq": "2024-01-01"},
            ensure_ascii=False,
        ),
    ]
    row, _ = await receive(harness, upload("dibao-2", media=MediaType.NDJSON), "\n".join(lines))
    assert (row.received, row.accepted, row.rejected) == (3, 1, 2)
    assert await rejected(harness, row.batch_id) == {2: ["required"], 3: ["invalid-op"]}
    await harness.drain()
    [left] = await records(harness, "civil.dibao")
    assert left["person_id"] == await harness.person_of(kept)
    # A CSV of withdrawals carries the key columns and `op` only.
    row, _ = await receive(
        harness,
        upload("dibao-3"),
        "op,sfzh,ksrq\r\n",
        f"d,{kept},2024-01-01\r\n",
        f",{kept},2024-01-01\r\n",
    )
    assert (row.received, row.accepted, row.rejected) == (2, 1, 1)  # the second lacks a name
    await harness.drain()
    assert await records(harness, "civil.dibao") == []
