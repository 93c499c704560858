"""Reading what Safaricom POSTs. Defensive: fields arrive as strings or numbers, names may be empty,
the MSISDN is masked (v2) or hashed (v1), and amounts are Decimal from the first byte."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from customers.exceptions import InvalidPhoneError
from customers.phones import phone_sha256
from kellyos.money import InvalidAmountError, to_kes

NAIROBI = ZoneInfo("Africa/Nairobi")
_TRANS_ID = re.compile(r"^[A-Za-z0-9]{1,30}$", re.ASCII)
_SHA256_HEX = re.compile(r"^[0-9a-fA-F]{64}$", re.ASCII)


class MalformedCallbackError(ValueError):
    """The body is not a payment Safaricom could have sent; the message says why."""


@dataclass(frozen=True)
class C2BPayment:
    trans_id: str
    trans_time: datetime | None  # None when TransTime is missing or unreadable
    amount: Decimal
    business_short_code: str
    bill_ref_number: str
    invoice_number: str
    transaction_type: str
    org_account_balance: Decimal | None
    third_party_trans_id: str
    msisdn: str
    first_name: str
    middle_name: str
    last_name: str

    @property
    def payer_name(self) -> str:
        return " ".join(part for part in (self.first_name, self.middle_name, self.last_name) if part)

    @property
    def msisdn_sha256(self) -> str | None:
        """SHA-256(2547XXXXXXXX) in hex, as customers' phones are kept: the v1 payload carries it instead
        of the number; an M-Pesa Express callback, and some C2B payloads, carry the number itself."""
        if _SHA256_HEX.match(self.msisdn):
            return self.msisdn.lower()
        try:
            return phone_sha256(self.msisdn)
        except InvalidPhoneError:
            return None


def c2b_payment_parse(body: bytes) -> C2BPayment:
    try:
        return _parse(body)
    except MalformedCallbackError:
        raise
    except (ValueError, ArithmeticError, RecursionError, TypeError) as exc:
        # Hostile or mangled input (absurd numbers, deep nesting): not a payment, said plainly.
        raise MalformedCallbackError(f"The body cannot be read as a payment ({type(exc).__name__}).") from exc


def _parse(body: bytes) -> C2BPayment:
    try:
        data = json.loads(body, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedCallbackError("The body is not JSON.") from exc
    if not isinstance(data, dict):
        raise MalformedCallbackError("The body is not a JSON object.")
    trans_id = receipt_number_parse(data.get("TransID"), name="TransID")
    try:
        amount = to_kes(callback_text(data.get("TransAmount")))
    except InvalidAmountError as exc:
        raise MalformedCallbackError(f"TransAmount is not an amount: {exc}") from exc
    if amount <= 0:
        raise MalformedCallbackError(f"TransAmount must be positive, not {amount}.")
    return C2BPayment(
        trans_id=trans_id,
        trans_time=trans_time_parse(callback_text(data.get("TransTime"))),
        amount=amount,
        business_short_code=callback_text(data.get("BusinessShortCode"))[:20],
        bill_ref_number=callback_text(data.get("BillRefNumber"))[:100],
        invoice_number=callback_text(data.get("InvoiceNumber"))[:100],
        transaction_type=callback_text(data.get("TransactionType"))[:50],
        org_account_balance=_optional_amount(data.get("OrgAccountBalance")),
        third_party_trans_id=callback_text(data.get("ThirdPartyTransID"))[:100],
        msisdn=callback_text(data.get("MSISDN"))[:100],
        first_name=callback_text(data.get("FirstName"))[:60],
        middle_name=callback_text(data.get("MiddleName"))[:60],
        last_name=callback_text(data.get("LastName"))[:60],
    )


def receipt_number_parse(value: Any, *, name: str) -> str:
    """An M-Pesa receipt number (TransID, MpesaReceiptNumber) as every channel writes it, upper case."""
    receipt_number = callback_text(value).upper()
    if not receipt_number:
        raise MalformedCallbackError(f"There is no {name}.")
    if not _TRANS_ID.match(receipt_number):
        raise MalformedCallbackError(f"{name} {receipt_number[:40]!r} is not an M-Pesa receipt number.")
    return receipt_number


def callback_text(value: Any) -> str:
    """A text value of a callback as PostgreSQL can store it (no object, no NUL)."""
    if value is None or isinstance(value, bool | dict | list):
        return ""
    if isinstance(value, Decimal) and value == value.to_integral_value():
        try:
            return str(value.quantize(Decimal(1)))  # 600966.0 is shortcode 600966
        except ArithmeticError:  # 1E+28 has more digits than a Decimal carries: kept as written
            return str(value)
    # PostgreSQL text cannot hold NUL; a name or account number never needs one.
    return str(value).replace("\x00", "").strip()


def _refuse_constant(name: str) -> None:
    raise MalformedCallbackError(f"{name} is not a number M-Pesa sends.")


def trans_time_parse(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    except ValueError:
        return None


def _optional_amount(value: Any) -> Decimal | None:
    try:
        return to_kes(callback_text(value))
    except InvalidAmountError:
        return None
