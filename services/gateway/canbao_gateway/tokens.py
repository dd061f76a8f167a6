"""Staff access tokens: short-lived JWTs (HS256) that state who the holder is, their role and
their region scope, signed with the gateway's key (settings.py), and the version of their
account's tokens when it was issued (`ver`).

Revocation: disabling an account, or changing its password, role or scope, raises the
account's token version (migration gateway_0002); every request looks the current version up
(`check_current`: one primary-key lookup in one round trip, against the popup's 20 ms budget)
and refuses a token of another version. No cache in between: a disabled account's token stops
working with the next request, on every replica."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import jwt

from canbao_gateway import accounts, problems
from canbao_gateway.staff import Role, Staff
from canbao_platform.db import Database

ALGORITHM: Final = "HS256"
ISSUER: Final = "canbao-gateway"
AUDIENCE: Final = "canbao-staff"
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
    """Whom a token stands for; raises the 401 problem that says why not (revocation is
    `check_current`'s)."""
    try:
        # Expiry is checked below against the injected clock, not PyJWT's own time.
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "role", "scope", "ver"], "verify_exp": False,
                     "verify_iat": False},
        )  # fmt: skip
        staff = Staff(username=claims["sub"], role=Role(claims["role"]), scope=claims["scope"])
        version = claims["ver"]
        if not isinstance(version, int):
            raise TypeError("ver")
        expires = int(claims["exp"])
        issued = int(claims["iat"])
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError) as exc:
        raise problems.invalid_token() from exc
    if now.timestamp() >= expires:
        raise problems.expired_token()
    if issued > now.timestamp() + CLOCK_SKEW_S:
        raise problems.invalid_token()
    return Holder(staff=staff, version=version)


async def check_current(database: Database, holder: Holder) -> None:
    """Raise 401 `token-revoked` unless the holder's account is active and still at the token
    version the token was issued under."""
    if await accounts.token_version(database, holder.staff.username) != holder.version:
        raise problems.revoked_token()
