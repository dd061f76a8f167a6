"""The services' one way to read retired data keys from their settings
(`<SERVICE>_RETIRED_DATA_KEYS`, identity and survey alike)."""

from __future__ import annotations

import base64

import pytest

from canbao_platform.sealing import retired_keys

OLD, OLDER = b"o" * 32, b"p" * 32


def encoded(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_retired_keys_are_id_colon_key_pairs_separated_by_commas() -> None:
    value = f" 2025-05:{encoded(OLD)} , 2024-11:{encoded(OLDER)},"
    assert retired_keys("X_RETIRED_DATA_KEYS", value) == {"2025-05": OLD, "2024-11": OLDER}
    assert retired_keys("X_RETIRED_DATA_KEYS", "") == {}


@pytest.mark.parametrize("value", [encoded(OLD), f":{encoded(OLD)}", "2025-05:not base64!"])
def test_a_malformed_entry_is_named_by_its_setting_and_never_shown(value: str) -> None:
    with pytest.raises(ValueError, match="X_RETIRED_DATA_KEYS: each entry is") as refused:
        retired_keys("X_RETIRED_DATA_KEYS", value)
    assert encoded(OLD) not in str(refused.value)
