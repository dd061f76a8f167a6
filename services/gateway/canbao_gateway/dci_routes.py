"""The DCI Social Registry API v1.0.0 under `/api/v1/partners/dci/` (api.md "Partner
departments"; dci.py says how the standard's open points are decided): the synchronous search
and transaction status, for partner clients granted `search`.

Every answer is the standard's envelope, signed by the registry. Outside the envelope only what
happens before it can be read: no or a bad token (401 / 403 problem+json, like every partner
route), a body that is no envelope (422 invalid-request), and a message the registry will not
read at all — a wrong sender, a missing or bad signature, an encrypted payload — which is 403
problem+json `dci-rejected` carrying the standard's error object (`errors: [{code, message}]`,
its HttpErrorResponse). A header the registry reads but refuses (version, action, timestamp,
counts, a reused message_id) is an envelope with header status `rjct` and the standard's reason
code; each search request succeeds or is refused on its own (SearchStatusReasonCode).

One sender's message_id is executed once: the same message again is answered under the first
answer's correlation_id (a search is a read: it is read again, nothing else happens twice);
another message under a used message_id is `rjct.message_id.duplicate`. Audited: one row per
person a search returns or was asked for by number."""

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Final

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from canbao_contracts.partners import Department
from canbao_contracts.search import Filter, names_a_region
from canbao_gateway import dci, dci_delivery
from canbao_gateway.audit import AuditedPerson, AuditTrail, Outcome, Purpose
from canbao_gateway.auth import ResourcesDep, SettingsDep
from canbao_gateway.clients import Client, Permission
from canbao_gateway.clock import ClockDep
from canbao_gateway.dci_delivery import CallbackDelivery
from canbao_gateway.dci_notify import ExchangeReconciler
from canbao_gateway.partner_routes import PartnerAuditDep, PermissionNotGranted, current_partner
from canbao_gateway.persons import IdentityDep, MatchingDep
from canbao_gateway.problems import UNAUTHENTICATED, problem_responses
from canbao_gateway.service_clients import IdentityClient, MatchingClient
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.tables import clients as clients_table
from canbao_gateway.tables import dci_messages, dci_requests, dci_subscriptions
from canbao_platform.problems import Problem
from canbao_platform.service_tokens import public_key

router = APIRouter(prefix="/api/v1/partners/dci/registry", tags=["partners: DCI"])


class DciRejected(Problem):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(
            403,
            "dci-rejected",
            "DCI消息被拒绝 (DCI message rejected)",
            message,
            errors=[{"code": code, "message": message}],
        )


class Envelope(BaseModel):
    """The standard's message: {signature, header (MsgHeader), message}."""

    signature: str | None = Field(None, description="MsgSignature (dci.py)")
    header: dict[str, Any] = Field(description="MsgHeader_V1.0.0")
    message: dict[str, Any] = Field(description="SearchRequest / TxnStatusRequest")


ERRORS: Final = problem_responses(
    {
        400: "bad-request: a body that cannot be parsed",
        401: UNAUTHENTICATED,
        403: "role-not-allowed; permission-not-granted; dci-rejected (errors: the standard's "
        "err.sender_id.invalid, err.receiver_id.invalid, err.signature.missing, "
        "err.signature.invalid, err.encryption.invalid)",
        422: "invalid-request (not an envelope)",
        503: "dci-unavailable; identity-unavailable; matching-unavailable",
    }
)


async def searcher(client: Annotated[Client, Depends(current_partner)]) -> Client:
    if Permission.SEARCH not in client.permissions:
        raise PermissionNotGranted(Permission.SEARCH)
    return client


Searcher = Annotated[Client, Depends(searcher)]


async def _read_envelope(
    envelope: Envelope, client: Client, settings: GatewaySettings, resources: Any, now: datetime
) -> list[str]:
    """What makes a message unreadable (403 dci-rejected): the sender, the receiver, encryption,
    the signature of a client that registered a key. The client's registered callback
    addresses."""
    header = envelope.header
    if header.get("sender_id") != client.client_id:
        raise DciRejected("err.sender_id.invalid", "sender_id is the client's own client_id")
    receiver = header.get("receiver_id")
    if receiver is not None and receiver != settings.dci_sender_id:
        raise DciRejected("err.receiver_id.invalid", f"the registry is {settings.dci_sender_id}")
    if header.get("is_msg_encrypted") or "ciphertext" in envelope.message:
        raise DciRejected(
            "err.encryption.invalid",
            "the registry reads plain messages over TLS (mTLS in production)",
        )
    async with resources.database.engine.connect() as connection:
        registered = (
            await connection.execute(
                sa.select(clients_table.c.signing_public_key, clients_table.c.callback_urls).where(
                    clients_table.c.client_id == client.client_id
                )
            )
        ).one()
    if registered.signing_public_key is not None:
        try:
            dci.verify(
                envelope.signature,
                header,
                envelope.message,
                key=public_key(registered.signing_public_key),
                now=now,
            )
        except dci.Rejected as rejected:
            raise DciRejected(rejected.code, rejected.message) from None
    return list(registered.callback_urls)


