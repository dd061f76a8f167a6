"""A partner department's client of the canbao registry's DCI API (the SPDCI Social Registry API
v1.0.0 and the registry core API's subscriptions; api.md "Partner departments"), to copy into a
department's own system: it needs nothing but httpx and cryptography.

    import asyncio, base64
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey, Ed25519PublicKey)
    from dci_client import DciClient

    async def main() -> None:
        ours = Ed25519PrivateKey.from_private_bytes(base64.b64decode(OUR_PRIVATE_KEY))
        theirs = Ed25519PublicKey.from_public_bytes(base64.b64decode(REGISTRY_PUBLIC_KEY))
        async with DciClient("https://registry.example", "civil-affairs", CLIENT_SECRET,
                             signing_key=ours, registry_key=theirs) as registry:
            answer = await registry.search_by_ssn(["520102198001010117"])
            for item in answer["message"]["search_response"]:
                print(item["status"], item.get("data", {}).get("reg_records"))
            ack = await registry.subscribe_to_ssn("520102198001010117")  # on-subscribe follows
            ...

    asyncio.run(main())

Every message is signed with the department's Ed25519 key (the one whose public half the
registry registered for it, `manage add-partner --signing-key`), and every answer and callback
is checked against the registry's public key (`registry.verify(body)` for what arrives at the
department's own callback address: on-search, txn-on-status, on-subscribe, on-unsubscribe,
notify). The signature is the standard's MsgSignature, Beckn-style: the signing string is

    (created): <unix time>
    (expires): <unix time>
    digest: BLAKE-512=<base64 of BLAKE2b-512 of the canonical JSON of {"header", "message"}>

with canonical JSON = keys sorted, no whitespace, UTF-8 (non-ASCII characters as they are),
signed with Ed25519, and sent as the envelope's `signature`:

    Signature: namespace="spdci", kidId="<sender_id>|<key id>|ed25519", algorithm="ed25519",
    created="…", expires="…", headers="(created) (expires) digest", signature="<base64>"
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

VERSION: Final = "1.0.0"
REGISTRY: Final = "/api/v1/partners/dci/registry"
TOKEN: Final = "/api/v1/auth/token"
LIFETIME: Final = timedelta(minutes=10)  # how long a signature holds
CLOCK_SKEW: Final = timedelta(minutes=5)


class SignatureRefused(Exception):
    """An answer or a callback that the registry's key did not sign (or not now)."""


def canonical(header: Any, message: Any) -> bytes:
    body = {"header": header, "message": message}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signing_string(created: int, expires: int, header: Any, message: Any) -> bytes:
    digest = base64.b64encode(hashlib.blake2b(canonical(header, message)).digest()).decode()
    return f"(created): {created}\n(expires): {expires}\ndigest: BLAKE-512={digest}".encode()


def sign(
    header: Any, message: Any, key: Ed25519PrivateKey, sender_id: str, key_id: str, now: datetime
) -> str:
    """The MsgSignature of `header` and `message`."""
    created, expires = int(now.timestamp()), int((now + LIFETIME).timestamp())
    signed = key.sign(_signing_string(created, expires, header, message))
    return (
        f'Signature: namespace="spdci", kidId="{sender_id}|{key_id}|ed25519", '
        f'algorithm="ed25519", created="{created}", expires="{expires}", '
        f'headers="(created) (expires) digest", signature="{base64.b64encode(signed).decode()}"'
    )


_PARAMETER: Final = re.compile(r'(\w+)="([^"]*)"')


