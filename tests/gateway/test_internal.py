"""The gateway's HTTP client of the other services (internal.py): what keeps a call cheap."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from canbao_gateway.internal import LIMITS, fail_sniffio_imports_fast


def test_a_missing_sniffio_is_not_searched_for_at_every_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if importlib.util.find_spec("sniffio") is not None:
        pytest.skip("sniffio is installed: nothing to do")
    monkeypatch.delitem(sys.modules, "sniffio", raising=False)
    fail_sniffio_imports_fast()
    assert sys.modules["sniffio"] is None  # the import system fails at once, without a search
    with pytest.raises(ImportError):
        import sniffio  # noqa: F401


def test_connections_opened_at_a_busy_moment_are_kept_but_not_past_uvicorns_timeout() -> None:
    assert LIMITS.max_keepalive_connections == LIMITS.max_connections
    assert LIMITS.keepalive_expiry is not None and LIMITS.keepalive_expiry < 5  # uvicorn: 5 s