def _header_problem(
    header: dict[str, Any], action: str, count: int | None
) -> tuple[str, str] | None:
    """A header refused with a MsgHeaderStatusReasonCode, or None."""
    if header.get("version", dci.VERSION) != dci.VERSION:
        return "rjct.version.invalid", f"version {dci.VERSION}"
    if header.get("action") != action:
        return "rjct.action.invalid", f"action {action}"
    if not isinstance(header.get("message_id"), str) or not header["message_id"]:
        return "rjct.message_id.duplicate", "message_id is required"  # no code for "missing"
    try:
        datetime.fromisoformat(str(header.get("message_ts")).replace("Z", "+00:00"))
    except ValueError:
        return "rjct.message_ts.invalid", "message_ts: ISO 8601 with a time zone"
    if count is not None:
        if header.get("total_count") != count:
            return "rjct.total_count.invalid", "total_count: the number of requests"
        if count > dci.MAX_REQUESTS:
            return "rjct.total_count.limit_exceeded", f"at most {dci.MAX_REQUESTS} requests"
    return None


@dataclass(frozen=True, slots=True)
class Seen:
    """A message_id as the registry knows it: its digest, and its first answer's correlation_id
    if it was received before."""

    message_id: str
    digest: str
    correlation_id: uuid.UUID | None


async def _seen(database: Any, client: Client, envelope: Envelope, action: str) -> Seen:
    """rjct.message_id.duplicate for another message under a used message_id."""
    digest = hashlib.sha256(
        dci.canonical(envelope.header | {"message_ts": None}, envelope.message)
    ).hexdigest()
    message_id = str(envelope.header["message_id"])[:200]
    async with database.engine.connect() as connection:
        row = (
            await connection.execute(
                sa.select(dci_messages).where(
                    dci_messages.c.client_id == client.client_id,
                    dci_messages.c.message_id == message_id,
                )
            )
        ).first()
    if row is None:
        return Seen(message_id, digest, None)
    if row.digest != digest or row.action != action:
        raise dci.Rejected("rjct.message_id.duplicate", "this message_id was another message")
    return Seen(message_id, digest, row.correlation_id)


@dataclass(frozen=True, slots=True)
class Callback:
    url: str
    envelope: dict[str, Any]
    delivery: CallbackDelivery


async def _record(
    database: Any,
    client: Client,
    seen: Seen,
    action: str,
    transaction: str,
    correlation: uuid.UUID,
    responses: list[dict[str, Any]],
    txn_type: str,
    now: datetime,
    callback: Callback | None = None,
    effect: Callable[[AsyncConnection], Awaitable[None]] | None = None,
) -> uuid.UUID:
    """The message, what each of its requests came to, its `effect` (subscriptions made or
    cancelled) and its callback, in one transaction: all or nothing, so that a message recorded
    as received has had its effect. Another replica that
    recorded the same message first wins: its correlation_id is the answer's, nothing of this
    one is kept."""
    async with database.engine.begin() as connection:
        inserted = await connection.scalar(
            insert(dci_messages)
            .values(
                client_id=client.client_id,
                message_id=seen.message_id,
                action=action,
                digest=seen.digest,
                correlation_id=correlation,
                transaction_id=transaction,
                received_at=now,
            )
            .on_conflict_do_nothing()
            .returning(dci_messages.c.correlation_id)
        )
        if inserted is None:
            first = await connection.scalar(
                sa.select(dci_messages.c.correlation_id).where(
                    dci_messages.c.client_id == client.client_id,
                    dci_messages.c.message_id == seen.message_id,
                )
            )
            assert isinstance(first, uuid.UUID)
            return first
        rows = [
            {
                "correlation_id": correlation,
                "reference_id": r["reference_id"][:99] or "-",
                "client_id": client.client_id,
                "transaction_id": transaction,
                "txn_type": txn_type,
                "status": r["status"],
                "status_reason_code": r.get("status_reason_code"),
                "status_reason_message": (r.get("status_reason_message") or "")[:999] or None,
                "total_count": (r.get("pagination") or {}).get("total_count"),
                "at": now,
            }
            for r in responses
        ]
        if rows:
            await connection.execute(insert(dci_requests).values(rows).on_conflict_do_nothing())
        if effect is not None:
            await effect(connection)
        if callback is not None:
            await dci_delivery.enqueue(
                connection,
                callback.delivery.sealer,
                client_id=client.client_id,
                correlation_id=correlation,
                action=str(callback.envelope["header"]["action"]),
                url=callback.url,
                envelope=callback.envelope,
                now=now,
            )
    if callback is not None:
        callback.delivery.wake()
    return correlation


