"""The local stack's stand-in for the national registry (全国参保登记库), the other end of the
province's exchange (44号 Art.10; the gateway's dci_notify.py "Exchanges"), so that a delivery
can be followed end to end.

It is what the ministry's system would be to the province: a DCI partner client
(`demo-national`, department `national`, speaking through canbao_stack.dci_client and signing with
a key of its own kept in the state directory) that subscribes, once, to the people it is owed —
other provinces' people insured here and the province's household-registered people not
insured in it — and then takes the registry's signed notifications (`registry/notify`: verified,
acknowledged), keeping per person the newest record (by `last_updated`) and forgetting those
the registry says left the subscription. It answers `on-search` callbacks too (the client may
search). What it holds is at GET /national/holdings; it is kept in the state directory, so a
restart holds what it held.

Only the local stack has it: in production the national registry is the ministry's, registered
with `python -m canbao_gateway.manage add-partner --department national …`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import uvicorn
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from canbao_gateway.clients import Field, Permission
from canbao_platform.service_tokens import DEVELOPMENT_PRIVATE_KEY, private_key
from canbao_stack.dci_client import DciClient, SignatureRefused

log = logging.getLogger(__name__)

CLIENT_ID: Final = "demo-national"
SECRET: Final = "demo"
PERMISSIONS: Final = frozenset({Permission.SUBSCRIBE, Permission.SEARCH})
FIELDS: Final = frozenset(
    {
        Field.ID_NUMBER,
        Field.REGION,
        Field.HOUSEHOLD,
        Field.REGISTRATION,
        Field.DECEASED,
        Field.PENSION,
        Field.MEDICAL,
        Field.INJURY,
        Field.UNEMPLOYMENT,
        Field.MATERNITY,
    }
)
STATE_FILE: Final = "national-registry.json"
KEY_FILE: Final = "national-registry-key.pem"
# The filter of the exchange (canbao_contracts.search, in the standard's expression form).
OWED: Final = {"$and": [
    {"region": {"$eq": "520000"}},
    {"$or": [
        {"$and": [{"household_registered_locally": {"$eq": False}},
                  {"insured_in_province": {"$eq": True}}]},
        {"$and": [{"household_registered_locally": {"$eq": True}},
                  {"insured_in_province": {"$eq": False}}]},
    ]},
]}  # fmt: skip


class NationalRegistry:
    """The receiver (a Starlette app on `port`) and its one subscription."""

    def __init__(self, state_dir: Path, port: int, gateway: str) -> None:
        self.path = state_dir / STATE_FILE
        self.port = port
        # The local gateway signs with the development key (GatewaySettings.dci_signing_key).
        registry_key = private_key(DEVELOPMENT_PRIVATE_KEY).public_key()
        self.client = DciClient(
            gateway,
            CLIENT_ID,
            SECRET,
            signing_key=signing_key(state_dir),
            registry_key=registry_key,
        )
        self.state: dict[str, Any] = {
            "subscription": None,
            "people": {},
            "notifications": 0,
            "answers": {},
        }
        if self.path.exists():
            self.state |= json.loads(self.path.read_text())
        app = Starlette(
            routes=[
                Route("/dci/{action}", self._receive, methods=["POST"]),
                Route("/national/holdings", self._holdings, methods=["GET"]),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self._task: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}/dci"

    async def start(self) -> None:
        self._task = asyncio.create_task(self.server.serve(), name="national-registry")
        for _ in range(500):  # uvicorn says it has started by a flag only
            if self.server.started:
                return
            await asyncio.sleep(0.02)
        raise RuntimeError(f"the national registry's port {self.port} did not open")

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.__aexit__(None, None, None)

    async def subscribe(self) -> str:
        """Subscribe to the people owed, unless done on an earlier run; the subscription code."""
        if self.state["subscription"]:
            return str(self.state["subscription"])
        criteria = {
            "version": "1.0.0",
            "reg_event_type": "UPDATE",
            "notify_record_type": "Member",
            "filter_type": "expression",
            "filter": {
                "type": "ns:org:QueryType:NoSql",
                "value": {"expression": {"collection": "Member", "query": OWED}},
            },
        }
        await self.client.subscribe(
            [criteria], transaction_id="national-exchange", sender_uri=f"{self.base}/on-subscribe"
        )
        for _ in range(300):
            if self.state["subscription"]:
                return str(self.state["subscription"])
            await asyncio.sleep(0.1)
        raise RuntimeError("the registry never confirmed the subscription (on-subscribe)")

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.json()
        try:
            self.client.verify(body)
        except (KeyError, ValueError, SignatureRefused) as refused:
            log.warning("national registry: refused a message (%s)", refused)
            error = {"code": "err.signature.invalid", "message": str(refused)}
            return JSONResponse(
                {"message": {"ack_status": "ERR", "timestamp": _now(), "error": error}}
            )
        action, message = request.path_params["action"], body["message"]
        if action == "on-subscribe":
            for response in message.get("subscribe_response", []):
                if response.get("status") == "succ":
                    self.state["subscription"] = response["subscriptions"][0]["code"]
        elif action == "notify":
            self.state["notifications"] += 1
            for event in message.get("notify_event", []):
                self._hold(event["data"]["reg_records"])  # one RegistryRecord an event
        elif action == "on-search":
            self.state["answers"][message.get("transaction_id", "")] = message
        self.path.write_text(json.dumps(self.state, ensure_ascii=False))
        correlation = message.get("correlation_id")
        return JSONResponse(
            {"message": {"ack_status": "ACK", "timestamp": _now(), "correlation_id": correlation}}
        )

    def _hold(self, record: dict[str, Any]) -> None:
        """The newest record of each person (a record delivered late changes nothing); those it
        says left the subscription are no longer held."""
        if not record.get("member_identifier"):
            return  # the registry sends the exchange only people with a number
        number = record["member_identifier"][0]["identifier_value"]
        attributes = {a["name"]: a["value"] for a in record.get("additional_attributes", [])}
        known = self.state["people"].get(number)
        if known is not None and _instant(known["last_updated"]) > _instant(record["last_updated"]):
            return
        self.state["people"][number] = attributes | {"last_updated": record["last_updated"]}

    def holdings(self) -> dict[str, Any]:
        people = self.state["people"]
        return {
            "subscription": self.state["subscription"],
            "notifications": self.state["notifications"],
            "held": {n: a for n, a in people.items() if a.get("in_subscription") is not False},
            "left": sorted(n for n, a in people.items() if a.get("in_subscription") is False),
            "answers": self.state["answers"],
        }

    async def _holdings(self, request: Request) -> JSONResponse:
        return JSONResponse(self.holdings())


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def signing_key(state_dir: Path) -> Ed25519PrivateKey:
    """The stand-in's own Ed25519 key, made and kept (mode 600) in `state_dir` on first use; the
    stack registers its public half with the client (`manage add-partner --signing-key`)."""
    path = state_dir / KEY_FILE
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        path.touch(mode=0o600)
        path.write_bytes(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    return loaded


def public_key_of(state_dir: Path) -> str:
    """The stand-in's public key as the gateway registers it (PEM)."""
    public = signing_key(state_dir).public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()
