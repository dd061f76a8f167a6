"""Personal data at rest (domain.md §2.5): AES-256-GCM through the platform's Sealer
(the key id stored beside each ciphertext, so keys can rotate: old rows stay readable under their
old key), and keyed blind indexes (HMAC-SHA256) so a number or a demographic key can be looked up
without being stored."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from pydantic import BaseModel

from canbao_contracts.id_numbers import normalise
from canbao_platform.sealing import Sealer

# The associated data each sealed document is bound to (its row's identity), so a ciphertext
# copied to another row does not open; reseal.py opens and seals every kind again under the
# current key with the same contexts.


def record_context(source_table: str, record_key: str) -> str:
    """A source record's claims (staged_changes and source_records.claims_ciphertext)."""
    return f"source_records|{source_table}|{record_key}"


def person_context(person_id: UUID) -> str:
    """A person's golden document (persons.golden_ciphertext)."""
    return f"persons|{person_id}"


def change_context(person_id: UUID, change_id: UUID) -> str:
    """A history row's sealed values (person_changes.values_sealed): the row and its person."""
    return f"person_changes|{person_id}|{change_id}"


@dataclass(frozen=True)
class Protector:
    """Identity's personal data at rest: sealed documents (canbao_platform.sealing) and the
    blind indexes that find them."""

    sealer: Sealer
    index_key: bytes = field(repr=False)

    @property
    def key_id(self) -> str:
        """The key new ciphertexts are written under (stored beside each row)."""
        return self.sealer.key_id

    def encrypt(self, value: Mapping[str, Any] | BaseModel, *, context: str) -> bytes:
        """A JSON document encrypted; `context` (the row's identity) is bound as associated data,
        so a ciphertext copied to another row does not decrypt."""
        return self.sealer.seal(value, context=context)

    def decrypt(self, blob: bytes, *, key_id: str, context: str) -> dict[str, Any]:
        return self.sealer.open(blob, key_id=key_id, context=context)

    def number_index(self, document_type: str, number: str) -> str:
        """Blind index of a document number: normalised first (15→18, case, spaces), so every
        valid form of one citizen number gives the same index."""
        cleaned = normalise(number) if document_type == "01" else "".join(number.split()).upper()
        return self._mac(f"doc|{document_type}|{cleaned}")

    def demographic_index(self, name: str, birth_date: date, gender: str) -> str:
        """Blind index of name + birth date + gender: finds the candidate for a record whose
        number is invalid without storing the three in clear."""
        return self._mac(f"demo|{''.join(name.split())}|{birth_date.isoformat()}|{gender}")

    def household_index(self, region_code: str, household_number: str) -> str:
        """Blind index of a household (户号 within its division): the survey's stream keeps a
        household's members together by it (routes.py) without the number stored in clear."""
        return self._mac(f"household|{region_code}|{''.join(household_number.split())}")

    def _mac(self, text: str) -> str:
        return hmac.new(self.index_key, text.encode(), hashlib.sha256).hexdigest()