def _search_message(
    envelope: Envelope,
) -> tuple[Any, list[Any] | None, tuple[str, str] | None]:
    """(transaction_id, the search requests, what is wrong with the message if anything)."""
    message = envelope.message
    requests = message.get("search_request")
    count = len(requests) if isinstance(requests, list) else None
    transaction = message.get("transaction_id")
    if (problem := _header_problem(envelope.header, "search", count)) is not None:
        return transaction, None, problem
    if not isinstance(transaction, str) or not transaction or len(transaction) > 99:
        return (
            transaction,
            None,
            ("rjct.search_criteria.invalid", "transaction_id: 1-99 characters"),
        )
    if count is None or count == 0:
        return transaction, None, ("rjct.total_count.invalid", "search_request: a non-empty list")
    return transaction, requests, None


async def _search_all(
    requests: list[Any],
    client: Client,
    now: datetime,
    identity: IdentityClient,
    matching: MatchingClient,
    audit: AuditTrail,
) -> list[dict[str, Any]]:
    responses, seen, audited = [], set[str](), list[AuditedPerson]()
    for request in requests:
        response = await _search_one(request, seen, client, now.date(), identity, matching, audited)
        responses.append(response | {"timestamp": dci.now_iso(now)})
    await audit.record_many(purpose=Purpose.PARTNER_SEARCH, people=audited)
    return responses


@router.post(
    "/sync/search",
    responses=ERRORS,
    summary="DCI registry search, answered at once (idtype-value, predicate, expression)",
)
async def sync_search(
    envelope: Envelope,
    client: Searcher,
    settings: SettingsDep,
    resources: ResourcesDep,
    clock: ClockDep,
    identity: IdentityDep,
    matching: MatchingDep,
    audit: PartnerAuditDep,
) -> dict[str, Any]:
    now = clock()
    answer = dci.Answer(settings, client, now, "on-search")
    await _read_envelope(envelope, client, settings, resources, now)
    transaction, requests, problem = _search_message(envelope)
    if problem is not None or requests is None:
        return _refused(answer, transaction, problem or ("rjct.action.invalid", ""))
    try:
        seen = await _seen(resources.database, client, envelope, "search")
    except dci.Rejected as rejected:
        return _refused(answer, transaction, (rejected.code, rejected.message))
    # A search is a read: a repeated message is read again and answered under its first
    # correlation_id; nothing else happens twice.
    responses = await _search_all(requests, client, now, identity, matching, audit)
    correlation = seen.correlation_id or await _record(
        resources.database,
        client,
        seen,
        "search",
        transaction,
        uuid.uuid4(),
        responses,
        "search",
        now,
    )
    body = {
        "transaction_id": transaction,
        "correlation_id": str(correlation),
        "search_response": responses,
    }
    return answer.envelope(body, total=len(requests), completed=len(requests))


def _refused(answer: dci.Answer, transaction: Any, problem: tuple[str, str]) -> dict[str, Any]:
    code, text = problem
    body = {  # SearchResponse: transaction_id is a string
        "transaction_id": transaction if isinstance(transaction, str) else "",
        "correlation_id": str(uuid.uuid4()),
        "search_response": [],
    }
    return answer.envelope(body, status="rjct", reason=code, reason_message=text)


async def _search_one(
    request: Any,
    seen: set[str],
    client: Client,
    today: date,
    identity: IdentityClient,
    matching: MatchingClient,
    audited: list[AuditedPerson],
) -> dict[str, Any]:
    reference = request.get("reference_id") if isinstance(request, dict) else None
    try:
        if not isinstance(reference, str) or not reference or len(reference) > 99:
            raise dci.Rejected("rjct.reference_id.invalid", "reference_id: 1-99 characters")
        if reference in seen:
            raise dci.Rejected("rjct.reference_id.duplicate", "reference_id twice in a message")
        seen.add(reference)
        try:
            datetime.fromisoformat(str(request.get("timestamp")).replace("Z", "+00:00"))
        except ValueError:
            raise dci.Rejected("rjct.timestamp.invalid", "timestamp: ISO 8601") from None
        criteria = request.get("search_criteria")
        query = dci.query_of(criteria, client, today)
        page_size, page_number = _pagination(criteria.get("pagination"))
        records, total = await _run(
            query, client, page_size, page_number, identity, matching, audited
        )
    except dci.Rejected as rejected:
        return {
            "reference_id": reference if isinstance(reference, str) else "",
            "status": "rjct",
            "status_reason_code": rejected.code,
            "status_reason_message": rejected.message,
        }
    return {
        "reference_id": reference,
        "status": "succ",
        "data": {"version": dci.VERSION, "reg_records": records},
        "pagination": {"page_size": page_size, "page_number": page_number, "total_count": total},
    }


