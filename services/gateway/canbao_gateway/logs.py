"""Keeping ID numbers out of the gateway's logs (domain.md §2.5).

api.md puts ID numbers in URLs (`/api/v1/counter/popup/{id_number}`), and uvicorn's access log
writes every URL. A filter on that logger masks anything shaped like a citizen ID number (15 or
18 characters) the way responses do (`5201**********123X`), before any handler formats it."""

from __future__ import annotations

import logging
import re
from typing import Final

from canbao_contracts.id_numbers import mask

ACCESS_LOGGER: Final = "uvicorn.access"
# 18 characters (the last may be X) or 15 digits, not inside a longer run of digits.
_ID_NUMBER_SHAPED: Final = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])")


def mask_id_numbers(text: str) -> str:
    return _ID_NUMBER_SHAPED.sub(lambda match: mask(match.group()), text)


class MaskIdNumbers(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_id_numbers(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                mask_id_numbers(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        return True


def install_log_masking() -> None:
    """Add the filter to uvicorn's access logger, once however many apps a process builds."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(existing, MaskIdNumbers) for existing in logger.filters):
        logger.addFilter(MaskIdNumbers())
