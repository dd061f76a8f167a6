"""Partner departments (api.md "Partner departments"; 44号 §24): their programs log in with
client credentials (clients.py) and may do only what their client lists, for their own
department only:

* `POST /partners/{dept}/batches`: a CSV or JSON Lines file of the department's own data
  (canbao_contracts.partners), streamed through to identity as it arrives (never held here),
  which checks every row and stages the accepted ones as a source of the registry;
  `Idempotency-Key` makes sending it again harmless; UTF-8 or GB18030, as its charset declares
  or as identity detects (the batch says which: another charset is refused here).
  `GET …/batches/{batch_id}` counts and refused lines, `…/rejects.csv` all of them for a
  spreadsheet.
* `POST /partners/{dept}/comparisons`: up to 10,000 numbers, each answered on its own (a
  malformed or unknown number never fails the request), with only the fields the client may see.

Audited: a batch as one row (no person is read); a comparison as one row per number asked."""

import ipaddress
import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Final, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from canbao_contracts.id_numbers import mask, normalise, validate
from canbao_contracts.partners import CHARSETS, Department, UnsupportedCharset, read_content_type
from canbao_gateway import clients, problems, tokens
from canbao_gateway.audit import AuditedPerson, AuditTrail, Outcome, Purpose, endpoint_of
from canbao_gateway.auth import ResourcesDep, SettingsDep, client_of, oauth2_scheme
from canbao_gateway.clients import Client, ClientKind, Permission
from canbao_gateway.clock import ClockDep
from canbao_gateway.persons import IdentityDep, MatchingDep
from canbao_gateway.problems import UNAUTHENTICATED, problem_responses
from canbao_gateway.settings import GatewaySettings
from canbao_platform.problems import Problem

router = APIRouter(prefix="/api/v1", tags=["partners"])
MAX_COMPARISON: Final = 10_000
MEDIA_TYPES: Final = ("text/csv", "application/x-ndjson")
INSURANCES: Final = (
    clients.Field.PENSION,
    clients.Field.MEDICAL,
    clients.Field.INJURY,
    clients.Field.UNEMPLOYMENT,
    clients.Field.MATERNITY,
)


class NotYourDepartment(Problem):
    def __init__(self, department: str) -> None:
        super().__init__(
            403,
            "not-your-department",
            "只能访问本部门的数据 (a partner reaches its own department only)",
            department=department,
        )


class PermissionNotGranted(Problem):
    def __init__(self, permission: Permission) -> None:
        super().__init__(
            403,
            "permission-not-granted",
            "该接入方未被授权此项操作 (the client is not granted this)",
            permission=permission.value,
        )


class ClientCertificateRequired(Problem):
    def __init__(self, detail: str) -> None:
        super().__init__(
            403,
            "client-certificate-required",
            "须使用本接入方的客户端证书 (the client's own certificate is required)",
            detail,
        )


# The ASGI scope key of the connection's own peer, before X-Forwarded-For replaces it.
PEER: Final = "canbao.peer"


