"""The gateway's settings: the platform's, plus the keys of staff tokens and of the audit index.

In development and test (the local stack and the tests set `CANBAO_ENV` so) a fixed development key
is used when none is configured, so they need no secrets; production, also the default when
`CANBAO_ENV` is unset, refuses to start without real keys (or with the development ones), like
fastapi/full-stack-fastapi-template's settings.
"""

from __future__ import annotations

import base64
import ipaddress
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from canbao_platform.service_tokens import DEVELOPMENT_PRIVATE_KEY, private_key
from canbao_platform.settings import LOCAL_POSTGRES, DataKeySettings, ServiceSettings

DEVELOPMENT_JWT_KEY: Final = "canbao-development-jwt-signing-key-not-for-production"
DEVELOPMENT_AUDIT_KEY: Final = "canbao-development-audit-index-key-not-for-production"
# HS256 with a key shorter than its 256-bit output is weak (RFC 7518 §3.2); deploy/ generates
# 48 random bytes in base64 (64 characters).
MINIMUM_KEY_LENGTH: Final = 32
# Public, in the repository: only good for data that is not real.
DEV_DATA_KEY: Final = base64.b64encode(b"canbao-dev-gateway-key-not-real!").decode()
ASYMMETRIC_ALGORITHMS: Final = frozenset({"ES256", "ES384", "RS256", "PS256", "EdDSA"})


