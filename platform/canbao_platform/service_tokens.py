"""Who is calling an internal API: short-lived service tokens signed by the gateway.

The gateway is the only caller of the services' internal APIs (architecture.md: a synchronous
call only where a user waits). Each call carries a bearer token (JWT, EdDSA over Ed25519) that
the gateway signs for that one call: audience the called service, subject the staff member on
whose behalf it calls, with the role and region scope the gateway checked, valid for a minute.
The services hold only the public key, so a compromised service cannot mint tokens for another,
and who reviewed or handled a record comes from the signature, never from a request body.

`/healthz` and `/readyz` stay open (probes); everything under a service's internal routers
requires a token (`CallerDep`).
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from canbao_platform.problems import Problem

ALGORITHM: Final = "EdDSA"
ISSUER: Final = "canbao-gateway"
LIFETIME: Final = timedelta(seconds=60)
# Replicas' clocks differ a little: a token signed on one host is accepted on another at once.
CLOCK_SKEW_S: Final = 30

# The local stack's and the tests' key pair: public in this file, so refused in production
# (ServiceSettings, GatewaySettings). Made with Ed25519PrivateKey.generate().
DEVELOPMENT_PRIVATE_KEY: Final = (
    "-----BEGIN PRIVATE KEY-----\n"
    "MC4CAQAwBQYDK2VwBCIEIG0rP0vR6+HETBCIDnpTfcm+SB3As34wJXLonueEUI39\n"
    "-----END PRIVATE KEY-----\n"
)
DEVELOPMENT_PUBLIC_KEY: Final = (
    "-----BEGIN PUBLIC KEY-----\n"
    "MCowBQYDK2VwAyEAvqXijNfwgUkYge72vjha/cEMhguTOTTP8BRJL3wpLTM=\n"
    "-----END PUBLIC KEY-----\n"
)


@dataclass(frozen=True, slots=True)
class Caller:
    """The staff member on whose behalf the gateway calls, as the gateway authenticated them."""

    username: str
    role: str
    scope: str


class CallerRejected(Problem):
    def __init__(self, reason: str) -> None:
        super().__init__(
            401,
            "service-token-invalid",
            "内部接口只接受网关签发的服务令牌 (a service token signed by the gateway is required)",
            reason,
        )


class CallerNotAllowed(Problem):
    def __init__(self, role: str) -> None:
        super().__init__(
            403,
            "caller-not-allowed",
            "该岗位无权进行此操作 (the caller's role may not do this)",
            f"role {role!r} may not call this internal endpoint",
        )


def private_key(text: str) -> Ed25519PrivateKey:
    """An Ed25519 private key: PEM, or its 32 raw bytes in base64 (one line, for env files)."""
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(text, validate=True))
    except ValueError:
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the service-token signing key must be an Ed25519 private key")
    return key


def public_key(text: str) -> Ed25519PublicKey:
    """An Ed25519 public key: PEM, or its 32 raw bytes in base64 (one line, for env files)."""
    try:
        if "-----BEGIN" in text:
            key = serialization.load_pem_public_key(text.encode())
        else:
            key = Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except ValueError:
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("the service-token key must be an Ed25519 public key")
    return key


def new_key_pair() -> tuple[str, str]:
    """A new (private, public) pair in the one-line form env files hold."""
    key = Ed25519PrivateKey.generate()
    raw = serialization.Encoding.Raw
    private = key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    return base64.b64encode(private).decode(), base64.b64encode(public).decode()


def issue(
    caller: Caller, *, audience: str, key: Ed25519PrivateKey, now: datetime | None = None
) -> str:
    """A token for one call to `audience` (a service name) on behalf of `caller`."""
    now = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": audience,
        "sub": caller.username,
        "role": caller.role,
        "scope": caller.scope,
        "iat": now,
        "exp": now + LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify(
    token: str, *, audience: str, key: Ed25519PublicKey, now: datetime | None = None
) -> Caller:
    """The caller a token names, if the gateway signed it for `audience` and it is valid now;
    raises CallerRejected saying why not (never the token)."""
    now = now or datetime.now(UTC)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=ISSUER,
            leeway=CLOCK_SKEW_S,
            options={"require": ["exp", "iat", "sub", "role", "scope"]},
        )
        caller = Caller(str(claims["sub"]), str(claims["role"]), str(claims["scope"]))
        issued = int(claims["iat"])
    except jwt.ExpiredSignatureError:
        raise CallerRejected("the service token has expired") from None
    except jwt.InvalidAudienceError:
        raise CallerRejected("the service token is for another service") from None
    except (jwt.InvalidTokenError, ValueError, TypeError, KeyError):
        raise CallerRejected("the service token is not valid") from None
    if issued > now.timestamp() + CLOCK_SKEW_S:
        raise CallerRejected("the service token is issued in the future")
    return caller


_bearer = HTTPBearer(auto_error=False)


async def current_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """The dependency of every internal route: the caller of a valid token for this service."""
    if credentials is None:
        raise CallerRejected("no service token (Authorization: Bearer …)")
    settings = request.app.state.resources.settings
    return verify(
        credentials.credentials,
        audience=request.app.state.service_name,
        key=settings.service_token_key(),
    )


CallerDep = Annotated[Caller, Depends(current_caller)]


def require_role(caller: Caller, *roles: str) -> None:
    """Defence in depth behind the gateway's own check: 403 `caller-not-allowed` otherwise."""
    if caller.role not in roles:
        raise CallerNotAllowed(caller.role)


if __name__ == "__main__":
    # `python -m canbao_platform.service_tokens`: a key pair for deploy/ (README "Secrets").
    private, public = new_key_pair()
    print(f"GATEWAY_SERVICE_TOKEN_PRIVATE_KEY={private}")
    print(f"CANBAO_SERVICE_TOKEN_PUBLIC_KEY={public}")
