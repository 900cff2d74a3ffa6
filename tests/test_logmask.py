"""Personal data masked in logs: the filter itself (caplog, a formatter that unpacks its
arguments, loguru) and the log file of a real hub process after an SMS from a known number."""

from __future__ import annotations

import asyncio
import logging
import secrets
from pathlib import Path

import pytest

from hub.embedded_db import free_port
from hub.logmask import PersonalDataFilter, install, mask_text
from tests.support import HubProcess
from tests.twilio_double import TwilioDouble


def test_mask_text_keeps_the_tail_of_numbers_and_the_domain_of_addresses() -> None:
    assert mask_text("call +8613912345678 now") == "call +**********678 now"
    assert mask_text("from 13912345678.") == "from ********678."
    assert mask_text("mail ann.lee@example.co.uk, please") == "mail a***@example.co.uk, please"
    # ids, short numbers, addresses and times stay readable
    text = "contact 3f2a9c1234567890ab on 127.0.0.1:8000 took 1234 ms at 12:30:01, SID CA1234567890"
    assert mask_text(text) == text


def test_filter_masks_message_arguments_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("tests.logmask")
    caplog.handler.addFilter(PersonalDataFilter())
    with caplog.at_level(logging.INFO, logger="tests.logmask"):
        logger.info("SMS from %s to %s about %s", "+15005550199", "bob@mail.test", {"phone": "15005550142"})
        logger.info("named %(who)s", {"who": "carol@mail.test"})
        logger.warning("inline +447700900123 and dave@mail.test")
        try:
            raise ValueError("bad number +15005550177")
        except ValueError:
            logger.exception("failed for %s", "erin@mail.test")
    text = caplog.text + "".join(r.exc_text or "" for r in caplog.records)
    for secret in (
        "15005550199",
        "bob@",
        "15005550142",
        "carol@",
        "447700900123",
        "dave@",
        "15005550177",
        "erin@",
    ):
        assert secret not in text, secret
    assert "+********199" in text and "b***@mail.test" in text and "ValueError" in text


def test_formatters_that_unpack_arguments_still_work() -> None:
    """uvicorn's access log formats a 5-tuple of arguments itself: the shape must survive."""
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/customers?phone=%2B15005550199&p=15005550199", "1.1", 200),
        None,
    )
    assert PersonalDataFilter().filter(record)
    _client, method, path, _version, status = record.args  # type: ignore[misc]
    assert status == 200 and method == "GET" and "15005550199" not in str(path)
    assert "5550199" not in record.getMessage()


def test_loguru_records_are_masked_too() -> None:
    from loguru import logger

    install(loggers=())
    seen: list[str] = []
    sink = logger.add(lambda message: seen.append(str(message)), format="{message}")
    try:
        logger.warning("pipecat call from +15005550123 for frank@mail.test")
    finally:
        logger.remove(sink)
    assert seen and "15005550123" not in seen[0] and "frank@" not in seen[0]


async def test_a_hub_process_log_never_shows_the_number(
    hub_nobot: HubProcess, twilio_double: TwilioDouble
) -> None:
    sender = f"+1500555{free_port() % 10000:04d}"
    unknown = f"+1500666{secrets.randbelow(10000):04d}"  # a number no tenant owns: logged and ignored
    answer = await twilio_double.inbound_sms(f"{hub_nobot.url}/twilio/sms", sender, unknown, "hello")
    assert answer.status_code == 200, answer.text
    log_file = Path(hub_nobot.var_dir) / f"hub-{hub_nobot.port}.log"
    masked = "+" + "*" * (len(sender) - 4) + sender[-3:]
    text = ""
    for _ in range(50):  # the line is flushed right away; allow the process a moment
        text = log_file.read_text(errors="replace")
        if "to unknown number" in text and masked in text:
            break
        await asyncio.sleep(0.1)
    assert masked in text, text[-2000:]
    assert sender not in text and sender[1:] not in text
    assert unknown not in text and unknown[1:] not in text
