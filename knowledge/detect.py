"""Find an email address or phone number a visitor typed into the chat."""

from __future__ import annotations

import re

import phonenumbers

_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")


def contact_details_in(text: str, default_region: str = "US") -> tuple[str | None, str | None]:
    """(email, E.164 phone) found in free text, either may be None."""
    email_match = _EMAIL.search(text)
    email = email_match.group(0).lower() if email_match else None
    phone = None
    for match in phonenumbers.PhoneNumberMatcher(text, default_region):
        phone = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
        break
    return email, phone
