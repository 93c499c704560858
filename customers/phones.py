"""Kenyan mobile numbers in the one form M-Pesa uses: 2547XXXXXXXX or 2541XXXXXXXX."""

import hashlib
import re

from customers.exceptions import InvalidPhoneError

_SEPARATORS = re.compile(r"[\s\-().]")
_FORMS = [
    re.compile(r"^(?:\+?254|0)([71]\d{8})$", re.ASCII),
]


def phone_normalize(raw: str) -> str:
    """'0712 345 678', '+254712345678', '254712345678' and '0112345678' become '2547…' / '2541…'."""
    text = _SEPARATORS.sub("", raw or "")
    for form in _FORMS:
        match = form.match(text)
        if match:
            return "254" + match.group(1)
    raise InvalidPhoneError(
        f"{raw!r} is not a Kenyan mobile number. Use 07XXXXXXXX, 01XXXXXXXX, +2547XXXXXXXX or 2541XXXXXXXX."
    )


def phone_sha256(phone: str) -> str:
    """SHA-256 of a number in its M-Pesa form, in hex: what the v1 C2B payload carries instead of the
    payer's number, and what customers' phones are matched by."""
    return hashlib.sha256(phone_normalize(phone).encode()).hexdigest()
