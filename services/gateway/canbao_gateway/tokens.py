"""Access tokens: short-lived JWTs (HS256) signed with the gateway's key (settings.py), of three
kinds, told apart by their audience:

* a member of staff's (`canbao-staff`): who, their role and region scope, and the version of
  their account's tokens when it was issued (`ver`);
* a client's (`canbao-client`; clients.py): a registered kiosk or partner program, its kind and
  region, a partner's department, permissions and fields, `ver`;
* a citizen's session (`canbao-self`; self_service.py): only the session's id, which the
  gateway looks up on every request (no personal data in a token a phone keeps).

A token is good only where its kind is: a citizen's or a kiosk's token shown to a staff route is
refused 403 `role-not-allowed` (it is valid, it just may not do this), and the other way round.

Revocation: disabling an account, or changing its password, role or scope, raises the
account's token version (migration gateway_0002); every request looks the current version up
(`check_current`: one primary-key lookup in one round trip, against the popup's 20 ms budget)
and refuses a token of another version. No cache in between: a disabled account's token stops
working with the next request, on every replica."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import jwt

from canbao_gateway import accounts, clients, problems
from canbao_gateway.clients import Client, ClientKind, Field, Permission
from canbao_gateway.staff import Role, Staff
from canbao_platform.db import Database

ALGORITHM: Final = "HS256"
ISSUER: Final = "canbao-gateway"
AUDIENCE: Final = "canbao-staff"
CLIENT_AUDIENCE: Final = "canbao-client"
SESSION_AUDIENCE: Final = "canbao-self"
SESSION_ROLE: Final = "self"  # what a session token says it is (the audit log's role)
_AUDIENCES: Final = [AUDIENCE, CLIENT_AUDIENCE, SESSION_AUDIENCE]
# Replicas' clocks differ a little: a token issued by one is accepted by another at once.
CLOCK_SKEW_S: Final = 30


@dataclass(frozen=True, slots=True)
class Holder:
    """What a valid token says: who, and the account's token version it was issued under."""

    staff: Staff
    version: int


def issue(staff: Staff, *, version: int, key: str, now: datetime, lifetime: timedelta) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": staff.username,
        "role": staff.role.value,
        "scope": staff.scope,
        "ver": version,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read(token: str, *, key: str, now: datetime) -> Holder:
    """Whom a staff token stands for; raises the 401 problem that says why not (revocation is
    `check_current`'s), or 403 for a valid token of another kind."""
    claims = _claims(
        token, key=key, now=now, audience=AUDIENCE, required=["sub", "role", "scope", "ver"]
    )
    try:
        staff = Staff(username=claims["sub"], role=Role(claims["role"]), scope=claims["scope"])
    except (ValueError, TypeError) as exc:
        raise problems.invalid_token() from exc
    return Holder(staff=staff, version=_version(claims))


@dataclass(frozen=True, slots=True)
class ClientHolder:
    client: Client
    version: int


def issue_client(
    client: Client, *, version: int, key: str, now: datetime, lifetime: timedelta
) -> str:
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": CLIENT_AUDIENCE,
        "sub": client.client_id,
        "role": client.kind.value,
        "scope": client.region,
        "ver": version,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    if client.department is not None:  # a partner: what it may do and see (clients.py)
        claims |= {
            "dept": client.department,
            "perm": sorted(client.permissions),
            "fields": sorted(client.fields),
        }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_client(token: str, *, key: str, now: datetime) -> ClientHolder:
    """The client a client token stands for (401 / 403 as `read`)."""
    claims = _claims(
        token, key=key, now=now, audience=CLIENT_AUDIENCE, required=["sub", "role", "scope", "ver"]
    )
    try:
        client = Client(
            client_id=claims["sub"],
            kind=ClientKind(claims["role"]),
            region=claims["scope"],
            department=claims.get("dept"),
            permissions=frozenset(Permission(p) for p in claims.get("perm", ())),
            fields=frozenset(Field(f) for f in claims.get("fields", ())),
        )
    except (ValueError, TypeError) as exc:
        raise problems.invalid_token() from exc
    return ClientHolder(client=client, version=_version(claims))


def issue_session(session_id: uuid.UUID, *, key: str, now: datetime, expires: datetime) -> str:
    claims = {
        "iss": ISSUER,
        "aud": SESSION_AUDIENCE,
        "sub": str(session_id),
        "role": SESSION_ROLE,
        "iat": now,
        "exp": expires,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read_session(token: str, *, key: str, now: datetime) -> uuid.UUID:
    """The session id a citizen's token names (401 / 403 as `read`); whether the session is
    still open is self_service.py's."""
    claims = _claims(token, key=key, now=now, audience=SESSION_AUDIENCE, required=["sub"])
    try:
        return uuid.UUID(claims["sub"])
    except (ValueError, TypeError, AttributeError) as exc:
        raise problems.invalid_token() from exc


def _claims(
    token: str, *, key: str, now: datetime, audience: str, required: list[str]
) -> dict[str, Any]:
    """The claims of a token of ours of the kind `audience`; 401 unless valid now, 403
    `role-not-allowed` for a valid token of another kind."""
    try:
        # Expiry is checked below against the injected clock, not PyJWT's own time.
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=_AUDIENCES,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "aud"], "verify_exp": False, "verify_iat": False},
        )
        expires = int(claims["exp"])
        issued = int(claims["iat"])
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError) as exc:
        raise problems.invalid_token() from exc
    if now.timestamp() >= expires:
        raise problems.expired_token()
    if issued > now.timestamp() + CLOCK_SKEW_S:
        raise problems.invalid_token()
    if claims["aud"] != audience:
        raise problems.RoleNotAllowed(str(claims.get("role", claims["aud"])))
    if any(claim not in claims for claim in required):
        raise problems.invalid_token()
    return claims


def _version(claims: dict[str, Any]) -> int:
    version = claims["ver"]
    if not isinstance(version, int) or isinstance(version, bool):
        raise problems.invalid_token()
    return version


async def check_current(database: Database, holder: Holder | ClientHolder) -> None:
    """Raise 401 `token-revoked` unless the holder's account (or client) is active and still at
    the token version the token was issued under."""
    if isinstance(holder, ClientHolder):
        current = await clients.token_version(database, holder.client.client_id)
    else:
        current = await accounts.token_version(database, holder.staff.username)
    if current != holder.version:
        raise problems.revoked_token()
