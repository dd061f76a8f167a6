"""The DCI Social Registry API v1.0.0 (SPDCI api-standards, `social_api_v1.0.0.yaml`, and the
registry core API it builds on) as the registry speaks it: the message envelope
{signature, header, message}, its signature, the three query types translated into matching's
search filter, and a person as a DCI registry record.

What the standard leaves to the implementer, decided here (README "Partner departments"):
* Identifiers: `SSN` (社会保障号码, which is the citizen ID number, GB 11643) — also accepted as
  `NationalID`.
* Query attributes (predicate and expression): `region` (GB/T 2260; a city covers its counties),
  `gender` (`male` / `female`, or AAC004's 1 / 2), `age` and `birth_year` (by year of birth:
  the registry publishes no day of birth), `registration` (confirmed, needs_survey, verified),
  `deceased`, one per insurance (`pension`, `medical`, `injury`, `unemployment`, `maternity`:
  the status codes of domain.md §4), `household_registered_locally` and `insured_in_province`
  (canbao_contracts.search). A client may filter only on what it may see, and a search names
  the division it covers.
* A predicate is a list of `{seq_num, expression1, condition, expression2}`: each item is
  `expression1` alone, or `and` / `or` / `not` (and not) `expression2`; the items all hold.
  An expression is `{"expression": {"collection": "Member", "query": {…}}}` in the MongoDB-like
  form of the standard's example: `$and` / `$or` / `$not` over `{attribute: {$op: value}}` with
  `$eq $in $gt $lt $gte $lte` (`$ge $le` too).
* The signature (MsgSignature) is the standard's Beckn-style header: the signing string is
  `(created): <created>\\n(expires): <expires>\\ndigest: BLAKE-512=<base64 BLAKE2b-512 of the
  canonical JSON of {"header", "message"}>` (keys sorted, no whitespace, UTF-8), signed with
  Ed25519. A client that registered a public key must sign every request; the registry signs
  every answer with its own key (`GATEWAY_DCI_SIGNING_KEY`)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from canbao_contracts.id_numbers import mask, normalise, validate
from canbao_gateway.clients import Client, Field
from canbao_gateway.settings import GatewaySettings
from canbao_platform.problems import Problem

VERSION: Final = "1.0.0"
IDENTIFIER_TYPES: Final = ("SSN", "NationalID")
SIGNATURE_LIFETIME: Final = timedelta(minutes=10)
CLOCK_SKEW: Final = timedelta(minutes=5)
MAX_PAGE_SIZE: Final = 1000
MAX_REQUESTS: Final = 100  # search_request items in one message (rjct.total_count.limit_exceeded)

INSURANCE_FIELDS: Final = (
    Field.PENSION,
    Field.MEDICAL,
    Field.INJURY,
    Field.UNEMPLOYMENT,
    Field.MATERNITY,
)
# Query attribute → the client fields it reveals (a client filters only on what it may see).
ATTRIBUTE_FIELDS: Final[dict[str, frozenset[Field]]] = {
    "region": frozenset({Field.REGION}),
    "gender": frozenset({Field.GENDER}),
    "age": frozenset({Field.BIRTH_YEAR}),
    "birth_year": frozenset({Field.BIRTH_YEAR}),
    "registration": frozenset({Field.REGISTRATION}),
    "deceased": frozenset({Field.DECEASED}),
    **{f.value: frozenset({f}) for f in INSURANCE_FIELDS},
    "household_registered_locally": frozenset({Field.HOUSEHOLD}),
    "insured_in_province": frozenset(INSURANCE_FIELDS),  # a summary of all five statuses
}
_BOOLEAN_ATTRIBUTES: Final = ("deceased", "household_registered_locally", "insured_in_province")
_OPERATORS: Final = {
    "eq": "eq",
    "in": "in",
    "gt": "gt",
    "lt": "lt",
    "ge": "ge",
    "le": "le",
    "$eq": "eq",
    "$in": "in",
    "$gt": "gt",
    "$lt": "lt",
    "$gte": "ge",
    "$ge": "ge",
    "$lte": "le",
    "$le": "le",
}
_GENDERS: Final = {"male": "1", "female": "2", "1": "1", "2": "2"}
_SEX: Final = {"1": "male", "2": "female"}


class Rejected(Exception):
    """A request (or one of its items) refused with a status reason code of the standard."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