class RecordPeer:
    """ASGI middleware, outermost: keeps the address the connection came from (the ingress, in
    production), which ProxyHeadersMiddleware then replaces with the client's."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope[PEER] = scope.get("client")
        await self.app(scope, receive, send)


def _from_trusted_proxy(request: Request, settings: GatewaySettings) -> bool:
    peer = request.scope.get(PEER)
    if not peer:
        return False
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies)


def _common_name(subject: str) -> str | None:
    """The CN of a distinguished name as the ingress writes it (RFC 2253, `CN=…,O=…`; or
    OpenSSL's `/O=…/CN=…`)."""
    for part in re.split(r"(?<!\\)[,/]", subject):
        name, _, value = part.strip().partition("=")
        if name.upper() == "CN" and value:
            return value.strip()
    return None


def check_client_certificate(request: Request, settings: GatewaySettings, client: Client) -> None:
    """403 `client-certificate-required` unless the ingress verified the caller's certificate and
    its CN is this client (GATEWAY_PARTNER_MTLS)."""
    if not _from_trusted_proxy(request, settings):
        raise ClientCertificateRequired("partners connect through the mTLS ingress")
    if request.headers.get("ssl-client-verify") != "SUCCESS":
        raise ClientCertificateRequired("no verified client certificate")
    if _common_name(request.headers.get("ssl-client-subject-dn", "")) != client.client_id:
        raise ClientCertificateRequired("the certificate is not this client's")


class IdempotencyKeyRequired(Problem):
    def __init__(self) -> None:
        super().__init__(
            400,
            "idempotency-key-required",
            "批次须带幂等键 (a batch needs an Idempotency-Key header)",
            "send the same key again to retry the same batch",
        )


class UnsupportedMediaType(Problem):
    def __init__(self) -> None:
        super().__init__(
            415,
            "unsupported-media-type",
            "批次须为CSV或JSON Lines (text/csv or application/x-ndjson)",
            accepted=list(MEDIA_TYPES),
        )


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


async def current_partner(
    request: Request,
    token: Annotated[str | None, Depends(oauth2_scheme)],
    settings: SettingsDep,
    now: ClockDep,
    resources: ResourcesDep,
) -> Client:
    """The partner client the bearer token stands for (a staff, session or kiosk token: 403),
    over its own certificate where GATEWAY_PARTNER_MTLS says so."""
    if not token:
        raise problems.missing_token()
    holder = tokens.read_client(token, key=settings.jwt_key(), now=now())
    await tokens.check_current(resources.database, holder)
    if holder.client.kind is not ClientKind.PARTNER:
        raise problems.RoleNotAllowed(holder.client.kind.value)
    if settings.partner_mtls:
        check_client_certificate(request, settings, holder.client)
    return holder.client


def partner(permission: Permission) -> Any:
    """The dependency of a partner route: a partner of the path's `{dept}` granted
    `permission`. Use as `Annotated[Client, partner(...)]`."""

    async def allowed(
        dept: Department, client: Annotated[Client, Depends(current_partner)]
    ) -> Client:
        if client.department != dept.value:
            raise NotYourDepartment(dept.value)
        if permission not in client.permissions:
            raise PermissionNotGranted(permission)
        return client

    return Depends(allowed)


async def partner_audit(
    request: Request,
    client: Annotated[Client, Depends(current_partner)],
    resources: ResourcesDep,
    settings: SettingsDep,
    now: ClockDep,
) -> AuditTrail:
    return AuditTrail(
        database=resources.database,
        staff=client,
        endpoint=endpoint_of(request),
        client=client_of(request),
        key=settings.audit_key(),
        now=now,
    )


PartnerAuditDep = Annotated[AuditTrail, Depends(partner_audit)]


class RejectedLine(BaseModel):
    line: int = Field(description="the file's physical line (a CSV header is line 1)")
    reasons: list[dict[str, Any]] = Field(description="code, column, message_zh")


class Batch(BaseModel):
    batch_id: UUID
    department: str
    dataset: str
    state: Literal["receiving", "received"]
    encoding: Literal["utf-8", "gb18030"] = Field(description="how its bytes were read")
    encoding_source: Literal["declared", "detected"] = Field(
        description="declared: the Content-Type's charset; detected: from its first lines"
    )
    received: int = Field(description="rows read: always accepted + rejected")
    accepted: int
    rejected: int
    created_at: datetime
    completed_at: datetime | None
    rejects: list[RejectedLine] = Field(description="refused lines, 1,000 at most per page")
    rejects_after: int | None = Field(
        description="pass as `after` for the next refused lines; null when there are no more"
    )
    replayed: bool = Field(
        False, description="this Idempotency-Key's batch, received before: nothing was done again"
    )


BATCH_ERRORS: Final = problem_responses(
    {
        400: "idempotency-key-required; bad-request",
        401: UNAUTHENTICATED,
        403: "role-not-allowed; not-your-department; permission-not-granted",
        404: "dataset-unknown; batch-unknown",
        409: "batch-in-progress (the same key is being received); idempotency-key-reused",
        413: "body-too-large",
        415: "unsupported-media-type; unsupported-charset (other than utf-8, gb18030, gbk, gb2312)",
        422: "invalid-request; batch-header-invalid (CSV header: unknown or missing columns)",
        503: "identity-unavailable",
    }
)
_BATCH_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES
        },
        "description": "one dataset of the department (canbao_contracts.partners): CSV with a "
        "header of its columns, or one JSON object per line; UTF-8 or GB18030 (GBK, GB2312), "
        "as the Content-Type's charset declares, or detected from the first lines when it "
        "declares none: the batch says which",
    }
}