def _pagination(pagination: Any) -> tuple[int, int]:
    if pagination is None:
        return 100, 1
    size = pagination.get("page_size") if isinstance(pagination, dict) else None
    number = pagination.get("page_number", 1) if isinstance(pagination, dict) else None
    for value in (size, number):
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise dci.Rejected("rjct.pagination.invalid", "page_size and page_number: numbers")
    assert size is not None and number is not None
    if not 1 <= size <= dci.MAX_PAGE_SIZE or number < 1:
        raise dci.Rejected(
            "rjct.pagination.invalid", f"page_size 1-{dci.MAX_PAGE_SIZE}, page_number from 1"
        )
    return int(size), int(number)


async def _run(
    query: dci.ByIdentifier | dci.ByFilter,
    client: Client,
    page_size: int,
    page_number: int,
    identity: IdentityClient,
    matching: MatchingClient,
    audited: list[AuditedPerson],
) -> tuple[list[dict[str, Any]], int]:
    if isinstance(query, dci.ByIdentifier):
        [person_id] = await identity.person_ids([query.number], caller=client)
        audited.append(
            AuditedPerson(query.number, person_id, Outcome.OK if person_id else Outcome.NOT_FOUND)
        )
        found = await matching.verdicts([person_id], caller=client) if person_id else {}
        verdict = found.get(person_id) if person_id else None
        if verdict is None or verdict.get("verdict") is None or page_number > 1:
            return [], 0 if verdict is None or verdict.get("verdict") is None else 1
        return [dci.record(client, verdict["verdict"], verdict["as_of"], query.number)], 1
    try:
        page = await matching.search(
            query.filter, page_size=page_size, page_number=page_number, caller=client
        )
    except Problem as problem:
        if problem.slug != "search-invalid":
            raise
        raise dci.Rejected("rjct.search_criteria.invalid", problem.detail or "") from None
    person_ids = [uuid.UUID(item["person_id"]) for item in page["items"]]
    numbers = await identity.numbers(person_ids, caller=client) if person_ids else {}
    records = []
    for item, person_id in zip(page["items"], person_ids, strict=True):
        number = numbers.get(person_id)
        records.append(dci.record(client, item["verdict"], item["as_of"], number))
        if number is not None:
            audited.append(AuditedPerson(number, person_id, Outcome.OK))
    return records, int(page["total_count"])


def _status_message(envelope: Envelope) -> tuple[Any, tuple[str, str] | None]:
    transaction = envelope.message.get("transaction_id")
    if (problem := _header_problem(envelope.header, "txn-status", None)) is not None:
        return transaction, problem
    asked = envelope.message.get("txnstatus_request")
    if not isinstance(asked, dict) or asked.get("attribute_type") not in (
        "transaction_id",
        "reference_id_list",
        "correlation_id",
    ):
        return transaction, (
            "rjct.action.invalid",
            "txnstatus_request: attribute_type transaction_id, reference_id_list or correlation_id",
        )
    return transaction, None


async def _status_of(database: Any, client: Client, envelope: Envelope) -> dict[str, Any]:
    """The TxnStatusResponse of the client's own earlier requests: what each came to (status,
    reason, count; never the records) and, in `meta`, how their callbacks went."""
    message = envelope.message
    transaction, asked = message.get("transaction_id"), message["txnstatus_request"]
    kind, value = asked["attribute_type"], asked.get("attribute_value")
    query = sa.select(dci_requests).where(dci_requests.c.client_id == client.client_id)
    if kind == "transaction_id":
        query = query.where(dci_requests.c.transaction_id == str(value))
    elif kind == "correlation_id":
        try:
            query = query.where(dci_requests.c.correlation_id == uuid.UUID(str(value)))
        except ValueError:
            query = query.where(sa.false())
    else:
        references = [str(v) for v in value] if isinstance(value, list) else []
        query = query.where(
            dci_requests.c.reference_id.in_(references),
            dci_requests.c.transaction_id == str(transaction),
        )
    async with database.engine.connect() as connection:
        rows = (
            await connection.execute(query.order_by(dci_requests.c.at, dci_requests.c.reference_id))
        ).all()
    found = []
    for r in rows:
        item: dict[str, Any] = {
            "reference_id": r.reference_id,
            "timestamp": dci.now_iso(r.at),
            "status": r.status,
        }
        if r.status_reason_code:
            item |= {
                "status_reason_code": r.status_reason_code,
                "status_reason_message": r.status_reason_message,
            }
        if r.total_count is not None:
            item["pagination"] = {"page_size": 0, "page_number": 1, "total_count": r.total_count}
        found.append(item)
    correlations = list(dict.fromkeys(r.correlation_id for r in rows))
    correlation = str(correlations[0]) if correlations else str(uuid.uuid4())
    status = {
        "transaction_id": rows[0].transaction_id if rows else str(transaction),
        "correlation_id": correlation,
        "search_response": found,
    }
    callbacks = await dci_delivery.callback_states(database, client.client_id, correlations)
    return {
        "transaction_id": transaction,
        "correlation_id": correlation,
        "txnstatus_response": {"txn_type": asked.get("txn_type", "search"), "txn_status": status},
        "meta": {"callbacks": callbacks},
    }


