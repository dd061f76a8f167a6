"""No ID numbers in the gateway's logs, though api.md puts them in URLs."""

from __future__ import annotations

import logging

import pytest

from canbao_gateway.logs import ACCESS_LOGGER, MaskIdNumbers, install_log_masking, mask_id_numbers
from tests.gateway.people import NANMING, citizen, legacy_15


def test_numbers_in_a_url_are_masked_like_in_responses() -> None:
    number = citizen(NANMING, sequence="001")
    assert mask_id_numbers(f"/api/v1/counter/popup/{number}") == (
        f"/api/v1/counter/popup/{number[:4]}{'*' * 10}{number[-4:]}"
    )
    assert legacy_15(NANMING) not in mask_id_numbers(f"/p/{legacy_15(NANMING)}?x=1")


def test_other_numbers_are_left_alone() -> None:
    text = "GET /api/v1/audit?before=12345&limit=100 200 in 4 ms; batch 2026112300001"
    assert mask_id_numbers(text) == text


def test_uvicorn_access_log_lines_carry_no_id_number(caplog: pytest.LogCaptureFixture) -> None:
    install_log_masking()
    install_log_masking()  # once, however many apps a process builds
    number = citizen(NANMING)
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        # uvicorn's own call: logger.info('%s - "%s %s HTTP/%s" %d', client, method, path, ...)
        logging.getLogger(ACCESS_LOGGER).info(
            '%s - "%s %s HTTP/%s" %d',
            "192.0.2.10:5000",
            "GET",
            f"/api/v1/counter/popup/{number}",
            "1.1",
            200,
        )
    assert number not in caplog.text and number[-4:] in caplog.text
    filters = logging.getLogger(ACCESS_LOGGER).filters
    assert len([f for f in filters if isinstance(f, MaskIdNumbers)]) == 1
