"""Every DCI message of the tests held against the standard's own OpenAPI documents (SPDCI
api-standards, release/yaml, copied here unchanged with their licence: README.md beside this
file): `social_api_v1.0.0.yaml` for search and transaction status, the registry core API
`registry_core_api_v1.0.0.yaml` for subscribe, unsubscribe and notify (api.md "Partner
departments"). openapi-core validates each request as sent to the registry, each answer the
registry gives at once, and each callback as the partner's system receives it.

`watch(client)` validates everything a test client sends to the DCI routes and receives from
them; `callback(path, body)` is for the partner's server. A test that sends a message wrong on
purpose (to see it refused) says so with `deliberately_invalid()`: its answer is still
validated.

Where the documents contradict themselves (read in `_document`):
* `social_api_v1.0.0.yaml` has no `info.version` (the line is run into `info.description`), and
  the registry core document's `NotifyEventRequest` and others are not valid OpenAPI 3.0
  schemas for openapi-spec-validator: the documents are not validated as OpenAPI documents, only
  used to validate messages.
* Both documents reference schemas by JSON pointers that run through a `$ref` (e.g.
  `#/paths/~1registry~1search/post/requestBody/…/message/oneOf/0/properties/search_request/…`,
  where `oneOf/0` is `{$ref: SearchRequest}`): a JSON pointer cannot pass a `$ref`, so these
  point nowhere. They are read as the bundler meant them, through the `$ref`, so that the
  predicate's `attribute_value` and `expression2` are validated too.
* Their `oneOf`s overlap: an integer is both `integer` and `number` (`attribute_value`), a
  transaction_id and a correlation_id are the same string schema
  (`TxnStatusRequest.attribute_value`), an expression query `{type, value: {…}}` is also an
  idtype-value one: no such value could ever be valid "under exactly one". Each `oneOf` is read
  as the `anyOf` it means.
* The registry core document's `NotifyEventRequest…response_entity` has `type: enum`, which is
  no type: its `enum` is kept. Its `UnSubscribeRequest` requires `sunscription_codes` but
  declares `subscription_codes`: the declared name is required. (Its `SubscriptionInfo`
  requires `subscription_code` and `subscribe_criteria` but declares `code` and the criteria's
  fields: that is validated as written, and the registry sends both.)
* `TxnStatusResponse.txnstatus_response.txn_status` refers to the `example` of its own
  `txnstatus_response` as a schema; it happens to be one (the search status), and is used so.
* The callbacks (`/registry/on-search`, `/registry/notify`, …) require the `Authorization`
  bearer token of the receiving system's token API; the registry authenticates its callbacks
  by its signature (MsgSignature) and has no token of a partner's: only their bodies are
  validated.

Not the documents' fault: the gateway answers its errors as RFC 9457 `application/problem+json`
(api.md), a JSON media type the documents do not list (they say `application/json`); such a
body is validated as the `application/json` it is, against the standard's HttpErrorResponse."""

from __future__ import annotations

import contextlib
import contextvars
import copy
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any, Final

import httpx
import yaml
from openapi_core import OpenAPI
from openapi_core.configurations import Config
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.request.validators import (
    V30RequestBodyValidator,
    V30RequestValidator,
)
from openapi_core.validation.response.validators import V30ResponseValidator

HERE: Final = Path(__file__).parent
SOCIAL: Final = "social_api_v1.0.0.yaml"
CORE: Final = "registry_core_api_v1.0.0.yaml"
PREFIX: Final = "/api/v1/partners/dci/registry/"
SERVER: Final = "https://sandbox.spdci.org"  # the documents' `servers`
BASE: Final = "/namespace/v1.0.0/registry/"
# The standard's path of each of the registry's routes, and which document defines it.
DOCUMENTS: Final = {
    "search": SOCIAL,
    "sync/search": SOCIAL,
    "txn/status": SOCIAL,
    "sync/txn/status": SOCIAL,
    "on-search": SOCIAL,
    "txn/on-status": SOCIAL,
    "subscribe": CORE,
    "unsubscribe": CORE,
    "on-subscribe": CORE,
    "on-unsubscribe": CORE,
    "notify": CORE,
}
# The callback each answer's header action is posted as (MsgCallbackHeader_V1.0.0.action).
CALLBACKS: Final = {
    "on-search": "on-search",
    "txn-on-status": "txn/on-status",
    "on-subscribe": "on-subscribe",
    "on-unsubscribe": "on-unsubscribe",
    "notify": "notify",
}

_invalid_on_purpose: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dci_invalid_on_purpose", default=False
)


class NotConforming(AssertionError):
    """A DCI message the standard's document does not allow."""


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def _through_refs(document: dict[str, Any], pointer: str) -> str:
    """`pointer` as a pointer that resolves: each `$ref` it runs through is followed."""
    path: list[str] = []
    node: Any = document
    for part in (_unescape(p) for p in pointer.removeprefix("#/").split("/")):
        while isinstance(node, dict) and "$ref" in node and part not in node:
            target = _through_refs(document, node["$ref"])
            path = [_unescape(p) for p in target.removeprefix("#/").split("/")]
            node = document
            for step in path:
                node = node[int(step)] if isinstance(node, list) else node[step]
        node = node[int(part)] if isinstance(node, list) else node[part]
        path.append(part)
    return "#/" + "/".join(_escape(p) for p in path)


