"""Reconciliation with the M-Pesa Org-portal statement (CSV). Each customer payment row is matched to
our receipts by receipt number: matched, missing from our books, or amount differs; receipts we hold
for the statement's period that it does not list are reported too. A bad file is refused with the row
that is wrong, and nothing of it is kept. Missing rows can then be booked, once each, by an accountant.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from kellyos.money import InvalidAmountError, to_kes
from mpesa.callbacks import NAIROBI, C2BPayment
from mpesa.exceptions import MpesaError
from mpesa.models import (
    MpesaReceipt,
    ReceiptSource,
    StatementImport,
    StatementLine,
    StatementOutcome,
    WebhookKind,
    WebhookStatus,
)
from mpesa.services.c2b import receipt_book, webhook_log_close, webhook_log_record

HEADER_START = "receipt no."
REQUIRED = ["receipt no.", "completion time", "transaction status", "paid in"]
TIME_FORMATS = [
    "%d-%m-%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%d/%m/%Y %H:%M:%S",
    "%d-%m-%Y %H:%M",
    "%Y-%m-%d %H:%M",
]


class StatementFormatError(MpesaError):
    """The file is not a statement we can read; the message names the row."""


def statement_check(content: bytes) -> None:
    """Raise StatementFormatError for a file that cannot be imported; write nothing."""
    for number, row in _rows(content):
        _receipt_no(row, number)
        _time(row.get("completion time", ""), number)
        _amount(row.get("paid in", ""), number)


def statement_import(*, file_name: str, content: bytes, by: User | None) -> StatementImport:
    rows = _rows(content)
    with transaction.atomic():
        statement = StatementImport.objects.create(file_name=file_name[:255], uploaded_by=by)
        lines = [_line(statement, number, row) for number, row in rows]
        StatementLine.objects.bulk_create(lines)
        times = [line.completed_at for line in lines if line.completed_at]
        if times:
            statement.period_start, statement.period_end = min(times), max(times)
            listed = {line.receipt_no for line in lines}
            unlisted = MpesaReceipt.objects.filter(
                trans_time__gte=statement.period_start, trans_time__lte=statement.period_end
            ).exclude(trans_id__in=listed)
            StatementLine.objects.bulk_create(
                StatementLine(
                    statement=statement,
                    receipt_no=receipt.trans_id,
                    completed_at=receipt.trans_time,
                    account_no=receipt.bill_ref_number,
                    payer=receipt.payer_name,
                    our_amount=receipt.amount,
                    receipt=receipt,
                    outcome=StatementOutcome.NOT_ON_STATEMENT,
                )
                for receipt in unlisted
            )
        counts: dict[str, int] = {}
        for outcome in statement.lines.values_list("outcome", flat=True):
            counts[outcome] = counts.get(outcome, 0) + 1
        statement.summary = counts
        statement.save(update_fields=["period_start", "period_end", "summary"])
    return statement


def statement_line_book(*, line: StatementLine, by: User | None) -> StatementLine:
    """Book a payment the statement shows and our books miss, through the same exactly-once pipeline."""
    if line.outcome != StatementOutcome.MISSING or line.paid_in is None:
        raise MpesaError(f"{line.receipt_no} is {line.get_outcome_display().lower()}: nothing to book.")
    payment = C2BPayment(
        trans_id=line.receipt_no,
        trans_time=line.completed_at,
        amount=line.paid_in,
        business_short_code=settings.MPESA_SHORTCODE,
        bill_ref_number=line.account_no,
        invoice_number="",
        transaction_type="Org-portal statement",
        org_account_balance=None,
        third_party_trans_id="",
        msisdn="",
        first_name=line.payer[:60],
        middle_name="",
        last_name="",
    )
    body = json.dumps({"statement": line.statement_id, "row": line.row_number, "booked_by": str(by)}).encode()
    log = webhook_log_record(kind=WebhookKind.STATEMENT, body=body, headers={}, source_ip=None)
    with transaction.atomic():
        line = StatementLine.objects.select_for_update().get(pk=line.pk)
        if line.outcome != StatementOutcome.MISSING:
            raise MpesaError(f"{line.receipt_no} was booked meanwhile.")
        status, detail, receipt = receipt_book(log=log, payment=payment, source=ReceiptSource.STATEMENT)
        webhook_log_close(log=log, status=status, detail=detail, trans_id=payment.trans_id)
        line.receipt = receipt
        line.outcome = (
            StatementOutcome.BOOKED if status == WebhookStatus.PROCESSED else StatementOutcome.MATCHED
        )
        line.save(update_fields=["receipt", "outcome"])
    return line


def _rows(content: bytes) -> list[tuple[int, dict[str, str]]]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StatementFormatError("The file is not UTF-8 text; export the statement as CSV.") from exc
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows = []
    for number, cells in enumerate(reader, start=1):
        if header is None:
            if cells and cells[0].strip().lower() == HEADER_START:
                header = [cell.strip().lower() for cell in cells]
                missing = [name for name in REQUIRED if name not in header]
                if missing:
                    raise StatementFormatError(f"Row {number}: the header lacks {', '.join(missing)}.")
            continue
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            raise StatementFormatError(f"Row {number}: {len(cells)} cells under a header of {len(header)}.")
        rows.append((number, dict(zip(header, [cell.strip() for cell in cells], strict=False))))
    if header is None:
        raise StatementFormatError(
            "No header row starting with 'Receipt No.' was found: is this an M-Pesa statement?"
        )
    return rows


def _line(statement: StatementImport, number: int, row: dict[str, str]) -> StatementLine:
    receipt_no = _receipt_no(row, number)
    completed_at = _time(row.get("completion time", ""), number)
    paid_in = _amount(row.get("paid in", ""), number)
    line = StatementLine(
        statement=statement,
        row_number=number,
        receipt_no=receipt_no,
        completed_at=completed_at,
        details=row.get("details", "")[:300],
        paid_in=paid_in,
        account_no=row.get("a/c no.", "")[:100],
        payer=row.get("other party info", "")[:200],
    )
    completed = row.get("transaction status", "").lower() == "completed"
    if not completed or paid_in is None or paid_in <= 0:
        line.outcome = StatementOutcome.NOT_A_PAYMENT
        return line
    receipt = MpesaReceipt.objects.filter(trans_id=receipt_no).first()
    line.receipt = receipt
    line.our_amount = receipt.amount if receipt else None
    if receipt is None:
        line.outcome = StatementOutcome.MISSING
    elif receipt.amount != paid_in:
        line.outcome = StatementOutcome.AMOUNT_DIFFERS
    else:
        line.outcome = StatementOutcome.MATCHED
    return line


def _receipt_no(row: dict[str, str], number: int) -> str:
    receipt_no = row.get("receipt no.", "").upper()
    if not receipt_no.isalnum():
        raise StatementFormatError(f"Row {number}: {receipt_no!r} is not a receipt number.")
    return receipt_no


def _time(text: str, number: int) -> datetime:
    for pattern in TIME_FORMATS:
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=NAIROBI)
        except ValueError:
            continue
    raise StatementFormatError(f"Row {number}: completion time {text!r} is not a date and time.")


def _amount(text: str, number: int) -> Decimal | None:
    cleaned = text.replace(",", "").replace('"', "").strip()
    if not cleaned:
        return None
    try:
        return abs(to_kes(cleaned))
    except InvalidAmountError as exc:
        raise StatementFormatError(f"Row {number}: {text!r} is not an amount.") from exc