@router.post(
    "/partners/{dept}/batches",
    status_code=202,
    responses=BATCH_ERRORS,
    openapi_extra=_BATCH_BODY,
    summary="Send a batch of the department's own data (CSV or JSON Lines)",
)
async def send_batch(
    dept: Department,
    request: Request,
    client: Annotated[Client, partner(Permission.BATCHES)],
    identity: IdentityDep,
    audit: PartnerAuditDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    content_type: Annotated[str, Header()] = "",
    dataset: Annotated[
        str | None,
        Query(
            max_length=32, description="the dataset; default the department's first (civil: dibao)"
        ),
    ] = None,
) -> Batch:
    try:
        media_type, declared = read_content_type(content_type)
    except UnsupportedCharset as refused:
        raise CharsetUnsupported(refused.charset) from None
    if media_type not in MEDIA_TYPES:
        raise UnsupportedMediaType()
    if not idempotency_key:
        raise IdempotencyKeyRequired()
    try:
        answer = await identity.send_batch(
            dept.value,
            request.stream(),
            dataset=dataset,
            idempotency_key=idempotency_key,
            content_type=media_type if declared is None else f"{media_type}; charset={declared}",
            caller=client,
        )
    except Problem:  # refused, or not received whole (identity away): send it again
        await audit.record(purpose=Purpose.PARTNER_BATCH, outcome=Outcome.REJECTED)
        raise
    await audit.record(purpose=Purpose.PARTNER_BATCH, outcome=Outcome.OK)
    return Batch.model_validate(answer)


READ_ERRORS: Final = problem_responses(
    {
        401: UNAUTHENTICATED,
        403: "role-not-allowed; not-your-department; permission-not-granted",
        404: "batch-unknown (not a batch of this department)",
        422: "invalid-request",
        503: "identity-unavailable",
    }
)


@router.get(
    "/partners/{dept}/batches/{batch_id}",
    responses=READ_ERRORS,
    summary="A batch's counts and refused lines",
)
async def read_batch(
    dept: Department,
    batch_id: UUID,
    client: Annotated[Client, partner(Permission.BATCHES)],
    identity: IdentityDep,
    after: Annotated[int, Query(ge=0, description="refused lines after this line")] = 0,
) -> Batch:
    return Batch.model_validate(
        await identity.batch(dept.value, batch_id, after=after, caller=client)
    )


@router.get(
    "/partners/{dept}/batches/{batch_id}/rejects.csv",
    responses=READ_ERRORS,
    response_class=StreamingResponse,
    summary="A batch's refused lines as CSV (UTF-8 with BOM): line, column, code, reason",
)
async def batch_rejects(
    dept: Department,
    batch_id: UUID,
    client: Annotated[Client, partner(Permission.BATCHES)],
    identity: IdentityDep,
) -> StreamingResponse:
    body: AsyncIterator[bytes] = await identity.batch_rejects(dept.value, batch_id, caller=client)
    return StreamingResponse(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="rejects-{batch_id}.csv"'},
    )