@router.post(
    "/sync/txn/status", responses=ERRORS, summary="DCI status of earlier requests, answered at once"
)
async def sync_txn_status(
    envelope: Envelope,
    client: Searcher,
    settings: SettingsDep,
    resources: ResourcesDep,
    clock: ClockDep,
) -> dict[str, Any]:
    now = clock()
    answer = dci.Answer(settings, client, now, "txn-on-status")
    await _read_envelope(envelope, client, settings, resources, now)
    transaction, problem = _status_message(envelope)
    if problem is not None:
        return _status_refused(answer, transaction, problem)
    body = await _status_of(resources.database, client, envelope)
    count = len(body["txnstatus_response"]["txn_status"]["search_response"])
    return answer.envelope(body, total=count, completed=count)


def _status_refused(
    answer: dci.Answer, transaction: Any, problem: tuple[str, str]
) -> dict[str, Any]:
    code, text = problem
    transaction = transaction if isinstance(transaction, str) else ""
    correlation = str(uuid.uuid4())
    body = {  # TxnStatusResponse: txnstatus_response {txn_type, txn_status} is required
        "transaction_id": transaction,
        "correlation_id": correlation,
        "txnstatus_response": {
            "txn_type": "search",
            "txn_status": {
                "transaction_id": transaction,
                "correlation_id": correlation,
                "search_response": [],
            },
        },
    }
    return answer.envelope(body, status="rjct", reason=code, reason_message=text)


# -- the asynchronous half: an acknowledgement now, the answer to the caller's address ------------


class Ack(BaseModel):
    """The standard's Response: {message: {ack_status, timestamp, error?, correlation_id}}."""

    message: dict[str, Any]


def _ack(now: datetime, correlation: uuid.UUID | None, error: tuple[str, str] | None = None) -> Ack:
    message: dict[str, Any] = {
        "ack_status": "ACK" if error is None else "ERR",
        "timestamp": dci.now_iso(now),
        "correlation_id": str(correlation or uuid.uuid4()),
    }
    if error is not None:
        message["error"] = {"code": error[0], "message": error[1]}
    return Ack(message=message)


def _callback_url(envelope: Envelope, registered: list[str], action: str) -> str:
    """Where the answer goes: the header's sender_uri if it lies under a registered address,
    else (none given) the first registered address with `/<action>`; Rejected otherwise."""
    asked = envelope.header.get("sender_uri")
    if asked is None and registered:
        return registered[0].rstrip("/") + "/" + action
    if isinstance(asked, str) and dci_delivery.under_registered(asked, registered):
        return asked
    raise dci.Rejected(
        "err.sender_uri.invalid", "callbacks go only to the addresses registered for this client"
    )


def _notify_url(envelope: Envelope, registered: list[str]) -> str:
    """Where a subscription's notifications go: `notify` under the registered address the
    subscribe message's sender_uri lies under (the first one by default)."""
    asked = envelope.header.get("sender_uri")
    base = next(
        (
            b
            for b in registered
            if isinstance(asked, str) and dci_delivery.under_registered(asked, [b])
        ),
        registered[0],
    )
    return base.rstrip("/") + "/notify"


async def _accept(
    envelope: Envelope,
    registered: list[str],
    resources: Any,
    client: Client,
    now: datetime,
    *,
    action: str,
    answer_path: str,
    problem: tuple[str, str] | None,
) -> tuple[str, Seen] | Ack:
    """The asynchronous routes' intake: an Ack to answer at once — ERR for a refused message
    (its reason code in the error's message) or an unregistered callback address, or the first
    acknowledgement again for a message_id already executed — else where the answer goes and
    what the registry knows of the message."""
    if problem is not None:
        code, text = problem
        return _ack(now, None, ("err.request.bad", f"{code}: {text}"))
    try:
        url = _callback_url(envelope, registered, answer_path)
        seen = await _seen(resources.database, client, envelope, action)
    except dci.Rejected as rejected:
        code = rejected.code if rejected.code.startswith("err.") else "err.request.bad"
        return _ack(now, None, (code, f"{rejected.code}: {rejected.message}"))
    if seen.correlation_id is not None:  # executed once: the same acknowledgement, no callback
        return _ack(now, seen.correlation_id)
    return url, seen


async def delivery(request: Request) -> CallbackDelivery:
    for component in request.app.state.components:
        if isinstance(component, CallbackDelivery):
            return component
    raise RuntimeError("the gateway runs without its DCI callback delivery")


