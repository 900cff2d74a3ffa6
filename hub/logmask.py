"""Personal data masked in logs: phone numbers and email addresses never reach a log file.

A logging.Filter on the handlers (a filter on a logger would miss records propagated from its
children) rewrites the message and its arguments in place, keeping the arguments' shape so
formatters that unpack them (uvicorn's access log) still work; exception text is formatted and
masked too. pipecat logs through loguru: a patcher does the same there. Enough is kept to tell
records apart: the last 3 digits of a number, the first letter and the domain of an address.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

# E.164 (+ or its URL encoding %2B, and 7-15 digits) or any run of 7 or more digits standing
# alone (not inside an id such as a hex contact id or a Twilio SID)
_PHONE = re.compile(r"(?<![\w+%])(\+|%2[Bb])?(\d{7,})(?!\w)")
_EMAIL = re.compile(r"(?<![\w.+-])([A-Za-z0-9._%+-]+)@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
KEEP_DIGITS = 3
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")


def _mask_phone(match: re.Match[str]) -> str:
    plus, digits = match.group(1) or "", match.group(2)
    return plus + "*" * (len(digits) - KEEP_DIGITS) + digits[-KEEP_DIGITS:]


def _mask_email(match: re.Match[str]) -> str:
    if _IPV4.fullmatch(match.group(2)):  # a login at a server address (IMAP, SIP), not a person's mail
        return match.group(0)
    return f"{match.group(1)[0]}***@{match.group(2)}"


def mask_text(text: str) -> str:
    """`text` with every email address and phone number masked."""
    return _PHONE.sub(_mask_phone, _EMAIL.sub(_mask_email, text))


def mask_value(value: Any) -> Any:
    """Strings masked; containers masked item by item; anything else rendered and masked only
    when its text holds personal data (so numbers and objects keep their type otherwise)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, bytes):
        return mask_text(value.decode("utf-8", "replace"))
    if isinstance(value, tuple):
        return tuple(mask_value(v) for v in value)
    if isinstance(value, list):
        return [mask_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: mask_value(v) for k, v in value.items()}
    if isinstance(value, (int, float, bool)) or value is None:
        # numbers keep their type: a "%.0f" or "%d" placeholder needs one (a phone number
        # is text by the time it reaches a log call)
        return value
    try:
        text = str(value)
    except Exception:  # an object that cannot render itself is left to the formatter
        return value
    masked = mask_text(text)
    return value if masked == text else masked


class PersonalDataFilter(logging.Filter):
    """Masks phone numbers and email addresses in a record's message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = mask_text(record.msg)
        if record.args:
            if isinstance(record.args, Mapping):
                record.args = {k: mask_value(v) for k, v in record.args.items()}
            else:
                record.args = tuple(mask_value(v) for v in record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_text(record.exc_text)
        return True


_FILTER = PersonalDataFilter()
LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")


def install(loggers: tuple[str, ...] = LOGGERS) -> None:
    """Put the filter on every handler of the given loggers (the root and uvicorn's, which do
    not propagate) and on loguru's records; calling it again adds nothing."""
    for name in loggers:
        for handler in logging.getLogger(name).handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    try:
        from loguru import logger
    except ImportError:
        return

    def patch(record: Any) -> None:
        record["message"] = mask_text(record["message"])

    logger.configure(patcher=patch)