class ComparisonRequest(BaseModel):
    id_numbers: list[Annotated[str, Field(max_length=40)]] = Field(
        min_length=1, max_length=MAX_COMPARISON, description="citizen ID numbers, any valid form"
    )


class Compared(BaseModel):
    """One number's answer; only the fields the client may see are filled."""

    index: int = Field(description="its place in the request, from 0")
    id_number: str = Field(description="masked")
    outcome: Literal[
        "found", "not_registered", "not_yet_evaluated", "out_of_scope", "invalid_id_number"
    ] = Field(description="out_of_scope: registered, but moved out or insured elsewhere")
    defects: list[str] | None = Field(None, description="for invalid_id_number: what is wrong")
    registration: str | None = None
    deceased: bool | None = None
    statuses: dict[str, str | None] | None = Field(
        None, description="the codes of domain.md §4 of the insurances the client may see"
    )
    as_of: datetime | None = None


class Comparison(BaseModel):
    items: list[Compared]


COMPARISON_ERRORS: Final = problem_responses(
    {
        400: "bad-request: a body that cannot be parsed",
        401: UNAUTHENTICATED,
        403: "role-not-allowed; not-your-department; permission-not-granted",
        422: "invalid-request (no numbers, or more than 10,000)",
        503: "identity-unavailable; matching-unavailable",
    }
)


@router.post(
    "/partners/{dept}/comparisons",
    responses=COMPARISON_ERRORS,
    summary="The insurance status of each of up to 10,000 numbers",
)
async def compare(
    dept: Department,
    body: ComparisonRequest,
    client: Annotated[Client, partner(Permission.COMPARISONS)],
    identity: IdentityDep,
    matching: MatchingDep,
    audit: PartnerAuditDep,
) -> Comparison:
    items: list[Compared | None] = [None] * len(body.id_numbers)
    valid: dict[str, list[int]] = {}  # normalised number → its places in the request
    for index, raw in enumerate(body.id_numbers):
        if defects := validate(raw):
            items[index] = Compared(
                index=index,
                id_number=mask(raw),
                outcome="invalid_id_number",
                defects=[d.code.value for d in defects],
            )
        else:
            valid.setdefault(normalise(raw), []).append(index)
    numbers = list(valid)
    person_ids = await identity.person_ids(numbers, caller=client) if numbers else []
    verdicts = await matching.verdicts([p for p in person_ids if p is not None], caller=client)
    audited = []
    for number, person_id in zip(numbers, person_ids, strict=True):
        answer = _answer(client, person_id, verdicts.get(person_id) if person_id else None)
        for index in valid[number]:
            items[index] = answer.model_copy(update={"index": index, "id_number": mask(number)})
        audited.append(
            AuditedPerson(number, person_id, Outcome.NOT_FOUND if person_id is None else Outcome.OK)
        )
    await audit.record_many(purpose=Purpose.PARTNER_COMPARISON, people=audited)
    return Comparison(items=[item for item in items if item is not None])


def _answer(client: Client, person_id: UUID | None, found: dict[str, Any] | None) -> Compared:
    if person_id is None:
        return Compared(index=0, id_number="", outcome="not_registered")
    if found is None:
        return Compared(index=0, id_number="", outcome="not_yet_evaluated")
    if found.get("verdict") is None:
        return Compared(index=0, id_number="", outcome="out_of_scope", as_of=found.get("as_of"))
    verdict = found["verdict"]
    may_see = client.fields
    statuses = {f.value: verdict["statuses"].get(f.value) for f in INSURANCES if f in may_see}
    return Compared(
        index=0,
        id_number="",
        outcome="found",
        registration=verdict["registration"] if clients.Field.REGISTRATION in may_see else None,
        deceased=verdict["deceased"] if clients.Field.DECEASED in may_see else None,
        statuses=statuses or None,
        as_of=found.get("as_of"),
    )
