"""Personal data at rest (domain.md §2.5, issue 5 §7): AES-256-GCM with the key id stored beside
each ciphertext (so keys can rotate: old rows stay readable under their old key), and keyed blind
indexes (HMAC-SHA256) so a number or a demographic key can be looked up without being stored."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from canbao_contracts.id_numbers import normalise

_NONCE = 12


class UnknownKey(LookupError):
    pass


@dataclass(frozen=True)
class Protector:
    key_id: str
    keys: Mapping[str, bytes] = field(repr=False)  # key id → AES key; retired keys for reading
    index_key: bytes = field(repr=False)
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def create(
        cls,
        data_key: bytes,
        key_id: str,
        index_key: bytes,
        retired: Mapping[str, bytes] | None = None,
    ) -> Protector:
        return cls(key_id, {**(retired or {}), key_id: data_key}, index_key)

    def encrypt(self, value: Mapping[str, Any], *, context: str) -> bytes:
        """A JSON document encrypted; `context` (the row's identity) is bound as associated data,
        so a ciphertext copied to another row does not decrypt."""
        nonce = os.urandom(_NONCE)
        plain = json.dumps(value, ensure_ascii=False, sort_keys=True, default=_default).encode()
        return nonce + self._cipher(self.key_id).encrypt(nonce, plain, context.encode())

    def decrypt(self, blob: bytes, *, key_id: str, context: str) -> dict[str, Any]:
        plain = self._cipher(key_id).decrypt(blob[:_NONCE], blob[_NONCE:], context.encode())
        result: dict[str, Any] = json.loads(plain)
        return result

    def number_index(self, document_type: str, number: str) -> str:
        """Blind index of a document number: normalised first (15→18, case, spaces), so every
        valid form of one citizen number gives the same index."""
        cleaned = normalise(number) if document_type == "01" else "".join(number.split()).upper()
        return self._mac(f"doc|{document_type}|{cleaned}")

    def demographic_index(self, name: str, birth_date: date, gender: str) -> str:
        """Blind index of name + birth date + gender: finds the candidate for a record whose
        number is invalid (issue 5 §2) without storing the three in clear."""
        return self._mac(f"demo|{''.join(name.split())}|{birth_date.isoformat()}|{gender}")

    def _mac(self, text: str) -> str:
        return hmac.new(self.index_key, text.encode(), hashlib.sha256).hexdigest()

    def _cipher(self, key_id: str) -> AESGCM:
        if key_id not in self._ciphers:
            if key_id not in self.keys:
                raise UnknownKey(f"no data key with id {key_id!r}")
            self._ciphers[key_id] = AESGCM(self.keys[key_id])
        return self._ciphers[key_id]


def _default(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(type(value).__name__)