DeliveryDep = Annotated[CallbackDelivery, Depends(delivery)]


@router.post(
    "/search",
    responses=ERRORS,
    summary="DCI registry search: acknowledged now, answered with on-search to the "
    "caller's registered address",
)
async def search(
    envelope: Envelope,
    client: Searcher,
    settings: SettingsDep,
    resources: ResourcesDep,
    clock: ClockDep,
    identity: IdentityDep,
    matching: MatchingDep,
    audit: PartnerAuditDep,
    callbacks: DeliveryDep,
) -> Ack:
    now = clock()
    answer = dci.Answer(settings, client, now, "on-search")
    registered = await _read_envelope(envelope, client, settings, resources, now)
    transaction, requests, problem = _search_message(envelope)
    accepted = await _accept(
        envelope,
        registered,
        resources,
        client,
        now,
        action="search",
        answer_path="on-search",
        problem=problem,
    )
    if isinstance(accepted, Ack):
        return accepted
    url, seen = accepted
    assert isinstance(requests, list)
    responses = await _search_all(requests, client, now, identity, matching, audit)
    correlation = uuid.uuid4()
    body = {
        "transaction_id": transaction,
        "correlation_id": str(correlation),
        "search_response": responses,
    }
    signed = answer.envelope(body, total=len(requests), completed=len(requests))
    recorded = await _record(
        resources.database,
        client,
        seen,
        "search",
        transaction,
        correlation,
        responses,
        "search",
        now,
        Callback(url, signed, callbacks),
    )
    return _ack(now, recorded)


@router.post(
    "/txn/status",
    responses=ERRORS,
    summary="DCI status of earlier requests: acknowledged now, answered with "
    "txn-on-status to the caller's registered address",
)
async def txn_status(
    envelope: Envelope,
    client: Searcher,
    settings: SettingsDep,
    resources: ResourcesDep,
    clock: ClockDep,
    callbacks: DeliveryDep,
) -> Ack:
    now = clock()
    answer = dci.Answer(settings, client, now, "txn-on-status")
    registered = await _read_envelope(envelope, client, settings, resources, now)
    transaction, problem = _status_message(envelope)
    if problem is None and (not isinstance(transaction, str) or not transaction):
        problem = ("rjct.action.invalid", "transaction_id is required")
    accepted = await _accept(
        envelope,
        registered,
        resources,
        client,
        now,
        action="txn-status",
        answer_path="txn/on-status",
        problem=problem,
    )
    if isinstance(accepted, Ack):
        return accepted
    url, seen = accepted
    assert isinstance(transaction, str)
    body = await _status_of(resources.database, client, envelope)
    correlation = uuid.uuid4()
    body["correlation_id"] = str(correlation)
    count = len(body["txnstatus_response"]["txn_status"]["search_response"])
    signed = answer.envelope(body, total=count, completed=count)
    recorded = await _record(
        resources.database,
        client,
        seen,
        "txn-status",
        transaction,
        correlation,
        [],
        "txn-status",
        now,
        Callback(url, signed, callbacks),
    )
    return _ack(now, recorded)


# -- subscriptions (the registry core API's subscribe / unsubscribe; dci_notify.py notifies) -----


async def subscriber(client: Annotated[Client, Depends(current_partner)]) -> Client:
    if Permission.SUBSCRIBE not in client.permissions:
        raise PermissionNotGranted(Permission.SUBSCRIBE)
    return client


Subscriber = Annotated[Client, Depends(subscriber)]


async def exchange_reconciler(request: Request) -> ExchangeReconciler | None:
    """The exchanges' reconciler where this process runs one (the notifying gateway)."""
    for component in request.app.state.components:
        if isinstance(component, ExchangeReconciler):
            return component
    return None


ExchangesDep = Annotated[ExchangeReconciler | None, Depends(exchange_reconciler)]


@dataclass(frozen=True, slots=True)
class NewSubscription:
    code: uuid.UUID
    reference_id: str
    reg_event_type: str
    person_id: uuid.UUID | None
    filter: dict[str, Any] | None