def verify(body: dict[str, Any], key: Ed25519PublicKey, now: datetime | None = None) -> None:
    """Raise SignatureRefused unless `body` ({signature, header, message}) is signed by `key`
    and the signature holds `now` (by default: the message's own message_ts)."""
    signature = body.get("signature")
    if not isinstance(signature, str):
        raise SignatureRefused("the message is not signed")
    parameters = dict(_PARAMETER.findall(signature))
    try:
        created, expires = int(parameters["created"]), int(parameters["expires"])
        signed = base64.b64decode(parameters["signature"], validate=True)
    except (KeyError, ValueError):
        raise SignatureRefused("the signature cannot be read") from None
    if parameters.get("algorithm") != "ed25519":
        raise SignatureRefused("not an ed25519 signature")
    if now is None:
        now = datetime.fromisoformat(str(body["header"]["message_ts"]).replace("Z", "+00:00"))
    if not created - CLOCK_SKEW.total_seconds() <= now.timestamp() <= expires:
        raise SignatureRefused("the signature does not hold now")
    try:
        key.verify(signed, _signing_string(created, expires, body["header"], body["message"]))
    except InvalidSignature:
        raise SignatureRefused("the signature does not match") from None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def by_ssn(number: str) -> dict[str, Any]:
    """Search criteria: the person with this social security (citizen ID) number."""
    return {"query_type": "idtype-value", "query": {"type": "SSN", "value": number}}


