"""Staff access tokens: short-lived JWTs (HS256) that state who the holder is, their role and
their region scope, signed with the gateway's key (settings.py).

Stateless on purpose: the popup must answer in milliseconds, so a request is authorised from the
token alone, without reading the accounts table; the short lifetime bounds how long a disabled
account or a changed role keeps its old rights."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Final

import jwt

from canbao_gateway import problems
from canbao_gateway.staff import Role, Staff

ALGORITHM: Final = "HS256"
ISSUER: Final = "canbao-gateway"
AUDIENCE: Final = "canbao-staff"
# Replicas' clocks differ a little: a token issued by one is accepted by another at once.
CLOCK_SKEW_S: Final = 30


def issue(staff: Staff, *, key: str, now: datetime, lifetime: timedelta) -> str:
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": staff.username,
        "role": staff.role.value,
        "scope": staff.scope,
        "iat": now,
        "exp": now + lifetime,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def read(token: str, *, key: str, now: datetime) -> Staff:
    """The staff member a token stands for; raises the 401 problem that says why not."""
    try:
        # Expiry is checked below against the injected clock, not PyJWT's own time.
        claims = jwt.decode(
            token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "role", "scope"], "verify_exp": False,
                     "verify_iat": False},
        )  # fmt: skip
        staff = Staff(username=claims["sub"], role=Role(claims["role"]), scope=claims["scope"])
        expires = int(claims["exp"])
        issued = int(claims["iat"])
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError) as exc:
        raise problems.invalid_token() from exc
    if now.timestamp() >= expires:
        raise problems.expired_token()
    if issued > now.timestamp() + CLOCK_SKEW_S:
        raise problems.invalid_token()
    return staff
