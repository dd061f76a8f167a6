"""Citizens' self-service sessions (api.md "Self-service"; 44号 §14, §23): a citizen reads their
own record, completes and corrects it, and prints a proof of insurance, on a kiosk or in the app.

The registry checks no face and no card: it trusts the channel that did (api.md).
* A kiosk (clients.py, its client-credentials token) has read the ID card chip and done its own
  face check; it opens a session with the number and name read from the card, and the name must
  be the registry's (`names_match`): a card of one person with another's number opens nothing.
* The mobile app's identity provider did the real-name check and signed an ID token (JWT,
  subject the ID number); its signature, issuer, audience, times and subject are checked here
  with PyJWT against the configured key, and each token opens one session only (`jti`).

A session is a row (tables.self_sessions) and its token names only the row: every request
checks it is open, not expired, not idle on a kiosk, and its kiosk still enabled, in one UPDATE
that also records the request as activity. Sessions reach the person's own record and nothing
else: every self route reads `Citizen.person_id`, never a number from the request. Every
opening, refusal and read is audited with the channel and the device (`Citizen.username`).
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final
from uuid import UUID

import jwt
import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.dialects.postgresql import insert

from canbao_contracts.id_numbers import normalise, validate
from canbao_gateway import problems, throttling, tokens
from canbao_gateway.audit import AuditTrail, Outcome, Purpose, endpoint_of, id_number_hash
from canbao_gateway.auth import ResourcesDep, SettingsDep, client_of
from canbao_gateway.clients import Client, ClientKind
from canbao_gateway.clock import ClockDep
from canbao_gateway.problems import NotRegistered, ProblemWithHeaders, Unauthenticated
from canbao_gateway.service_clients import IdentityClient
from canbao_gateway.settings import GatewaySettings
from canbao_gateway.tables import clients, id_token_uses, self_sessions
from canbao_platform.db import Database
from canbao_platform.problems import Problem

SESSION_URL: Final = "/api/v1/self/session"
# A citizen's session token comes from the session endpoint, not from an OAuth2 flow.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="CitizenSession",
    description="a citizen's session (POST /api/v1/self/session)",
)
# PyJWT's leeway for the identity provider's clock (exp, nbf, iat).
ID_TOKEN_LEEWAY_S: Final = 30
# An ID token is for trading at once, not for keeping: one issued longer ago is refused.
ID_TOKEN_MAX_AGE: Final = timedelta(minutes=10)
JTI_MAX: Final = 200  # id_token_uses.jti


class Channel(StrEnum):
    KIOSK = "kiosk"
    MOBILE = "mobile"


class SelfRole(StrEnum):
    SELF = "self"  # a citizen's session: the audit log's role, survey's caller role


@dataclass(frozen=True, slots=True)
class Citizen:
    """The person a session serves, and through which channel and device (staff.Actor)."""

    session_id: UUID
    person_id: UUID
    region: str  # the person's county-level division (6 digits)
    channel: Channel
    device: str  # the kiosk's client_id; the app's identity provider

    @property
    def username(self) -> str:  # the audit log's and survey's name for who acted
        return f"{self.channel.value}:{self.device}"

    @property
    def role(self) -> SelfRole:
        return SelfRole.SELF

    @property
    def scope(self) -> str:
        return self.region


@dataclass(frozen=True, slots=True)
class Unverified:
    """Who tried to open a session that was refused, for its audit row: the channel and device,
    nothing the request claimed about a person."""

    channel: Channel
    device: str
    role: SelfRole = SelfRole.SELF
    scope: str = ""

    @property
    def username(self) -> str:
        return f"{self.channel.value}:{self.device}"


# -- Problems ------------------------------------------------------------------------------------


class NameMismatch(Problem):
    def __init__(self) -> None:
        super().__init__(
            403,
            "name-mismatch",
            "姓名与登记信息不一致，请到社保经办窗口办理 (the name does not match the registry's)",
        )


class IdTokenInvalid(ProblemWithHeaders):
    def __init__(self, reason: str) -> None:
        title = "身份认证凭证无效，请在手机APP重新进行实名认证 (invalid ID token)"
        super().__init__(401, "id-token-invalid", title, reason)
        self.headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class IdTokenReplayed(ProblemWithHeaders):
    def __init__(self) -> None:
        title = "身份认证凭证已使用过，请重新认证 (this ID token was used already)"
        super().__init__(401, "id-token-replayed", title)
        self.headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


class MobileChannelClosed(Problem):
    def __init__(self) -> None:
        super().__init__(
            503,
            "mobile-channel-unavailable",
            "手机APP登录暂不可用 (no identity provider is configured)",
        )


class NotAKiosk(Problem):
    def __init__(self, kind: str) -> None:
        super().__init__(
            403,
            "role-not-allowed",
            "您的岗位无权使用此功能 (role not allowed)",
            "only a kiosk opens a session with what it read from an ID card",
            role=kind,
        )


def session_ended() -> Unauthenticated:
    """The session was ended (the citizen left, the kiosk idled or was disabled) or expired."""
    title = "本次服务已结束，请重新读取身份证或登录 (session ended)"
    return Unauthenticated("session-ended", title)


# -- Opening a session ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    token: str
    expires_in: int


def names_match(read: str, registered: str) -> bool:
    """Whether the name read from the card is the registry's: the same characters once width,
    spaces and the forms of the middle dot of minority and foreign names (·•・．) are set aside."""
    return bool(registered) and _name_key(read) == _name_key(registered)


def _name_key(name: str) -> str:
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if not ch.isspace())
    for dot in ("•", "・", "．", ".", "‧", "∙"):
        text = text.replace(dot, "·")
    return text.casefold()


async def open_kiosk_session(
    *,
    kiosk: Client,
    id_number: str,
    name: str,
    identity: IdentityClient,
    database: Database,
    settings: GatewaySettings,
    audit: AuditTrail,
    now: datetime,
) -> Opened:
    """A session for the person whose ID card the kiosk read. 422 for a number that is not
    valid, 404 not-registered, 403 name-mismatch; each audited."""
    if kiosk.kind is not ClientKind.KIOSK:
        raise NotAKiosk(kiosk.kind.value)
    number = _valid_number(id_number)
    await _within_limits(
        database, audit, number, now=now, kiosk=throttling.SESSIONS_PER_KIOSK, key=kiosk.client_id
    )
    person = await _registered(identity, number, audit=audit, caller=kiosk)
    registered = (person["golden"].get("name") or {}).get("value") or ""
    if not names_match(name, str(registered)):
        await audit.record(
            purpose=Purpose.SELF_SERVICE,
            outcome=Outcome.REFUSED,
            person_id=person["person_id"],
            id_number=number,
        )
        raise NameMismatch()
    return await _open(
        person,
        number,
        channel=Channel.KIOSK,
        device=kiosk.client_id,
        database=database,
        settings=settings,
        audit=audit,
        now=now,
    )


async def open_mobile_session(
    *,
    id_token: str,
    identity: IdentityClient,
    database: Database,
    settings: GatewaySettings,
    audit: AuditTrail,
    now: datetime,
) -> Opened:
    """A session for the subject of the identity provider's ID token; 401 id-token-invalid (with
    the reason) or id-token-replayed, 404 not-registered; each audited."""
    issuer, key = settings.mobile_id_token_issuer, settings.mobile_id_token_public_key
    if not issuer or not key:
        raise MobileChannelClosed()
    try:
        # Times are checked below against the injected clock, not PyJWT's own time.
        claims = jwt.decode(
            id_token,
            key,
            algorithms=settings.mobile_id_token_algorithms,
            audience=settings.mobile_id_token_audience,
            issuer=issuer,
            options={
                "require": ["iss", "aud", "sub", "exp", "iat", "jti"],
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
            },
        )
        _check_times(claims, now)
        subject, jti = str(claims["sub"]), str(claims["jti"])
        expires = datetime.fromtimestamp(int(claims["exp"]), tz=UTC)
        if validate(subject):
            raise jwt.InvalidTokenError("the subject is not a valid citizen ID number")
        if not jti or len(jti) > JTI_MAX:
            raise jwt.InvalidTokenError("the token's jti is empty or too long")
    except (jwt.InvalidTokenError, ValueError, TypeError) as exc:
        await audit.record(purpose=Purpose.SELF_SERVICE, outcome=Outcome.REFUSED)
        raise IdTokenInvalid(_reason(exc)) from exc
    number = normalise(subject)
    await _within_limits(database, audit, number, now=now)
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.delete(id_token_uses).where(
                id_token_uses.c.expires_at < now - timedelta(seconds=ID_TOKEN_LEEWAY_S)
            )
        )
        first = await connection.scalar(
            insert(id_token_uses)
            .values(issuer=issuer[:JTI_MAX], jti=jti, expires_at=expires)
            .on_conflict_do_nothing()
            .returning(id_token_uses.c.jti)
        )
    if first is None:
        await audit.record(purpose=Purpose.SELF_SERVICE, outcome=Outcome.REFUSED, id_number=number)
        raise IdTokenReplayed()
    person = await _registered(identity, number, audit=audit, caller=audit.staff)
    return await _open(
        person,
        number,
        channel=Channel.MOBILE,
        device=_device_of(issuer),
        database=database,
        settings=settings,
        audit=audit,
        now=now,
    )


def _check_times(claims: dict[str, Any], now: datetime) -> None:
    """RFC 7519 §4.1.4-6 with the leeway for the provider's clock, and a maximum age: an ID token
    is traded at once, never kept."""
    at, leeway = now.timestamp(), ID_TOKEN_LEEWAY_S
    if int(claims["exp"]) <= at - leeway:
        raise jwt.ExpiredSignatureError("the ID token has expired")
    if "nbf" in claims and int(claims["nbf"]) > at + leeway:
        raise jwt.ImmatureSignatureError("the ID token is not valid yet")
    issued = int(claims["iat"])
    if issued > at + leeway:
        raise jwt.ImmatureSignatureError("the ID token is issued in the future")
    if issued < at - ID_TOKEN_MAX_AGE.total_seconds() - leeway:
        raise jwt.InvalidTokenError("the ID token was issued too long ago to open a session")


def _device_of(issuer: str) -> str:
    """The app's name in audit rows: its identity provider's host, within the column."""
    host = issuer.split("://", 1)[-1].split("/", 1)[0]
    return (host or issuer)[: 64 - len("mobile:")]


def _reason(exc: Exception) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "the ID token has expired"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "the ID token was issued for another audience"
    if isinstance(exc, jwt.InvalidIssuerError):
        return "the ID token was issued by another issuer"
    if isinstance(exc, jwt.InvalidSignatureError):
        return "the ID token's signature does not verify"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"the ID token lacks the claim {exc.claim!r}"
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return "the ID token is signed with an algorithm that is not accepted"
    return str(exc) if isinstance(exc, jwt.InvalidTokenError) and str(exc) else "malformed token"


def _valid_number(id_number: str) -> str:
    if defects := validate(id_number):
        raise problems.InvalidIdNumber(
            [
                {"code": d.code.value, "message": d.message, "message_zh": d.message_zh}
                for d in defects
            ]
        )
    return normalise(id_number)


async def _registered(
    identity: IdentityClient, number: str, *, audit: AuditTrail, caller: Any
) -> dict[str, Any]:
    try:
        return await identity.person(number, "01", caller=caller)
    except NotRegistered:
        await audit.record(
            purpose=Purpose.SELF_SERVICE,
            outcome=Outcome.NOT_FOUND,
            id_number=number,
            person_region=number[:6],
        )
        raise


async def _within_limits(
    database: Database,
    audit: AuditTrail,
    number: str,
    *,
    now: datetime,
    kiosk: throttling.Limit | None = None,
    key: str = "",
) -> None:
    """Count the attempt against the limits of throttling.py (sessions per ID number, and per
    kiosk for a kiosk); a refusal (429 self-service-throttled) is audited."""
    try:
        async with database.engine.begin() as connection:
            if kiosk is not None:
                await throttling.take(
                    connection, kiosk, key, now=now, refuse=problems.self_service_throttled
                )
            await throttling.take(
                connection,
                throttling.SESSIONS_PER_NUMBER,
                id_number_hash(number, key=audit.key),
                now=now,
                refuse=problems.self_service_throttled,
            )
    except problems.Throttled:
        await audit.record(purpose=Purpose.SELF_SERVICE, outcome=Outcome.REFUSED, id_number=number)
        raise


async def _open(
    person: dict[str, Any],
    number: str,
    *,
    channel: Channel,
    device: str,
    database: Database,
    settings: GatewaySettings,
    audit: AuditTrail,
    now: datetime,
) -> Opened:
    session_id = uuid.uuid4()
    person_id = UUID(str(person["person_id"]))
    region = _region_of(person, number)
    expires = now + settings.self_session_lifetime
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.insert(self_sessions).values(
                session_id=session_id,
                person_id=person_id,
                id_number_hash=id_number_hash(number, key=audit.key),
                region=region,
                channel=channel.value,
                device=device,
                opened_at=now,
                expires_at=expires,
                last_seen_at=now,
            )
        )
    citizen = Citizen(session_id, person_id, region, channel, device)
    await _audit_as(citizen, audit).record(
        purpose=Purpose.SELF_SERVICE,
        outcome=Outcome.OK,
        person_id=person_id,
        id_number=number,
        person_region=region,
    )
    token = tokens.issue_session(session_id, key=settings.jwt_key(), now=now, expires=expires)
    return Opened(token=token, expires_in=int(settings.self_session_lifetime.total_seconds()))


def _region_of(person: dict[str, Any], number: str) -> str:
    """The person's county-level division: household region, else their insurance region, else
    the number's first six digits (persons.py's rule)."""
    for field in ("household_region_code", "region_code"):
        value = (person["golden"].get(field) or {}).get("value")
        if isinstance(value, str) and len(value) >= 6 and value[:6].isdigit():
            return value[:6]
    return number[:6]


def _audit_as(actor: Any, audit: AuditTrail) -> AuditTrail:
    return AuditTrail(
        database=audit.database,
        staff=actor,
        endpoint=audit.endpoint,
        client=audit.client,
        key=audit.key,
        now=audit.now,
    )


async def end_session(database: Database, citizen: Citizen, *, now: datetime) -> None:
    async with database.engine.begin() as connection:
        await connection.execute(
            sa.update(self_sessions)
            .where(
                self_sessions.c.session_id == citizen.session_id, self_sessions.c.ended_at.is_(None)
            )
            .values(ended_at=now)
        )


# -- The session of a request --------------------------------------------------------------------


async def current_citizen(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: SettingsDep,
    now: ClockDep,
    resources: ResourcesDep,
) -> Citizen:
    """The citizen whose open session the bearer token names; 401 `session-ended` for one ended,
    expired, idle on a kiosk, or of a kiosk disabled since; 403 for a staff or kiosk token."""
    if credentials is None:
        raise problems.missing_token()
    token, at = credentials.credentials, now()
    session_id = tokens.read_session(token, key=settings.jwt_key(), now=at)
    s = self_sessions.c
    kiosk_enabled = sa.exists().where(clients.c.client_id == s.device, clients.c.active)
    statement = (
        sa.update(self_sessions)
        .where(
            s.session_id == session_id,
            s.ended_at.is_(None),
            s.expires_at > at,
            sa.or_(
                s.channel != Channel.KIOSK.value,
                sa.and_(s.last_seen_at > at - settings.kiosk_idle, kiosk_enabled),
            ),
        )
        .values(last_seen_at=at)
        .returning(s.person_id, s.region, s.channel, s.device)
    )
    async with resources.database.engine.begin() as connection:
        row = (await connection.execute(statement)).first()
    if row is None:
        raise session_ended()
    return Citizen(session_id, row.person_id, row.region, Channel(row.channel), row.device)


CitizenDep = Annotated[Citizen, Depends(current_citizen)]


async def citizen_audit(
    request: Request,
    citizen: CitizenDep,
    resources: ResourcesDep,
    settings: SettingsDep,
    now: ClockDep,
) -> AuditTrail:
    """The audit trail of a citizen's request: the session's channel and device as who acted."""
    return AuditTrail(
        database=resources.database,
        staff=citizen,
        endpoint=endpoint_of(request),
        client=client_of(request),
        key=settings.audit_key(),
        now=now,
    )


CitizenAuditDep = Annotated[AuditTrail, Depends(citizen_audit)]
