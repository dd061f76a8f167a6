"""The local stack's stand-in for the national registry (全国参保登记库), the other end of the
province's exchange (44号 Art.10; the gateway's dci_notify.py "Exchanges"), so that a delivery
can be followed end to end.

It is what the ministry's system would be to the province: a DCI partner client (`demo-national`,
department `national`) that subscribes, once, to the people it is owed — other provinces' people
insured here and the province's household-registered people not insured in it — and then takes
the registry's signed notifications (`registry/notify`: verified, acknowledged), keeping per
person the newest record (by `last_updated`) and forgetting those the registry says left the
subscription. It answers `on-search` callbacks too (the client may search). What it holds is at
GET /national/holdings; it is kept in the state directory, so a restart holds what it held.

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

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from canbao_gateway import dci
from canbao_gateway.clients import Field, Permission
from canbao_platform.service_tokens import DEVELOPMENT_PRIVATE_KEY, private_key

log = logging.getLogger(__name__)

CLIENT_ID: Final = "demo-national"
SECRET: Final = "demo"
PERMISSIONS: Final = frozenset({Permission.SUBSCRIBE, Permission.SEARCH})
FIELDS: Final = frozenset({Field.ID_NUMBER, Field.REGION, Field.HOUSEHOLD, Field.REGISTRATION,
                           Field.DECEASED, Field.PENSION, Field.MEDICAL, Field.INJURY,
                           Field.UNEMPLOYMENT, Field.MATERNITY})  # fmt: skip
STATE_FILE: Final = "national-registry.json"
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
        self.port, self.gateway = port, gateway
        self.registry_key = private_key(DEVELOPMENT_PRIVATE_KEY).public_key()
        self.state: dict[str, Any] = {"subscription": None, "people": {}, "notifications": 0,
                                      "answers": {}}  # fmt: skip
        if self.path.exists():
            self.state |= json.loads(self.path.read_text())
        app = Starlette(routes=[
            Route("/dci/{action}", self._receive, methods=["POST"]),
            Route("/national/holdings", self._holdings, methods=["GET"]),
        ])  # fmt: skip
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                lifespan="off")  # fmt: skip
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

    async def subscribe(self) -> str:
        """Subscribe to the people owed, unless done on an earlier run; the subscription code."""
        if self.state["subscription"]:
            return str(self.state["subscription"])
        request = {"reference_id": "owed", "timestamp": _now(), "subscribe_criteria": {
            "version": "1.0.0", "reg_event_type": "UPDATE", "notify_record_type": "Member",
            "filter_type": "expression", "filter": {"type": "ns:org:QueryType:NoSql", "value": {
                "expression": {"collection": "Member", "query": OWED}}}}}  # fmt: skip
        await self.send("subscribe", {"transaction_id": "national-exchange",
                                      "subscribe_request": [request]})  # fmt: skip
        for _ in range(300):
            if self.state["subscription"]:
                return str(self.state["subscription"])
            await asyncio.sleep(0.1)
        raise RuntimeError("the registry never confirmed the subscription (on-subscribe)")

    async def send(self, action: str, message: dict[str, Any]) -> dict[str, Any]:
        """A message to the registry's DCI API as this client; the acknowledgement."""
        async with httpx.AsyncClient(base_url=self.gateway, timeout=30) as client:
            token = await client.post("/api/v1/auth/token", data={
                "grant_type": "client_credentials", "client_id": CLIENT_ID,
                "client_secret": SECRET})  # fmt: skip
            token.raise_for_status()
            header = {"version": "1.0.0", "message_id": f"national-{datetime.now(UTC).timestamp()}",
                      "message_ts": _now(), "action": action, "sender_id": CLIENT_ID,
                      "sender_uri": f"{self.base}/on-{action}", "total_count": 1}  # fmt: skip
            answer = await client.post(
                f"/api/v1/partners/dci/registry/{action}",
                json={"signature": None, "header": header, "message": message},
                headers={"Authorization": f"Bearer {token.json()['access_token']}"},
            )
            answer.raise_for_status()
            acknowledgement: dict[str, Any] = answer.json()["message"]
            return acknowledgement

    async def _receive(self, request: Request) -> JSONResponse:
        body = await request.json()
        try:
            sent_at = datetime.fromisoformat(body["header"]["message_ts"].replace("Z", "+00:00"))
            dci.verify(body.get("signature"), body["header"], body["message"],
                       key=self.registry_key, now=sent_at)  # fmt: skip
        except (KeyError, ValueError, dci.Rejected) as refused:
            log.warning("national registry: refused a message (%s)", refused)
            error = {"code": "err.signature.invalid", "message": str(refused)}
            return JSONResponse({"message": {"ack_status": "ERR", "timestamp": _now(),
                                             "error": error}})  # fmt: skip
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
        return JSONResponse({"message": {"ack_status": "ACK", "timestamp": _now(),
                                         "correlation_id": correlation}})  # fmt: skip

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
