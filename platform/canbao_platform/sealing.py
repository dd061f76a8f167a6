"""Personal data at rest (domain.md §2.5: "personal-privacy data used for comparison must be
encrypted"): a JSON document sealed with AES-256-GCM, the services' one way to do it.

The key id is stored beside each ciphertext, so keys rotate: new rows are sealed under the
current key, old rows stay readable under their retired key until rewritten (by
`canbao_platform.resealing`, after which the retired key can be dropped). The row's identity is
bound as associated data (`context`), so a ciphertext copied to another row does not open.
A sealed blob is the 12-byte nonce followed by the ciphertext and its tag.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import pydantic_core
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel

NONCE_BYTES: Final = 12


class UnknownKey(LookupError):
    """A ciphertext sealed under a key this service was not given (retired and dropped?)."""


@dataclass(frozen=True)
class Sealer:
    key_id: str
    """The key new ciphertexts are sealed under."""
    keys: Mapping[str, bytes] = field(repr=False)
    """Key id → 32-byte AES key: the current key and the retired ones still to be read."""
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.key_id not in self.keys:
            raise UnknownKey(f"the current key {self.key_id!r} is not among the keys")

    @classmethod
    def create(cls, key: bytes, key_id: str, retired: Mapping[str, bytes] | None = None) -> Sealer:
        return cls(key_id, {**(retired or {}), key_id: key})

    def seal(self, document: Mapping[str, Any] | BaseModel, *, context: str) -> bytes:
        """`document` as JSON (dates as ISO strings), encrypted under the current key. Written
        by pydantic's encoder, a model or a mapping: a tenth of the time of json.dumps, paid for
        every staged record and every rebuild."""
        nonce = os.urandom(NONCE_BYTES)
        if isinstance(document, BaseModel):
            plain = document.model_dump_json().encode()
        else:
            plain = pydantic_core.to_json(dict(document))
        return nonce + self._cipher(self.key_id).encrypt(nonce, plain, context.encode())

    def open(self, blob: bytes, *, key_id: str, context: str) -> dict[str, Any]:
        """The document sealed in `blob` under `key_id` for `context`; raises
        `cryptography.exceptions.InvalidTag` if either is not the one it was sealed with."""
        cipher = self._cipher(key_id)
        plain = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        document: dict[str, Any] = pydantic_core.from_json(plain)
        return document

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            if key_id not in self.keys:
                raise UnknownKey(f"no data key with id {key_id!r}")
            cipher = self._ciphers[key_id] = AESGCM(self.keys[key_id])
        return cipher


def retired_keys(setting: str, value: str) -> dict[str, bytes]:
    """The retired keys of a `<SERVICE>_RETIRED_DATA_KEYS` setting: `id:base64,id:base64`
    (empty: none). `setting` names it in the error, which never shows a key."""
    keys = {}
    for entry in filter(None, (e.strip() for e in value.split(","))):
        key_id, separator, encoded = entry.partition(":")
        try:
            if not (separator and key_id.strip()):
                raise ValueError
            keys[key_id.strip()] = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:  # binascii.Error is one
            raise ValueError(f"{setting}: each entry is <key id>:<base64 key>") from None
    return keys