def _repair(document: dict[str, Any]) -> dict[str, Any]:
    """The document as its authors meant it (the module's docstring says where and why)."""
    repaired = copy.deepcopy(document)

    def walk(node: Any, repair: Any) -> None:
        if isinstance(node, dict):
            repair(node)
            for value in node.values():
                walk(value, repair)
        elif isinstance(node, list):
            for value in node:
                walk(value, repair)

    def follow_refs(node: dict[str, Any]) -> None:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            node["$ref"] = _through_refs(repaired, ref)

    def one_of_as_any_of(node: dict[str, Any]) -> None:
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        if isinstance(node.get("$ref"), str):
            node["$ref"] = node["$ref"].replace("/oneOf/", "/anyOf/")
        if node.get("type") == "enum":
            del node["type"]
        if isinstance(node.get("required"), list) and "sunscription_codes" in node["required"]:
            node["required"] = [
                "subscription_codes" if r == "sunscription_codes" else r for r in node["required"]
            ]

    walk(repaired, follow_refs)
    walk(repaired, one_of_as_any_of)
    return repaired


@cache
def _document(name: str) -> OpenAPI:
    document = yaml.safe_load((HERE / name).read_text(encoding="utf-8"))
    return OpenAPI.from_dict(_repair(document), config=Config(spec_validator_cls=None))


def _route(path: str) -> str:
    """The standard's path (`sync/search`, `on-search`, …) of a registry route."""
    route = path.split("?")[0].removeprefix(PREFIX)
    if route not in DOCUMENTS:
        raise NotConforming(f"{path}: no such path in the DCI standard's documents")
    return route


def _request(route: str, body: bytes, authorization: str | None) -> MockRequest:
    headers = {"Authorization": authorization} if authorization else None
    return MockRequest(SERVER, "post", BASE + route, headers=headers, data=body)


def _explain(error: Exception) -> str:
    reasons = [f"{type(error).__name__}: {str(error)[:200]}"]

    def add(schema_error: Any, depth: int) -> None:
        where = "/".join(str(p) for p in schema_error.absolute_path)
        reasons.append(f"{'  ' * depth}at /{where}: {schema_error.message[:200]}")
        for inner in schema_error.context or ():  # why each alternative of an anyOf failed
            add(inner, depth + 1)

    cause: BaseException | None = error
    while cause is not None:
        for schema_error in getattr(cause, "schema_errors", None) or ():
            add(schema_error, 1)
        cause = cause.__cause__
    return "\n".join(reasons)


def _check(validate: Any, what: str) -> None:
    try:
        validate()
    except NotConforming:
        raise
    except Exception as error:
        explained = _explain(error)
        raise NotConforming(f"{what} does not conform to the DCI standard:\n{explained}") from None


def request(path: str, body: Any, authorization: str | None = "Bearer token") -> None:
    """A request to the registry's `path` (its own path under /api/v1/partners/dci/registry/)."""
    route = _route(path)
    document = _document(DOCUMENTS[route])
    raw = json.dumps(body).encode()
    _check(
        lambda: V30RequestValidator(document.spec).validate(_request(route, raw, authorization)),
        f"the request to {route}",
    )


def response(path: str, status: int, body: Any, content_type: str = "application/json") -> None:
    """The registry's answer to a request to `path`, at once (an envelope or an Ack)."""
    route = _route(path)
    document = _document(DOCUMENTS[route])
    raw = json.dumps(body).encode()
    answer = MockResponse(raw, status_code=status, content_type=content_type)
    _check(
        lambda: V30ResponseValidator(document.spec).validate(
            _request(route, b"{}", "Bearer token"), answer
        ),
        f"the answer ({status}) to {route}",
    )


def callback(path: str, body: Any) -> None:
    """A callback the registry posted to the partner's `path` (the standard's on-search,
    txn/on-status, on-subscribe, on-unsubscribe or notify, by its header's action)."""
    action = body.get("header", {}).get("action") if isinstance(body, dict) else None
    route = CALLBACKS.get(action) if isinstance(action, str) else None
    if route is None:
        raise NotConforming(f"a callback to {path} with action {action!r}")
    if not path.rstrip("/").endswith("/" + route):
        raise NotConforming(f"the {action} callback was posted to {path}, not …/{route}")
    raw = json.dumps(body).encode()
    document = _document(DOCUMENTS[route])
    _check(
        lambda: V30RequestBodyValidator(document.spec).validate(_request(route, raw, None)),
        f"the {route} callback",
    )


@contextlib.contextmanager
def deliberately_invalid() -> Iterator[None]:
    """The requests sent within are wrong on purpose; their answers are still validated."""
    token = _invalid_on_purpose.set(True)
    try:
        yield
    finally:
        _invalid_on_purpose.reset(token)


async def _on_request(sent: httpx.Request) -> None:
    if sent.url.path.startswith(PREFIX) and not _invalid_on_purpose.get():
        request(sent.url.path, json.loads(sent.content), sent.headers.get("Authorization"))


async def _on_response(received: httpx.Response) -> None:
    path = received.request.url.path
    if not path.startswith(PREFIX) or received.status_code in (401, 422, 503):
        return  # before the envelope is read: the gateway's own problems (dci_routes.py)
    await received.aread()
    content_type = received.headers.get("content-type", "").split(";")[0]
    if content_type == "application/problem+json":  # the module's docstring says why
        content_type = "application/json"
    response(path, received.status_code, received.json(), content_type)


def watch(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """`client`, validating each request it sends to the DCI routes and each answer."""
    client.event_hooks["request"].append(_on_request)
    client.event_hooks["response"].append(_on_response)
    return client
