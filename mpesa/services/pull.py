"""Recover payments whose callback never came: Safaricom's Pull Transactions lists every C2B payment
of the last 48 hours; any receipt we do not have is booked through the same exactly-once pipeline,
marked as recovered by pull."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from kellyos.money import InvalidAmountError, to_kes
from mpesa.callbacks import NAIROBI, C2BPayment
from mpesa.daraja import DarajaClient
from mpesa.models import MpesaReceipt, ReceiptSource, WebhookKind, WebhookLog, WebhookStatus
from mpesa.services.c2b import receipt_book, receipt_differences, webhook_log_close, webhook_log_record

logger = logging.getLogger(__name__)

# A day's pull lists tens of thousands of payments; the query's parameters stay well under the
# protocol's 65,535.
RECEIPTS_READ_AT_ONCE = 5000


@dataclass(frozen=True)
class PullResult:
    listed: int
    booked: list[str]
    already_booked: int
    unreadable: list[str]


def mpesa_pull(*, since: datetime, until: datetime | None = None) -> PullResult:
    items = DarajaClient.from_settings().pull_transactions(
        shortcode=settings.MPESA_SHORTCODE, start=since, end=until or timezone.now()
    )
    booked, already, unreadable = [], 0, []
    payments = []
    for item in items:
        try:
            payments.append((item, _payment_from(item)))
        except ValueError as exc:
            log = _log_record(item)
            webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=str(exc))
            unreadable.append(str(item.get("transactionId", "?")))
    booked_before = _receipts_among([payment.trans_id for _, payment in payments])
    for item, payment in payments:
        first = booked_before.get(payment.trans_id)
        if first is not None and not receipt_differences(first, payment):
            # The schedule lists each payment several times (hourly over 3 hours, then the daily 48
            # hours): one it tells us nothing new about adds no row to the webhook log.
            already += 1
            continue
        log = _log_record(item)
        try:
            with transaction.atomic():
                status, detail, receipt = receipt_book(log=log, payment=payment, source=ReceiptSource.PULL)
                webhook_log_close(log=log, status=status, detail=detail, trans_id=payment.trans_id)
        except Exception as exc:  # the item is logged: the retry (or the next pull) books it
            logger.exception("Booking pulled receipt %s failed", payment.trans_id)
            webhook_log_close(
                log=log, status=WebhookStatus.FAILED, detail=f"{type(exc).__name__}: {exc}"[:2000]
            )
            continue
        if status == WebhookStatus.PROCESSED and receipt.source == ReceiptSource.PULL:
            booked.append(payment.trans_id)
        else:
            already += 1
    return PullResult(listed=len(items), booked=booked, already_booked=already, unreadable=unreadable)


def _log_record(item: dict[str, Any]) -> WebhookLog:
    body = json.dumps(item, default=str).encode()
    return webhook_log_record(kind=WebhookKind.PULL, body=body, headers={}, source_ip=None)


def _receipts_among(trans_ids: list[str]) -> dict[str, MpesaReceipt]:
    found: dict[str, MpesaReceipt] = {}
    for start in range(0, len(trans_ids), RECEIPTS_READ_AT_ONCE):
        chunk = trans_ids[start : start + RECEIPTS_READ_AT_ONCE]
        found.update(
            (receipt.trans_id, receipt)
            for receipt in MpesaReceipt.objects.filter(trans_id__in=chunk).only(
                "trans_id", "amount", "bill_ref_number", "business_short_code"
            )
        )
    return found


def _payment_from(item: dict[str, Any]) -> C2BPayment:
    trans_id = str(item.get("transactionId") or "").strip().upper()
    if not trans_id.isalnum():
        raise ValueError(f"Pulled item without a usable transactionId: {item}")
    try:
        amount = to_kes(str(item.get("amount", "")))
    except InvalidAmountError as exc:
        raise ValueError(f"Pulled {trans_id} has no usable amount: {item.get('amount')!r}") from exc
    if amount <= 0:
        raise ValueError(f"Pulled {trans_id} is not a payment in ({amount}).")
    try:
        when = datetime.fromisoformat(str(item.get("trxDate", "")).replace("Z", "+00:00"))
        when = when if when.tzinfo else when.replace(tzinfo=NAIROBI)
    except ValueError:
        when = None
    msisdn = str(item.get("msisdn", ""))
    return C2BPayment(
        trans_id=trans_id,
        trans_time=when,
        amount=amount,
        business_short_code=settings.MPESA_SHORTCODE,
        bill_ref_number=str(item.get("billreference") or "")[:100],
        invoice_number="",
        transaction_type=str(item.get("transactiontype") or "")[:50],
        org_account_balance=None,
        third_party_trans_id="",
        msisdn=f"254{msisdn}" if len(msisdn) == 9 else msisdn,
        first_name=str(item.get("sender") or "")[:60],
        middle_name="",
        last_name="",
    )