async def _subscription_of(
    request: Any,
    seen: set[str],
    client: Client,
    today: date,
    identity: IdentityClient,
    active: set[str],
) -> tuple[dict[str, Any], NewSubscription | None]:
    """One subscribe request's response item, and the subscription it makes (None: refused)."""
    reference = request.get("reference_id") if isinstance(request, dict) else None
    try:
        if not isinstance(reference, str) or not reference or len(reference) > 99:
            raise dci.Rejected("rjct.reference_id.invalid", "reference_id: 1-99 characters")
        if reference in seen:
            raise dci.Rejected("rjct.reference_id.duplicate", "reference_id twice in a message")
        seen.add(reference)
        try:
            datetime.fromisoformat(str(request.get("timestamp")).replace("Z", "+00:00"))
        except ValueError:
            raise dci.Rejected("rjct.timestamp.invalid", "timestamp: ISO 8601") from None
        criteria = request.get("subscribe_criteria")
        if (
            not isinstance(criteria, dict)
            or not criteria.get("reg_event_type")
            or not criteria.get("notify_record_type")
        ):
            raise dci.Rejected(
                "rjct.notify_types.invalid",
                "subscribe_criteria: reg_event_type and notify_record_type",
            )
        try:
            query = dci.query_of(
                {"query_type": criteria.get("filter_type"), "query": criteria.get("filter")},
                client,
                today,
            )
        except dci.Rejected as rejected:
            raise dci.Rejected("rjct.notify_details.invalid", rejected.message) from None
        person_id, condition = None, None
        if isinstance(query, dci.ByIdentifier):
            [person_id] = await identity.person_ids([query.number], caller=client)
            if person_id is None:
                raise dci.Rejected("rjct.person_id.invalid", "the registry has no such person")
            what = f"person:{person_id}"
        else:
            parsed = Filter.model_validate(query.filter)
            if not names_a_region(parsed):
                raise dci.Rejected(
                    "rjct.notify_details.invalid",
                    "a subscription names the division (region) it covers",
                )
            condition = parsed.model_dump(mode="json")
            what = "filter:" + json.dumps(condition, sort_keys=True)
        if what in active:
            raise dci.Rejected("rjct.event.already_subscribed", "this client subscribed to it")
        active.add(what)
    except dci.Rejected as rejected:
        return {
            "reference_id": reference if isinstance(reference, str) else "",
            "status": "rjct",
            "status_reason_code": rejected.code,
            "status_reason_message": rejected.message,
        }, None
    code = uuid.uuid4()
    subscription = NewSubscription(
        code, reference, str(criteria["reg_event_type"]), person_id, condition
    )
    # SubscriptionInfo (registry_core_api_v1.0.0.yaml) declares code, timestamp and the criteria's
    # fields, but requires subscription_code, timestamp and subscribe_criteria: both are given
    # (the timestamp by the caller).
    info = {
        "version": dci.VERSION,
        "code": str(code),
        "subscription_code": str(code),
        "status": "subscribe",
        "reg_event_type": criteria["reg_event_type"],
        "filter_type": criteria.get("filter_type"),
        "filter": criteria.get("filter"),
        "notify_record_type": criteria["notify_record_type"],
        "subscribe_criteria": criteria,
    }
    return {"reference_id": reference, "status": "succ", "subscriptions": [info]}, subscription


async def _active_subscriptions(database: Any, client: Client) -> set[str]:
    query = sa.select(dci_subscriptions.c.person_id, dci_subscriptions.c.filter).where(
        dci_subscriptions.c.client_id == client.client_id, dci_subscriptions.c.state == "active"
    )
    async with database.engine.connect() as connection:
        rows = (await connection.execute(query)).all()
    return {
        f"person:{r.person_id}" if r.person_id else "filter:" + json.dumps(r.filter, sort_keys=True)
        for r in rows
    }


@router.post(
    "/subscribe",
    responses=ERRORS,
    summary="DCI subscribe: acknowledged now, on-subscribe to the caller's registered "
    "address; then notify whenever a subscribed person's registration or statuses "
    "change",
)
async def subscribe(
    envelope: Envelope,
    client: Subscriber,
    settings: SettingsDep,
    resources: ResourcesDep,
    clock: ClockDep,
    identity: IdentityDep,
    callbacks: DeliveryDep,
    exchanges: ExchangesDep,
) -> Ack:
    now = clock()
    answer = dci.Answer(settings, client, now, "on-subscribe")
    registered = await _read_envelope(envelope, client, settings, resources, now)
    message = envelope.message
    requests = message.get("subscribe_request")
    count = len(requests) if isinstance(requests, list) else None
    transaction = message.get("transaction_id")
    problem = _header_problem(envelope.header, "subscribe", count)
    if problem is None and (
        not isinstance(transaction, str) or not transaction or len(transaction) > 99 or not count
    ):
        problem = ("rjct.total_count.invalid", "transaction_id and a non-empty subscribe_request")
    accepted = await _accept(
        envelope,
        registered,
        resources,
        client,
        now,
        action="subscribe",
        answer_path="on-subscribe",
        problem=problem,
    )
    if isinstance(accepted, Ack):
        return accepted
    url, seen = accepted
    assert isinstance(requests, list) and isinstance(transaction, str)
    notify_url = _notify_url(envelope, registered)
    active = await _active_subscriptions(resources.database, client)
    responses, made, references = [], [], set[str]()
    for request in requests:
        response, subscription = await _subscription_of(
            request, references, client, now.date(), identity, active
        )
        responses.append(response | {"timestamp": dci.now_iso(now)})
        for info in response.get("subscriptions", []):
            info["timestamp"] = dci.now_iso(now)
        if subscription is not None:
            made.append(subscription)

    async def save(connection: AsyncConnection) -> None:
        if made:
            await connection.execute(
                sa.insert(dci_subscriptions),
                [
                    {
                        "subscription_code": m.code,
                        "client_id": client.client_id,
                        "transaction_id": transaction,
                        "reference_id": m.reference_id,
                        "reg_event_type": m.reg_event_type,
                        "person_id": m.person_id,
                        "filter": m.filter,
                        "notify_url": notify_url,
                        "state": "active",
                        "created_at": now,
                        # The national registry's filter subscriptions are exchanges: owed
                        # everyone the filter selects, reconciled (dci_notify.py).
                        "exchange": m.filter is not None
                        and client.department == Department.NATIONAL,
                    }
                    for m in made
                ],
            )

    correlation = uuid.uuid4()
    body = {
        "transaction_id": transaction,
        "correlation_id": str(correlation),
        "subscribe_response": responses,
    }
    signed = answer.envelope(body, total=len(requests), completed=len(requests))
    recorded = await _record(
        resources.database,
        client,
        seen,
        "subscribe",
        transaction,
        correlation,
        responses,
        "subscribe",
        now,
        Callback(url, signed, callbacks),
        save,
    )
    if exchanges is not None and any(m.filter is not None for m in made):
        exchanges.wake()
    return _ack(now, recorded)