class DciClient:
    """The registry at `base_url`, as the partner client `client_id` sees it. `http` may be a
    client of one's own (proxies, mTLS certificates: api.md "Partner departments"), `clock` the
    time it signs at."""

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        signing_key: Ed25519PrivateKey,
        registry_key: Ed25519PublicKey,
        key_id: str = "1",
        registry_id: str = "canbao.registry",
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client_id, self.secret = client_id, client_secret
        self.signing_key, self.registry_key = signing_key, registry_key
        self.key_id, self.registry_id = key_id, registry_id
        self.http = http or httpx.AsyncClient(base_url=base_url, timeout=30.0)
        self._own_http = http is None
        self._token: str | None = None
        self.clock = clock

    async def __aenter__(self) -> DciClient:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._own_http:
            await self.http.aclose()

    async def token(self) -> str:
        """A bearer token by client credentials (renewed when the registry refuses it)."""
        answer = await self.http.post(
            TOKEN,
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.secret,
            },
        )
        answer.raise_for_status()
        self._token = str(answer.json()["access_token"])
        return self._token

    def envelope(
        self,
        action: str,
        message: dict[str, Any],
        total_count: int,
        *,
        sender_uri: str | None = None,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        """The signed message {signature, header, message} (MsgHeader_V1.0.0)."""
        now = now or self.clock()
        header: dict[str, Any] = {
            "version": VERSION,
            "message_id": str(uuid.uuid4()),
            "message_ts": _iso(now),
            "action": action,
            "sender_id": self.client_id,
            "receiver_id": self.registry_id,
            "total_count": total_count,
            "is_msg_encrypted": False,
        }
        if sender_uri is not None:
            header["sender_uri"] = sender_uri
        signature = sign(header, message, self.signing_key, self.client_id, self.key_id, now)
        return {"signature": signature, "header": header, "message": message}

    async def send(self, path: str, envelope: dict[str, Any]) -> dict[str, Any]:
        """POST `envelope` to the registry's `path` (e.g. "sync/search"); its answer, with the
        registry's signature checked where it signs (an envelope; an Ack is not signed)."""
        for attempt in range(2):
            token = self._token or await self.token()
            answer = await self.http.post(
                f"{REGISTRY}/{path}", json=envelope, headers={"Authorization": f"Bearer {token}"}
            )
            if answer.status_code == 401 and attempt == 0:
                self._token = None  # expired: once more with a new token
                continue
            answer.raise_for_status()
            body: dict[str, Any] = answer.json()
            if "header" in body:
                self.verify(body)
            return body
        raise AssertionError("unreachable")

    def verify(self, body: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """`body` if the registry signed it (an answer, or a callback received); else raise
        SignatureRefused."""
        verify(body, self.registry_key, now)
        return body

    def _search_message(
        self, criteria: list[dict[str, Any]], transaction_id: str | None
    ) -> dict[str, Any]:
        now = _iso(self.clock())
        return {
            "transaction_id": transaction_id or str(uuid.uuid4()),
            "search_request": [
                {"reference_id": str(uuid.uuid4()), "timestamp": now, "search_criteria": c}
                for c in criteria
            ],
        }

    async def search(
        self, criteria: list[dict[str, Any]], *, transaction_id: str | None = None
    ) -> dict[str, Any]:
        """Search at once (registry/sync/search): the signed on-search answer."""
        message = self._search_message(criteria, transaction_id)
        return await self.send("sync/search", self.envelope("search", message, len(criteria)))

    async def search_by_ssn(
        self, numbers: list[str], *, transaction_id: str | None = None
    ) -> dict[str, Any]:
        """The people with these social security numbers (one search request each)."""
        return await self.search([by_ssn(n) for n in numbers], transaction_id=transaction_id)

    async def search_later(
        self,
        criteria: list[dict[str, Any]],
        *,
        transaction_id: str | None = None,
        sender_uri: str | None = None,
    ) -> dict[str, Any]:
        """Search asynchronously (registry/search): the Ack now; the on-search answer goes to
        the department's registered callback address (`sender_uri`: one under it)."""
        message = self._search_message(criteria, transaction_id)
        envelope = self.envelope("search", message, len(criteria), sender_uri=sender_uri)
        return await self.send("search", envelope)

    async def subscribe_to_ssn(
        self, number: str, *, transaction_id: str | None = None, sender_uri: str | None = None
    ) -> dict[str, Any]:
        """Subscribe to changes of one person (registry/subscribe): the Ack now; on-subscribe
        with the subscription's code, then a notify at each change, at the registered
        address."""
        criteria = {
            "version": VERSION,
            "reg_event_type": "UPDATE",
            "filter_type": "idtype-value",
            "filter": {"type": "SSN", "value": number},
            "notify_record_type": "Member",
        }
        return await self.subscribe(
            [criteria], transaction_id=transaction_id, sender_uri=sender_uri
        )

    async def subscribe(
        self,
        criteria: list[dict[str, Any]],
        *,
        transaction_id: str | None = None,
        sender_uri: str | None = None,
    ) -> dict[str, Any]:
        """Subscribe with these subscribe_criteria (registry core SubscribeRequest)."""
        now = _iso(self.clock())
        message = {
            "transaction_id": transaction_id or str(uuid.uuid4()),
            "subscribe_request": [
                {"reference_id": str(uuid.uuid4()), "timestamp": now, "subscribe_criteria": c}
                for c in criteria
            ],
        }
        envelope = self.envelope("subscribe", message, len(criteria), sender_uri=sender_uri)
        return await self.send("subscribe", envelope)

    async def unsubscribe(
        self, codes: list[str], *, transaction_id: str | None = None
    ) -> dict[str, Any]:
        """End these subscriptions (registry/unsubscribe): the Ack now; on-unsubscribe later."""
        message = {
            "transaction_id": transaction_id or str(uuid.uuid4()),
            "timestamp": _iso(self.clock()),
            "subscription_codes": codes,
        }
        return await self.send("unsubscribe", self.envelope("unsubscribe", message, len(codes)))

    async def txn_status(
        self, transaction_id: str, *, txn_type: str = "search", sync: bool = True
    ) -> dict[str, Any]:
        """What became of an earlier transaction's requests: the signed txn-on-status answer
        (sync), or the Ack with txn-on-status to the registered address later."""
        message = {
            "transaction_id": transaction_id,
            "txnstatus_request": {
                "reference_id": str(uuid.uuid4()),
                "txn_type": txn_type,
                "attribute_type": "transaction_id",
                "attribute_value": transaction_id,
            },
        }
        path = "sync/txn/status" if sync else "txn/status"
        return await self.send(path, self.envelope("txn-status", message, 1))
