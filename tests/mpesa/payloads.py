"""Daraja payloads in the shapes of ../shared/daraja.md §2.4 (v2 masked MSISDN, v1 hashed MSISDN)."""

import hashlib
import itertools
import json
from datetime import datetime
from zoneinfo import ZoneInfo

NAIROBI = ZoneInfo("Africa/Nairobi")
_numbers = itertools.count(1)


def trans_id() -> str:
    """A fresh receipt number shaped like M-Pesa's (10 upper-case letters and digits)."""
    return f"TK{next(_numbers):08d}"


def c2b(
    *,
    trans_id: str,
    amount: str = "1000.00",
    account: str = "",
    shortcode: str | int = "600000",
    msisdn: str = "2547 ***** 126",
    when: datetime | None = None,
    first_name: str = "NICHOLAS",
) -> dict:
    """A C2B validation or confirmation body (the two share one shape)."""
    return {
        "TransactionType": "Pay Bill",
        "TransID": trans_id,
        "TransTime": (when or datetime.now(tz=NAIROBI)).astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"),
        "TransAmount": amount,
        "BusinessShortCode": shortcode,
        "BillRefNumber": account,
        "InvoiceNumber": "",
        "OrgAccountBalance": "25.00",
        "ThirdPartyTransID": "",
        "MSISDN": msisdn,
        "FirstName": first_name,
        "MiddleName": "",
        "LastName": "",
    }


def hashed_msisdn(phone: str) -> str:
    """What a v1 callback carries instead of the payer's number: SHA-256 of 2547XXXXXXXX in hex."""
    return hashlib.sha256(phone.encode()).hexdigest()


def body(payload: dict) -> bytes:
    return json.dumps(payload).encode()