@router.post(
    "/unsubscribe",
    responses=ERRORS,
    summary="DCI unsubscribe: acknowledged now, on-unsubscribe to the caller's registered address",
)
async def unsubscribe(
    envelope: Envelope,
    client: Subscriber,
    settings: SettingsDep,
    resources: ResourcesDep,
    clock: ClockDep,
    callbacks: DeliveryDep,
) -> Ack:
    now = clock()
    answer = dci.Answer(settings, client, now, "on-unsubscribe")
    registered = await _read_envelope(envelope, client, settings, resources, now)
    message = envelope.message
    transaction, codes = message.get("transaction_id"), message.get("subscription_codes")
    problem = _header_problem(envelope.header, "unsubscribe", None)
    if problem is None and (
        not isinstance(transaction, str)
        or not transaction
        or not isinstance(codes, list)
        or not codes
    ):
        problem = ("rjct.total_count.invalid", "transaction_id and subscription_codes")
    accepted = await _accept(
        envelope,
        registered,
        resources,
        client,
        now,
        action="unsubscribe",
        answer_path="on-unsubscribe",
        problem=problem,
    )
    if isinstance(accepted, Ack):
        return accepted
    url, seen = accepted
    assert isinstance(codes, list) and isinstance(transaction, str)
    wanted = []
    for code in codes:
        try:
            wanted.append(uuid.UUID(str(code)))
        except ValueError:
            continue
    async with resources.database.engine.connect() as connection:
        states = dict(
            (
                await connection.execute(
                    sa.select(
                        dci_subscriptions.c.subscription_code, dci_subscriptions.c.state
                    ).where(
                        dci_subscriptions.c.client_id == client.client_id,
                        dci_subscriptions.c.subscription_code.in_(wanted),
                    )
                )
            ).all()
        )
    cancelled = [c for c in wanted if states.get(c) == "active"]
    unknown = [str(c) for c in codes if _uuid_or_none(c) not in states]
    again = [str(c) for c in wanted if states.get(c) == "cancelled"]
    body: dict[str, Any] = {
        "transaction_id": transaction,
        "correlation_id": "",
        "timestamp": dci.now_iso(now),
        "status": "succ" if not unknown and not again else "rjct",
        "subscription_status": [{"code": str(c), "status": "unsubscribe"} for c in cancelled],
    }
    if unknown:
        body |= {
            "status_reason_code": "rjct.subscription_code.invalid",
            "status_reason_message": f"not this client's subscriptions: {unknown}",
        }
    elif again:
        body |= {
            "status_reason_code": "rjct.event.already_unsubscribed",
            "status_reason_message": f"unsubscribed before: {again}",
        }

    async def cancel(connection: AsyncConnection) -> None:
        if cancelled:
            await connection.execute(
                sa.update(dci_subscriptions)
                .where(
                    dci_subscriptions.c.subscription_code.in_(cancelled),
                    dci_subscriptions.c.state == "active",
                )
                .values(state="cancelled", cancelled_at=now)
            )

    correlation = uuid.uuid4()
    body["correlation_id"] = str(correlation)
    signed = answer.envelope(body, total=len(codes), completed=len(codes))
    recorded = await _record(
        resources.database,
        client,
        seen,
        "unsubscribe",
        transaction,
        correlation,
        [],
        "unsubscribe",
        now,
        Callback(url, signed, callbacks),
        cancel,
    )
    return _ack(now, recorded)


def _uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
