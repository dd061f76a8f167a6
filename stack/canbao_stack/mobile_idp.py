"""The local stack's stand-in for the mobile app's identity provider (api.md "Self-service"):
a key pair made on first start in the state directory, whose public half the gateway is
configured with, and `canbao mobile-token <id number>`, which signs an ID token (ES256, subject
the number) as the provider would after its real-name check, for trying the mobile channel.

Only the local stack has it: in production the provider is another organisation's, and the
gateway holds nothing but its public key (GATEWAY_MOBILE_ID_TOKEN_PUBLIC_KEY)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ISSUER: Final = "https://idp.demo.canbao.local"
AUDIENCE: Final = "canbao-mobile"  # the gateway's default GATEWAY_MOBILE_ID_TOKEN_AUDIENCE
KEY_FILE: Final = "mobile-idp-key.pem"
LIFETIME: Final = timedelta(minutes=5)


def private_key(state_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The provider's key (P-256), made and kept (mode 600) in `state_dir` on first use."""
    path = state_dir / KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    return loaded


def gateway_environment(state_dir: Path) -> dict[str, str]:
    """What the gateway is told of the provider."""
    public = (
        private_key(state_dir)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return {
        "GATEWAY_MOBILE_ID_TOKEN_ISSUER": ISSUER,
        "GATEWAY_MOBILE_ID_TOKEN_AUDIENCE": AUDIENCE,
        "GATEWAY_MOBILE_ID_TOKEN_PUBLIC_KEY": public.decode(),
    }


def id_token(state_dir: Path, id_number: str, *, now: datetime | None = None) -> str:
    """An ID token for `id_number`, as the provider signs one after its real-name check."""
    now = now or datetime.now(UTC)
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": id_number,
        "iat": now,
        "exp": now + LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, private_key(state_dir), algorithm="ES256")