# -- the signature --------------------------------------------------------------------------------


def canonical(header: Any, message: Any) -> bytes:
    body = {"header": header, "message": message}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signing_string(created: int, expires: int, digest: str) -> bytes:
    return f"(created): {created}\n(expires): {expires}\ndigest: BLAKE-512={digest}".encode()


def sign(
    header: Any, message: Any, *, key: Ed25519PrivateKey, sender_id: str, key_id: str, now: datetime
) -> str:
    created = int(now.timestamp())
    expires = int((now + SIGNATURE_LIFETIME).timestamp())
    digest = base64.b64encode(hashlib.blake2b(canonical(header, message)).digest()).decode()
    signature = base64.b64encode(key.sign(_signing_string(created, expires, digest))).decode()
    return (
        f'Signature: namespace="spdci", kidId="{sender_id}|{key_id}|ed25519", '
        f'algorithm="ed25519", created="{created}", expires="{expires}", '
        f'headers="(created) (expires) digest", signature="{signature}"'
    )


_PARAMETER = re.compile(r'(\w+)="([^"]*)"')


def verify(
    signature: str | None, header: Any, message: Any, *, key: Ed25519PublicKey, now: datetime
) -> None:
    """Raise Rejected(err.signature.missing | err.signature.invalid) unless `signature` signs
    this header and message with `key`, now."""
    if not signature:
        raise Rejected("err.signature.missing", "this client signs its messages (MsgSignature)")
    parameters = dict(_PARAMETER.findall(signature))
    try:
        created, expires = int(parameters["created"]), int(parameters["expires"])
        signed = base64.b64decode(parameters["signature"], validate=True)
    except (KeyError, ValueError):
        raise Rejected("err.signature.invalid", "the signature cannot be read") from None
    if parameters.get("algorithm", "ed25519") != "ed25519":
        raise Rejected("err.signature.invalid", "only ed25519 signatures are accepted")
    if not created - CLOCK_SKEW.total_seconds() <= now.timestamp() <= expires:
        raise Rejected("err.signature.invalid", "the signature is not valid now")
    digest = base64.b64encode(hashlib.blake2b(canonical(header, message)).digest()).decode()
    try:
        key.verify(signed, _signing_string(created, expires, digest))
    except InvalidSignature:
        raise Rejected("err.signature.invalid", "the signature does not match") from None


# -- queries → matching's search filter ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ByIdentifier:
    number: str  # normalised


@dataclass(frozen=True, slots=True)
class ByFilter:
    filter: dict[str, Any]  # matching's Filter


def query_of(criteria: Any, client: Client, today: date) -> ByIdentifier | ByFilter:
    """The search criteria's query as the registry runs it; Rejected(rjct.search_criteria.invalid)
    saying what does not fit."""
    if not isinstance(criteria, dict):
        raise Rejected("rjct.search_criteria.invalid", "search_criteria is an object")
    query_type, query = criteria.get("query_type"), criteria.get("query")
    if query_type == "idtype-value":
        if not isinstance(query, dict) or query.get("type") not in IDENTIFIER_TYPES:
            raise Rejected(
                "rjct.search_criteria.invalid",
                f"idtype-value: type is one of {', '.join(IDENTIFIER_TYPES)}",
            )
        value = query.get("value")
        if not isinstance(value, str | int) or isinstance(value, bool) or validate(str(value)):
            raise Rejected("rjct.search_criteria.invalid", "idtype-value: not a valid ID number")
        return ByIdentifier(normalise(str(value)))
    if query_type == "predicate":
        if not isinstance(query, list) or not query:
            raise Rejected("rjct.search_criteria.invalid", "predicate: a list of expressions")
        items = sorted(query, key=lambda item: _seq(item))
        return ByFilter({"op": "all", "parts": [_predicate(i, client, today) for i in items]})
    if query_type == "expression":
        try:
            if not isinstance(query, dict):
                raise TypeError
            expression = query["value"]["expression"]["query"]
        except (KeyError, TypeError):
            raise Rejected(
                "rjct.search_criteria.invalid",
                "expression: {type, value: {expression: {collection, query}}}",
            ) from None
        return ByFilter(_expression(expression, client, today))
    raise Rejected(
        "rjct.search_criteria.invalid", "query_type is idtype-value, predicate or expression"
    )


