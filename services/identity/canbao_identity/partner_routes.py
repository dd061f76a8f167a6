"""Identity's internal API for partner departments, behind the gateway (which authenticates the
partner client, checks its department and what it may do, and audits): receive a batch
(partner_batches.py), read a batch and its refused lines, and find many people by number at
once for a comparison."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Any, Final
from uuid import UUID

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from canbao_contracts.partners import (
    Department,
    Encoding,
    UnsupportedCharset,
    dataset,
    read_content_type,
)
from canbao_identity import partner_batches
from canbao_identity import records as r
from canbao_identity.golden import GoldenDocument
from canbao_identity.partner_batches import CharsetUnsupported, EncodingSource, MediaType, Upload
from canbao_identity.routes import ProtectorDep, ResourcesDep
from canbao_identity.tables import identities, persons
from canbao_platform.problems import Problem
from canbao_platform.service_tokens import CallerDep, current_caller, require_role

router = APIRouter(prefix="/internal", tags=["partners"], dependencies=[Depends(current_caller)])

PARTNER: Final = "partner"
REJECTS_PAGE: Final = 1000
MAX_LOOKUP: Final = 10_000


class DatasetUnknown(Problem):
    def __init__(self, department: str, name: str | None) -> None:
        super().__init__(
            404,
            "dataset-unknown",
            "该部门没有此数据集 (no such dataset)",
            f"department {department!r} has no dataset {name!r}",
        )


class RejectedLine(BaseModel):
    line: int
    reasons: list[dict[str, Any]] = Field(description="code, column, message_zh")


class Batch(BaseModel):
    batch_id: UUID
    department: str
    dataset: str
    state: str = Field(description="receiving | received")
    encoding: Encoding = Field(description="how its bytes were read: utf-8 | gb18030")
    encoding_source: EncodingSource = Field(
        description="declared (the Content-Type's charset) | detected (from the first lines)"
    )
    received: int
    accepted: int
    rejected: int
    created_at: datetime
    completed_at: datetime | None
    rejects: list[RejectedLine] = Field(
        description=f"the first {REJECTS_PAGE} refused lines after `after`, in line order"
    )
    rejects_after: int | None = Field(
        description="pass as `after` for the next refused lines; null when there are no more"
    )
    replayed: bool = False


async def _batch(resources: Any, batch_id: UUID, department: str, after: int) -> Batch:
    row = await partner_batches.batch(resources.database, batch_id, department)
    lines = [
        RejectedLine(line=r.line, reasons=r.reasons)
        async for r in partner_batches.rejects(
            resources.database, batch_id, after=after, limit=REJECTS_PAGE + 1
        )
    ]
    more = len(lines) > REJECTS_PAGE
    lines = lines[:REJECTS_PAGE]
    return Batch(
        batch_id=row.batch_id,
        department=row.department,
        dataset=row.dataset,
        state=row.state,
        encoding=row.encoding,
        encoding_source=row.encoding_source,
        received=row.received,
        accepted=row.accepted,
        rejected=row.rejected,
        created_at=row.created_at,
        completed_at=row.completed_at,
        rejects=lines,
        rejects_after=lines[-1].line if more else None,
    )


@router.post(
    "/partners/{department}/batches",
    status_code=202,
    response_model=Batch,
    summary="Receive a batch (streamed body: text/csv or application/x-ndjson)",
)
async def receive_batch(
    department: Department,
    request: Request,
    caller: CallerDep,
    resources: ResourcesDep,
    protector: ProtectorDep,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=200)],
    content_type: Annotated[str, Header()],
    dataset_name: Annotated[str | None, Query(alias="dataset", max_length=32)] = None,
) -> Batch:
    require_role(caller, PARTNER)
    chosen = dataset(department, dataset_name)
    if chosen is None:
        raise DatasetUnknown(department.value, dataset_name)
    try:
        media_type, declared = read_content_type(content_type)
    except UnsupportedCharset as refused:
        raise CharsetUnsupported(refused.charset) from None
    upload = Upload(
        client_id=caller.username,
        idempotency_key=idempotency_key,
        dataset=chosen,
        media_type=MediaType(media_type),
        declared=declared,
    )
    batch_id, replayed = await partner_batches.receive(
        resources.database, protector, upload, request.stream(), now=datetime.now(UTC)
    )
    answer = await _batch(resources, batch_id, department.value, 0)
    answer.replayed = replayed
    return answer


@router.get(
    "/partners/{department}/batches/{batch_id}",
    response_model=Batch,
    summary="A batch's counts and refused lines",
)
async def read_batch(
    department: Department,
    batch_id: UUID,
    caller: CallerDep,
    resources: ResourcesDep,
    after: Annotated[int, Query(ge=0)] = 0,
) -> Batch:
    require_role(caller, PARTNER)
    return await _batch(resources, batch_id, department.value, after)


# What a spreadsheet shows a department's clerk (UTF-8 with a BOM, so that Excel reads Chinese).
REJECTS_HEADER: Final = "行号,字段,原因代码,原因\r\n"


@router.get(
    "/partners/{department}/batches/{batch_id}/rejects.csv",
    summary="A batch's refused lines as CSV: one row per reason",
)
async def rejects_csv(
    department: Department, batch_id: UUID, caller: CallerDep, resources: ResourcesDep
) -> StreamingResponse:
    require_role(caller, PARTNER)
    await partner_batches.batch(resources.database, batch_id, department.value)

    async def body() -> AsyncIterator[bytes]:
        yield ("\ufeff" + REJECTS_HEADER).encode()
        async for row in partner_batches.rejects(resources.database, batch_id):
            for reason in row.reasons:
                fields = [
                    str(row.line),
                    reason.get("column") or "",
                    reason["code"],
                    reason["message_zh"],
                ]
                yield (",".join(_csv_field(f) for f in fields) + "\r\n").encode()

    return StreamingResponse(body(), media_type="text/csv; charset=utf-8")


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


class NumbersLookup(BaseModel):
    """Valid citizen ID numbers (the gateway has checked them), in a body: never in a URL."""

    id_numbers: list[str] = Field(max_length=MAX_LOOKUP)


class NumbersFound(BaseModel):
    person_ids: list[UUID | None] = Field(description="in the order asked; null: not registered")


@router.post(
    "/persons/lookup-many",
    response_model=NumbersFound,
    summary="Many people by citizen ID number, through the blind index",
)
async def lookup_many(
    body: NumbersLookup, caller: CallerDep, resources: ResourcesDep, protector: ProtectorDep
) -> NumbersFound:
    require_role(caller, PARTNER)
    indexes = [protector.number_index("01", number) for number in body.id_numbers]
    query = sa.select(identities.c.number_index, identities.c.person_id).where(
        identities.c.document_type == "01", identities.c.number_index.in_(set(indexes))
    )
    async with resources.database.engine.connect() as connection:
        found = (
            {row.number_index: row.person_id for row in await connection.execute(query)}
            if indexes
            else {}
        )
    return NumbersFound(person_ids=[found.get(index) for index in indexes])


MAX_NUMBERS: Final = 1000


class PersonIds(BaseModel):
    person_ids: list[UUID] = Field(max_length=MAX_NUMBERS)


class NumbersOf(BaseModel):
    numbers: dict[UUID, str] = Field(
        description="person_id → citizen ID number, for those known with one"
    )
    masked_names: dict[UUID, str] = Field(
        default_factory=dict,
        description="person_id → the masked name (张*), for those known with a name",
    )


# A partner's search answers with numbers; an analyst's list of the people behind a report's
# number shows them masked (the gateway masks, audits with the number's hash, and checks scope).
IDENTIFIERS_ROLES: Final = (PARTNER, "analyst")


@router.post(
    "/persons/identifiers",
    response_model=NumbersOf,
    summary="The ID numbers and masked names of people a partner's search or an "
    "analyst's list found (the gateway checks who may see them)",
)
async def numbers_of(
    body: PersonIds, caller: CallerDep, resources: ResourcesDep, protector: ProtectorDep
) -> NumbersOf:
    require_role(caller, *IDENTIFIERS_ROLES)
    query = sa.select(
        persons.c.person_id,
        persons.c.golden_ciphertext,
        persons.c.key_id,
        persons.c.public_state["masked_name"].astext.label("masked_name"),
    ).where(persons.c.person_id.in_(set(body.person_ids)), persons.c.golden_ciphertext.is_not(None))
    numbers: dict[UUID, str] = {}
    masked_names: dict[UUID, str] = {}
    async with resources.database.engine.connect() as connection:
        for row in await connection.execute(query) if body.person_ids else []:
            if row.masked_name:
                masked_names[row.person_id] = row.masked_name
            document = GoldenDocument.opened(
                protector, row.person_id, row.golden_ciphertext, row.key_id
            )
            number = document.value(r.ID_NUMBER)
            if (document.value(r.DOCUMENT_TYPE) or "01") == "01" and number:
                numbers[row.person_id] = number
    return NumbersOf(numbers=numbers, masked_names=masked_names)
