"""Collected values at rest: AES-256-GCM, the key id stored beside each ciphertext (keys rotate;
old rows stay readable under their old key), the row's identity bound as associated data so a
ciphertext copied to another row does not decrypt.

The same idea as identity's `protection.Protector`, without its blind indexes (survey looks
nothing up by value). A candidate for `canbao_platform`: see the issue 7 report."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES: Final = 12


class UnknownKey(LookupError):
    pass


@dataclass(frozen=True)
class Sealer:
    key_id: str  # the key new ciphertexts are written under
    keys: Mapping[str, bytes] = field(repr=False)

    def seal(self, values: Mapping[str, str], *, context: str) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps(dict(values), ensure_ascii=False, sort_keys=True).encode()
        return nonce + self._cipher(self.key_id).encrypt(nonce, plain, context.encode())

    def open(self, blob: bytes, *, key_id: str, context: str) -> dict[str, str]:
        cipher = self._cipher(key_id)
        plain = cipher.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode())
        values: dict[str, str] = json.loads(plain)
        return values

    def _cipher(self, key_id: str) -> AESGCM:
        if key_id not in self.keys:
            raise UnknownKey(f"no survey data key with id {key_id!r}")
        return AESGCM(self.keys[key_id])