class GatewaySettings(DataKeySettings, ServiceSettings):
    """`GATEWAY_DATA_KEY` (DataKeySettings) seals what the gateway must hold of a partner's
    answers until they are delivered: the DCI callbacks (dci_delivery.py)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")
    development_data_key: ClassVar[str] = DEV_DATA_KEY
    database_url: str = f"{LOCAL_POSTGRES}/gateway"
    # GATEWAY_JWT_SIGNING_KEY: signs the staff access tokens (secret `gateway-jwt` in deploy/).
    jwt_signing_key: SecretStr | None = None
    # GATEWAY_AUDIT_INDEX_KEY: keys the blind hash that stands for an ID number in the audit log
    # (never the clear number). Separate from the token key so that rotating that one does not
    # make the audit log unsearchable by number.
    audit_index_key: SecretStr | None = None
    # GATEWAY_SERVICE_TOKEN_PRIVATE_KEY: the Ed25519 private key (PEM) that signs each call to an
    # internal API on behalf of the staff member served; the services hold its public key
    # (CANBAO_SERVICE_TOKEN_PUBLIC_KEY, canbao_platform.service_tokens).
    service_token_private_key: SecretStr | None = None
    # Short-lived (our convention); a disabled account's tokens stop working at once all the
    # same (tokens.py: the account's token version is checked on each request).
    access_token_minutes: int = 15
    # GATEWAY_TRUSTED_PROXIES: the addresses or networks (comma-separated, e.g. `10.0.0.0/8`) of
    # the reverse proxies in front of the gateway. Only a connection from one of them may name
    # the client in X-Forwarded-For; anyone else could name any address and so escape the
    # login throttle per address. None by default: the peer of the connection is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # GATEWAY_LOGIN_HASHING_MEMORY_MIB: the memory logins may use for password hashing at once.
    # Each Argon2id check takes the hasher's memory cost (64 MiB), so this divided by that is
    # how many checks run at a time (accounts.py); the pod's limit is 512 MiB.
    login_hashing_memory_mib: int = Field(192, ge=64)
    # GATEWAY_MAX_BODY_BYTES: the largest request body any route accepts, unless body_limit.py
    # allows that route more; larger ones are refused (413) before authentication.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    # GATEWAY_SURVEY_URL (or SURVEY_URL): where the survey service's internal API answers; the
    # local stack serves survey on port 8003.
    survey_url: str = Field(
        "http://127.0.0.1:8003",
        validation_alias=AliasChoices("survey_url", "GATEWAY_SURVEY_URL", "SURVEY_URL"),
    )

    # GATEWAY_IDENTITY_URL and GATEWAY_MATCHING_URL: the internal APIs the popup and the
    # persons endpoint read (the local stack serves identity on 8001, matching on 8002).
    identity_url: str = Field(
        "http://127.0.0.1:8001",
        validation_alias=AliasChoices("identity_url", "GATEWAY_IDENTITY_URL", "IDENTITY_URL"),
    )
    matching_url: str = Field(
        "http://127.0.0.1:8002",
        validation_alias=AliasChoices("matching_url", "GATEWAY_MATCHING_URL", "MATCHING_URL"),
    )
    # GATEWAY_REPORTING_URL: the reports' internal API (the local stack serves reporting on 8004).
    reporting_url: str = Field(
        "http://127.0.0.1:8004",
        validation_alias=AliasChoices("reporting_url", "GATEWAY_REPORTING_URL", "REPORTING_URL"),
    )

    # Self-service (api.md "Self-service"; self_service.py). A citizen's session lasts this long
    # at most (api.md: `expires_in` 600), and a kiosk's ends sooner when nobody touches it: the
    # next person at the kiosk must not find the last one's record open.
    self_session_minutes: int = Field(10, ge=1, le=60)
    kiosk_idle_seconds: int = Field(120, ge=15)
    # A kiosk's own client-credentials token (clients.py).
    client_token_minutes: int = Field(60, ge=1)
    # The mobile app's identity provider: the issuer (`iss`) of its ID tokens, the audience
    # (`aud`) they are issued for, and its public signing key (PEM: EC P-256 for ES256, RSA for
    # RS256, Ed25519 for EdDSA). No issuer: the mobile channel is closed (503). The local stack
    # creates a key pair and sets these (canbao_stack; `canbao mobile-token` mints a token).
    mobile_id_token_issuer: str | None = None
    mobile_id_token_audience: str = "canbao-mobile"
    mobile_id_token_public_key: str | None = None
    mobile_id_token_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["ES256"]
    )
    # Where citizens, banks and employers reach the gateway: the certificate's QR code and
    # verification address (GATEWAY_PUBLIC_URL).
    public_url: str = "http://127.0.0.1:8000"
    # The TrueType font (or collection, subfont 0) the certificate embeds (certificate.py):
    # Debian's fonts-wqy-zenhei by default (GATEWAY_CJK_FONT).
    cjk_font: str = "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc"
    # The DCI Social Registry API (dci.py): the registry's `sender_id` in its answers, and the
    # Ed25519 key (PEM or base64 raw) that signs them (GATEWAY_DCI_SIGNING_KEY; `kidId` names
    # GATEWAY_DCI_KEY_ID). No key in production: the DCI routes answer 503 dci-unavailable.
    dci_sender_id: str = "canbao.registry"
    dci_signing_key: SecretStr | None = None
    dci_key_id: str = "1"
    # GATEWAY_DCI_NOTIFICATIONS: consume registry.statuses to notify DCI subscribers (the
    # gateway's one Kafka consumer, group `gateway.dci`). The local stack's one gateway does;
    # in deploy/ the Deployment `gateway-notify` does and `gateway` (HTTP) does not, so that each
    # scales on its own load and only the first holds a Kafka login.
    dci_notifications: bool = True
    # How often an exchange with the national registry is reconciled (dci_notify.py), in hours
    # (GATEWAY_DCI_EXCHANGE_INTERVAL_HOURS); the first pass, the full delivery, starts at once.
    dci_exchange_interval_hours: float = Field(default=24.0, gt=0)
    # GATEWAY_PARTNER_MTLS: partner routes answer only requests whose client certificate the
    # ingress verified (api.md "Who calls": mTLS in production) and whose subject's CN is the
    # client_id of the token: the ingress's `ssl-client-verify` and `ssl-client-subject-dn`
    # headers, believed only from GATEWAY_TRUSTED_PROXIES (partner_routes.py). The production
    # overlay turns it on; a token copied off a partner's machine is then useless without its
    # certificate's key.
    partner_mtls: bool = False

    @property
    def talks_to_kafka(self) -> bool:
        return self.dci_notifications

    @field_validator("mobile_id_token_algorithms", mode="before")
    @classmethod
    def _algorithms(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        # Asymmetric only: with HS256 the gateway would hold a key able to mint ID tokens.
        for item in value:
            if item not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(f"not an asymmetric JWS algorithm: {item!r}")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        for item in value:
            # An address or a network, never a wildcard: `*` would trust every client.
            ipaddress.ip_network(item, strict=False)
        return value

    @model_validator(mode="after")
    def _keys_for_the_environment(self) -> GatewaySettings:
        if self.environment == "production":
            for name, key, placeholder in (
                ("GATEWAY_JWT_SIGNING_KEY", self.jwt_signing_key, DEVELOPMENT_JWT_KEY),
                ("GATEWAY_AUDIT_INDEX_KEY", self.audit_index_key, DEVELOPMENT_AUDIT_KEY),
            ):
                if key is None or key.get_secret_value() == placeholder:
                    raise ValueError(f"{name} must be set in production")
                if len(key.get_secret_value()) < MINIMUM_KEY_LENGTH:
                    raise ValueError(f"{name} must be at least {MINIMUM_KEY_LENGTH} characters")
            signing = self.service_token_private_key
            if signing is None or signing.get_secret_value() == DEVELOPMENT_PRIVATE_KEY:
                raise ValueError("GATEWAY_SERVICE_TOKEN_PRIVATE_KEY must be set in production")
            dci = self.dci_signing_key
            if dci is not None and dci.get_secret_value() == DEVELOPMENT_PRIVATE_KEY:
                raise ValueError("GATEWAY_DCI_SIGNING_KEY cannot be the development key")
        if self.service_token_private_key is None:
            self.service_token_private_key = SecretStr(DEVELOPMENT_PRIVATE_KEY)
        if self.dci_signing_key is not None:
            private_key(self.dci_signing_key.get_secret_value())  # readable, or refuse
        elif self.environment != "production":
            self.dci_signing_key = SecretStr(DEVELOPMENT_PRIVATE_KEY)
        private_key(self.service_token_private_key.get_secret_value())  # readable, or refuse
        if self.jwt_signing_key is None:
            self.jwt_signing_key = SecretStr(DEVELOPMENT_JWT_KEY)
        if self.audit_index_key is None:
            self.audit_index_key = SecretStr(DEVELOPMENT_AUDIT_KEY)
        return self

    @property
    def access_token_lifetime(self) -> timedelta:
        return timedelta(minutes=self.access_token_minutes)

    @property
    def self_session_lifetime(self) -> timedelta:
        return timedelta(minutes=self.self_session_minutes)

    @property
    def kiosk_idle(self) -> timedelta:
        return timedelta(seconds=self.kiosk_idle_seconds)

    @property
    def client_token_lifetime(self) -> timedelta:
        return timedelta(minutes=self.client_token_minutes)

    def dci_key(self) -> Ed25519PrivateKey | None:
        return (
            None
            if self.dci_signing_key is None
            else private_key(self.dci_signing_key.get_secret_value())
        )

    def jwt_key(self) -> str:
        assert self.jwt_signing_key is not None  # set by the validator
        return self.jwt_signing_key.get_secret_value()

    def service_token_signing_key(self) -> Ed25519PrivateKey:
        assert self.service_token_private_key is not None  # set by the validator
        return private_key(self.service_token_private_key.get_secret_value())

    def audit_key(self) -> bytes:
        assert self.audit_index_key is not None  # set by the validator
        return self.audit_index_key.get_secret_value().encode()