def _seq(item: Any) -> float:
    seq = item.get("seq_num", 0) if isinstance(item, dict) else 0
    return float(seq) if isinstance(seq, int | float) and not isinstance(seq, bool) else 0.0


def _predicate(item: Any, client: Client, today: date) -> dict[str, Any]:
    if not isinstance(item, dict) or "expression1" not in item:
        raise Rejected("rjct.search_criteria.invalid", "predicate: each item has expression1")
    first = _comparison(item["expression1"], client, today)
    condition = item.get("condition")
    if condition is None:
        return first
    if "expression2" not in item or condition not in ("and", "or", "not"):
        raise Rejected(
            "rjct.search_criteria.invalid", "predicate: condition and, or or not with expression2"
        )
    second = _comparison(item["expression2"], client, today)
    if condition == "not":
        return {"op": "all", "parts": [first, {"op": "not", "parts": [second]}]}
    return {"op": "all" if condition == "and" else "any", "parts": [first, second]}


def _comparison(expression: Any, client: Client, today: date) -> dict[str, Any]:
    if not isinstance(expression, dict):
        raise Rejected("rjct.search_criteria.invalid", "an expression is an object")
    return _condition(
        expression.get("attribute_name"),
        expression.get("operator"),
        expression.get("attribute_value"),
        client,
        today,
    )


def _expression(node: Any, client: Client, today: date, depth: int = 0) -> dict[str, Any]:
    if depth > 8 or not isinstance(node, dict) or not node:
        raise Rejected("rjct.search_criteria.invalid", "expression: an object, nested at most 8")
    parts: list[dict[str, Any]] = []
    for key, value in node.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise Rejected("rjct.search_criteria.invalid", f"{key} takes a list")
            inner = [_expression(v, client, today, depth + 1) for v in value]
            parts.append({"op": "all" if key == "$and" else "any", "parts": inner})
        elif key == "$not":
            parts.append({"op": "not", "parts": [_expression(value, client, today, depth + 1)]})
        elif isinstance(value, dict) and len(value) == 1:
            [(operator, operand)] = value.items()
            parts.append(_condition(key, operator, operand, client, today))
        else:
            parts.append(_condition(key, "$eq", value, client, today))
    return parts[0] if len(parts) == 1 else {"op": "all", "parts": parts}


def _condition(
    attribute: Any, operator: Any, value: Any, client: Client, today: date
) -> dict[str, Any]:
    fields = ATTRIBUTE_FIELDS.get(attribute) if isinstance(attribute, str) else None
    if fields is None:
        raise Rejected(
            "rjct.search_criteria.invalid",
            f"attribute {attribute!r}: one of {', '.join(ATTRIBUTE_FIELDS)}",
        )
    if not fields <= client.fields:
        raise Rejected(
            "rjct.search_criteria.invalid",
            f"attribute {attribute!r}: not among what this client may see",
        )
    cmp = _OPERATORS.get(operator) if isinstance(operator, str) else None
    if cmp is None:
        raise Rejected("rjct.search_criteria.invalid", f"operator {operator!r}")
    values = value if isinstance(value, list) else [value]
    if cmp == "in" and not isinstance(value, list):
        raise Rejected("rjct.search_criteria.invalid", "in takes a list")
    if cmp != "in" and isinstance(value, list):
        raise Rejected("rjct.search_criteria.invalid", f"{operator} takes one value")
    converted = [_value(attribute, v) for v in values]
    if attribute == "age":  # age in years ↔ year of birth: older is born earlier
        attribute = "birth_year"
        converted = [today.year - v for v in converted]
        cmp = {"gt": "lt", "lt": "gt", "ge": "le", "le": "ge"}.get(cmp, cmp)
    return {"attribute": attribute, "cmp": cmp, "value": converted if cmp == "in" else converted[0]}


def _value(attribute: str, value: Any) -> Any:
    if attribute in ("age", "birth_year"):
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
            raise Rejected("rjct.search_criteria.invalid", f"{attribute}: a whole number")
        return int(value)
    if attribute in _BOOLEAN_ATTRIBUTES:
        if not isinstance(value, bool):
            raise Rejected("rjct.search_criteria.invalid", f"{attribute}: true or false")
        return value
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise Rejected("rjct.search_criteria.invalid", f"{attribute}: a text value")
    text = str(value)
    if attribute == "gender":
        if text.lower() not in _GENDERS:
            raise Rejected("rjct.search_criteria.invalid", "gender: male or female")
        return _GENDERS[text.lower()]
    if attribute == "region" and not (text.isdigit() and len(text) == 6):
        raise Rejected("rjct.search_criteria.invalid", "region: a six-digit GB/T 2260 code")
    return text


