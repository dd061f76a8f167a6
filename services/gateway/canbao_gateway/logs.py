"""Keeping ID numbers out of the gateway's logs (domain.md §2.5).

api.md puts ID numbers in URLs (`/api/v1/counter/popup/{id_number}`), and the loggers that write
URLs (uvicorn's access and error logs, the platform's "unhandled error on <path>") would put them
in the logs. A filter on those loggers masks anything shaped like a citizen ID number (15 or 18
characters) the way responses do (`5201**********123X`), before any handler formats it."""

from __future__ import annotations

import logging
import re
from typing import Final

from canbao_contracts.id_numbers import mask

ACCESS_LOGGER: Final = "uvicorn.access"
URL_LOGGERS: Final = (ACCESS_LOGGER, "uvicorn.error", "canbao_platform.problems")
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
    """Add the filter to the loggers that write URLs, once however many apps a process builds.
    (A logger's filters see only its own records, not those of its children.)"""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, MaskIdNumbers) for existing in logger.filters):
            logger.addFilter(MaskIdNumbers())