# -- a person as a registry record -----------------------------------------------------------------


def record(
    client: Client,
    verdict: dict[str, Any] | None,
    as_of: Any,
    number: str | None,
    *,
    in_subscription: bool | None = None,
) -> dict[str, Any]:
    """A DCI Member record of what the client may see: the identifier (in clear if it asked by
    it or may see numbers, else masked), and the registry's attributes as
    `additional_attributes` (name/value pairs, the standard's extension point). A notification
    of a filter subscription says `in_subscription`: whether the person is (still) among those
    the filter selects. `verdict` None: a person the registry no longer evaluates (moved out
    of its scope), of whom only the identifier is said."""
    may = client.fields
    member: dict[str, Any] = {"@type": "Member"}
    if number is not None:
        shown = number if Field.ID_NUMBER in may else mask(number)
        member["member_identifier"] = [
            {"@type": "Identifier", "identifier_type": "SSN", "identifier_value": shown}
        ]
    if verdict is None:
        member["additional_attributes"] = [{"name": "in_subscription", "value": False}]
        member["last_updated"] = as_of
        return member
    person: dict[str, Any] = {"@type": "SRPerson"}
    if Field.GENDER in may and verdict.get("gender") in _SEX:
        person["sex"] = _SEX[verdict["gender"]]
    if Field.BIRTH_YEAR in may and verdict.get("birth_year"):
        person["birth_year"] = verdict["birth_year"]
    if Field.REGION in may and verdict.get("region_code"):
        person["address"] = {"@type": "Address", "region_code": verdict["region_code"]}
    member["demographic_info"] = person
    attributes = []
    if Field.REGISTRATION in may:
        attributes.append({"name": "registration", "value": verdict["registration"]})
    if Field.DECEASED in may:
        attributes.append({"name": "deceased", "value": verdict["deceased"]})
    if Field.HOUSEHOLD in may:
        household = verdict["household_registered_locally"]
        attributes.append({"name": "household_registered_locally", "value": household})
    for insurance in INSURANCE_FIELDS:
        if insurance in may:
            code = verdict["statuses"].get(insurance.value)
            attributes.append({"name": insurance.value, "value": code})
    if in_subscription is not None:
        attributes.append({"name": "in_subscription", "value": in_subscription})
    member["additional_attributes"] = attributes
    member["last_updated"] = as_of
    return member


def now_iso(now: datetime) -> str:
    return now.astimezone(UTC).isoformat().replace("+00:00", "Z")


class DciUnavailable(Problem):
    def __init__(self) -> None:
        super().__init__(
            503, "dci-unavailable", "DCI接口未配置签名密钥 (no DCI signing key is configured)"
        )


class Answer:
    """The registry's signed answer envelope to one message."""

    def __init__(
        self, settings: GatewaySettings, client: Client, now: datetime, action: str
    ) -> None:
        key = settings.dci_key()
        if key is None:
            raise DciUnavailable()
        self.settings, self.key, self.client, self.now, self.action = (
            settings,
            key,
            client,
            now,
            action,
        )

    def envelope(
        self,
        message: dict[str, Any],
        *,
        status: str = "succ",
        reason: str | None = None,
        reason_message: str | None = None,
        total: int = 0,
        completed: int = 0,
    ) -> dict[str, Any]:
        header: dict[str, Any] = {
            "version": VERSION,
            "message_id": str(uuid.uuid4()),
            "message_ts": now_iso(self.now),
            "action": self.action,
            "status": status,
            "total_count": total,
            "completed_count": completed,
            "sender_id": self.settings.dci_sender_id,
            "receiver_id": self.client.client_id,
            "is_msg_encrypted": False,
        }
        if reason is not None:
            header |= {"status_reason_code": reason, "status_reason_message": reason_message}
        signature = sign(
            header,
            message,
            key=self.key,
            sender_id=self.settings.dci_sender_id,
            key_id=self.settings.dci_key_id,
            now=self.now,
        )
        return {"signature": signature, "header": header, "message": message}
