"""M-Pesa Express (STK Push): send the PIN prompt for a till sale, take Safaricom's callback, and
settle prompts whose callback never came by asking Safaricom (STK Push Query).

A paid prompt books its receipt through the same pipeline as a C2B confirmation, so the same
receipt arriving by both channels, in either order, is booked once."""

from __future__ import annotations

import json
import logging
import re
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from customers.phones import phone_normalize
from invoices.exceptions import ReceivablesError
from kellyos.events import event_publish
from kellyos.money import InvalidAmountError, to_kes
from ledger.exceptions import LedgerError
from mpesa.callbacks import (
    C2BPayment,
    MalformedCallbackError,
    callback_text,
    receipt_number_parse,
    trans_time_parse,
)
from mpesa.daraja import BUSY, NETWORK, DarajaClient, DarajaError
from mpesa.exceptions import MpesaError
from mpesa.models import ReceiptSource, ReceiptStatus, StkPush, StkStatus, WebhookLog, WebhookStatus
from mpesa.services.c2b import receipt_assign, receipt_book, webhook_log_close
from pos.models import Sale, SaleStatus

logger = logging.getLogger(__name__)

# Final answers a customer can retry after (daraja.md §4.5); anything else but 0 needs a person.
FINAL_FAILURES = {"1", "1019", "1032", "1037", "2001"}
CASHIER_WORDS = {
    "1": "Not enough money in the customer's M-Pesa.",
    "1019": "The prompt expired before the customer answered it.",
    "1032": "The customer cancelled the prompt.",
    "1037": "No response from the customer's phone (off, busy or the prompt ignored).",
    "2001": "Wrong M-Pesa PIN entered.",
}
STILL_PROCESSING = "500.001.1001"
# With mpesa_retry_failed every 5 minutes (deploy/systemd), about 20 minutes: longer than a prompt
# left SENDING takes to be given up as UNANSWERED (sending_abandoned_after() and the next
# mpesa_stk_settle), so a paid callback that overtook its prompt is matched to it, not held in suspense.
UNKNOWN_PROMPT_ATTEMPTS = 5
# Printable ASCII, no space, as wide as StkPush.checkout_request_id (ws_CO_191220191020363925).
CHECKOUT_REQUEST_ID = re.compile(r"[!-~]{1,100}", re.ASCII)
# A prompt is answered (or times out) within about a minute of reaching Safaricom; until then no
# second one for the sale.
PROMPT_OPEN_FOR = timedelta(seconds=90)


class StkError(MpesaError):
    pass


def stk_words(push: StkPush) -> str:
    """What a cashier should read about a prompt."""
    if push.status == StkStatus.SENDING:
        return "Sending the prompt to Safaricom."
    if push.status == StkStatus.REQUESTED and push.result_code == "0":
        return "Paid, says M-Pesa: waiting for its receipt to book the money."
    if push.status == StkStatus.REQUESTED:
        return "Prompt sent: the customer should enter their M-Pesa PIN."
    if push.status == StkStatus.PAID:
        return f"Paid: M-Pesa {push.mpesa_receipt_number}."
    if push.status == StkStatus.UNANSWERED:
        return (
            "No answer from Safaricom was recorded: the prompt may still reach the customer's phone; if "
            "they pay, the money is booked to this sale when M-Pesa reports it."
        )
    return CASHIER_WORDS.get(
        push.result_code, f"Not completed ({push.result_desc or push.result_code}); ask the accountant."
    )


def stk_push_for_sale(*, sale: Sale, phone: str, by: User | None) -> StkPush:
    """Prompt the customer's phone for the sale's balance. The prompt is stored, as being sent, before
    Safaricom is asked, so two presses at once send one prompt; Safaricom's id is added when it
    accepts the prompt, before the cashier sees "sent"."""
    try:
        phone = phone_normalize(phone)
    except ValueError as exc:
        raise StkError(str(exc)) from exc
    if not settings.MPESA_CALLBACK_BASE_URL or not settings.MPESA_WEBHOOK_TOKEN:
        raise StkError("MPESA_CALLBACK_BASE_URL and MPESA_WEBHOOK_TOKEN must be set to send prompts.")
    client = DarajaClient.from_settings()
    callback_url = settings.MPESA_CALLBACK_BASE_URL.rstrip("/") + reverse(
        "stk-callback", args=[settings.MPESA_WEBHOOK_TOKEN]
    )
    now = timezone.now()
    with transaction.atomic():
        sale = Sale.objects.select_for_update().get(pk=sale.pk)
        if sale.status != SaleStatus.PENDING:
            raise StkError(f"Sale {sale.reference} is {sale.get_status_display().lower()}.")
        _refuse_a_second_prompt(sale, now=now)
        amount = sale.balance_due
        if amount != amount.to_integral_value():
            raise StkError(
                f"M-Pesa Express takes whole shillings; the balance is KSh {amount}. "
                "Ask the customer to pay the PayBill."
            )
        # Safaricom's id for it is not known yet; the placeholder keeps the column unique.
        push = StkPush.objects.create(
            checkout_request_id=f"sending-{uuid.uuid4()}", sale=sale, account_reference=sale.reference,
            phone=phone, amount=amount, requested_by=by, status=StkStatus.SENDING,
        )  # fmt: skip
    _announce(push)
    try:
        answer = client.stk_push(
            shortcode=settings.MPESA_SHORTCODE,
            passkey=settings.MPESA_PASSKEY,
            phone=phone,
            amount=amount,
            account_reference=sale.reference,
            description=f"Sale {sale.reference}"[:13],
            callback_url=callback_url,
        )
        checkout_request_id = callback_text(answer.get("CheckoutRequestID"))
        if not CHECKOUT_REQUEST_ID.fullmatch(checkout_request_id):
            raise ValueError(
                f"Safaricom's answer names no usable CheckoutRequestID ({checkout_request_id[:40]!r})"
            )
        # From UNANSWERED too: a settle run that gave it up as abandoned is contradicted by this answer.
        StkPush.objects.filter(pk=push.pk, status__in=[StkStatus.SENDING, StkStatus.UNANSWERED]).update(
            checkout_request_id=checkout_request_id,
            merchant_request_id=callback_text(answer.get("MerchantRequestID"))[:100],
            status=StkStatus.REQUESTED,
            sent_at=timezone.now(),
            settled_at=None,
            result_code="",
            result_desc="",
        )
    except DarajaError as exc:
        if not exc.may_have_arrived:
            # Nothing reached the phone: the cashier may press again at once.
            StkPush.objects.filter(pk=push.pk, status=StkStatus.SENDING).delete()
            _announce(push)
            raise StkError(f"Safaricom did not take the prompt: {exc.message or exc}") from exc
        _unanswered(push, code=exc.code, description=exc.message)
        raise StkError(
            f"{exc.what_safaricom_did}; the prompt may still reach the customer's phone, and if they "
            "pay, the money is booked to this sale when M-Pesa reports it. Wait "
            f"{PROMPT_OPEN_FOR.seconds} s before sending another."
        ) from exc
    except Exception as exc:  # the request may have gone out: keep the prompt, and the sale waits
        logger.exception(
            "The prompt for sale %s went out, but its answer could not be recorded", sale.reference
        )
        _unanswered(push, code="error", description=f"{type(exc).__name__}: {exc}")
        raise StkError(
            "Safaricom's answer to the prompt could not be recorded; the prompt may still reach the "
            "customer's phone, and if they pay, the money is booked to this sale when M-Pesa reports it. "
            f"Wait {PROMPT_OPEN_FOR.seconds} s before sending another."
        ) from exc
    push.refresh_from_db()
    _announce(push)
    return push


def _refuse_a_second_prompt(sale: Sale, *, now: datetime) -> None:
    """Raise StkError while the sale's last prompt may still be paid from the customer's phone."""
    prompts = sale.stk_pushes
    if prompts.filter(status=StkStatus.SENDING, created_at__gt=now - sending_abandoned_after()).exists():
        raise StkError("A prompt for this sale is being sent now: wait for it.")
    if prompts.filter(status=StkStatus.REQUESTED, result_code="0").exists():
        raise StkError(
            "M-Pesa says the customer paid the last prompt: the money is booked to this sale when its "
            "receipt arrives. Wait for it, or ask the accountant."
        )
    # Prompts stored by a server of the release before sent_at have none (during a rolling restart).
    opened = now - PROMPT_OPEN_FOR
    recent = prompts.filter(Q(sent_at__gt=opened) | Q(sent_at__isnull=True, created_at__gt=opened))
    if recent.filter(status=StkStatus.REQUESTED, result_code="").exists():
        raise StkError("A prompt is already on the customer's phone: wait for it, or Check with M-Pesa.")
    if recent.filter(status=StkStatus.UNANSWERED).exists():
        raise StkError(
            "Safaricom did not answer the last prompt, which may still reach the customer's phone: wait "
            f"{PROMPT_OPEN_FOR.seconds} s from it before sending another, or ask them to pay the PayBill."
        )


def sending_abandoned_after() -> timedelta:
    """How long a prompt may be in the sending, after which its server must have stopped: a request to
    Safaricom ends within about ten MPESA_HTTP_TIMEOUTs (waiting for another's token fetch, the
    fetch, the request, and the same again after a token Safaricom calls invalid)."""
    return max(timedelta(minutes=5), 12 * timedelta(seconds=settings.MPESA_HTTP_TIMEOUT))


def _unanswered(push: StkPush, *, code: str, description: str, sent_at: datetime | None = None) -> None:
    """Keep a prompt Safaricom may have received without our knowing its id, so that no second one
    goes to the phone meanwhile. Its STK callback finds no prompt; its payment reaches the sale
    through what carries the sale's reference: the C2B confirmation (expected, not yet seen in
    production: ../shared/daraja.md §10) or the scheduled pull."""
    now = timezone.now()
    StkPush.objects.filter(pk=push.pk, status=StkStatus.SENDING).update(
        status=StkStatus.UNANSWERED, sent_at=sent_at or now, settled_at=now, result_code=code[:20],
        result_desc=description[:300],
    )  # fmt: skip
    push.refresh_from_db()
    _announce(push)


def stk_callback_process(*, log: WebhookLog) -> None:
    """Settle the prompt the callback is about, once; book the receipt when it was paid."""
    try:
        callback = _stk_callback_parse(log.body.encode())
    except MalformedCallbackError as exc:
        webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=str(exc))
        return
    checkout_id, code, description, items = callback
    try:
        with transaction.atomic():
            push = StkPush.objects.select_for_update().filter(checkout_request_id=checkout_id).first()
            if push is None and code == "0":
                push = _prompt_whose_id_was_lost(log=log, checkout_id=checkout_id, items=items)
            if push is None:
                # A callback can overtake the saving of its prompt: keep it for the retry a while.
                attempts = log.attempts + 1
                WebhookLog.objects.filter(pk=log.pk).update(attempts=attempts)
                unknown = f"No prompt {checkout_id} was sent by us (checked {attempts} times)."
                if attempts < UNKNOWN_PROMPT_ATTEMPTS:
                    webhook_log_close(log=log, status=WebhookStatus.FAILED, detail=unknown)
                elif code == "0":
                    # Safaricom calls this address only about prompts sent with our token, and says
                    # the money reached the PayBill: it is booked, to suspense, rather than lost.
                    status, detail, trans_id = _book_paid_without_prompt(log=log, items=items)
                    webhook_log_close(log=log, status=status, detail=f"{unknown} {detail}", trans_id=trans_id)
                else:
                    webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=unknown)
                return
            if push.status != StkStatus.REQUESTED:
                webhook_log_close(
                    log=log, status=WebhookStatus.DUPLICATE, detail=f"Prompt already {push.status}."
                )
                return
            detail = _settle(push, code=code, description=description, items=items, log=log)
            webhook_log_close(log=log, status=WebhookStatus.PROCESSED, detail=detail)
    except MalformedCallbackError as exc:
        # A "paid" callback that names no receipt or amount cannot be booked however often it is
        # retried; the prompt stays unanswered and its query or C2B confirmation settles it.
        webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=str(exc))
    except Exception as exc:  # the raw log is kept: retried like a failed confirmation
        logger.exception("STK callback #%s failed", log.pk)
        webhook_log_close(log=log, status=WebhookStatus.FAILED, detail=f"{type(exc).__name__}: {exc}"[:2000])


def _prompt_whose_id_was_lost(*, log: WebhookLog, checkout_id: str, items: dict[str, Any]) -> StkPush | None:
    """The prompt a paid callback answers when Safaricom's id for it was never stored (its server
    stopped, or Safaricom's answer was lost): a prompt given up as unanswered for the same phone and
    amount, sent within the time its answer could take. The money is not guessed onto one of two
    sales, nor taken from a prompt still being sent, whose own callback this may be."""
    try:
        phone = phone_normalize(callback_text(items.get("PhoneNumber")))
        amount = to_kes(callback_text(items.get("Amount")))
    except (ValueError, InvalidAmountError):
        return None
    earliest = log.received_at - sending_abandoned_after() - PROMPT_OPEN_FOR
    candidates = list(
        StkPush.objects.select_for_update()
        .filter(status__in=[StkStatus.UNANSWERED, StkStatus.SENDING], phone=phone, amount=amount)
        .filter(created_at__gte=earliest, created_at__lte=log.received_at)
        .order_by("pk")
    )
    sales = {push.sale_id for push in candidates}
    if not candidates or any(push.status == StkStatus.SENDING for push in candidates) or len(sales) > 1:
        return None
    # Prompts a cashier sent again for the same sale: whichever was paid, the sale is the same.
    push = candidates[-1]
    push.checkout_request_id = checkout_id
    push.status = StkStatus.REQUESTED
    push.save(update_fields=["checkout_request_id", "status"])
    return push


def _book_paid_without_prompt(*, log: WebhookLog, items: dict[str, Any]) -> tuple[str, str, str]:
    """Book a paid callback that no prompt of ours can be tied to: it names no account, so the money
    waits in suspense (the payer's phone suggesting a customer) unless its receipt is booked already,
    or a later C2B confirmation or pull names the account."""
    payment = _payment_from(items, account_reference="")
    status, detail, _ = receipt_book(log=log, payment=payment, source=ReceiptSource.STK)
    return status, detail, payment.trans_id


def stk_settle_unanswered(*, older_than_seconds: int = 60) -> list[StkPush]:
    """Ask Safaricom about prompts that got no callback (the scheduled `mpesa_stk_settle`). Paid ones
    are booked when their receipt arrives (C2B confirmation or pull); failures are settled here."""
    now = timezone.now()
    # A server stopped while it waited for Safaricom's answer leaves its prompt as being sent; whether
    # that prompt reached the phone is as unknown as when Safaricom does not answer.
    abandoned_after = sending_abandoned_after()
    for push in StkPush.objects.filter(status=StkStatus.SENDING, created_at__lt=now - abandoned_after):
        # If the request reached Safaricom, it did before its call must have ended.
        _unanswered(
            push, code="stopped", description="The server stopped before Safaricom answered.",
            sent_at=push.created_at + abandoned_after,
        )  # fmt: skip
    cutoff = now - timedelta(seconds=older_than_seconds)
    unanswered = StkPush.objects.filter(status=StkStatus.REQUESTED, created_at__lt=cutoff).exclude(
        result_code="0"
    )
    settled, _ = _ask_safaricom_about(unanswered)
    return settled


def stk_check_now(*, sale: Sale) -> list[StkPush]:
    """The cashier's "Check with M-Pesa": ask Safaricom now about the sale's unanswered prompts."""
    settled, stopped_by = _ask_safaricom_about(sale.stk_pushes.all())
    if stopped_by is not None:
        raise StkError(f"Could not ask M-Pesa now: {stopped_by.message} The prompt is checked again later.")
    return settled


def _ask_safaricom_about(pushes: QuerySet[StkPush]) -> tuple[list[StkPush], DarajaError | None]:
    """The prompts settled, and the error that stopped the asking, if Safaricom was slow or out of
    reach: the rest then wait for the next run rather than a timeout each."""
    client = DarajaClient.from_settings()
    settled: list[StkPush] = []
    for push in pushes.filter(status=StkStatus.REQUESTED).order_by("pk"):
        try:
            answer = client.stk_query(
                shortcode=settings.MPESA_SHORTCODE,
                passkey=settings.MPESA_PASSKEY,
                checkout_request_id=push.checkout_request_id,
            )
        except DarajaError as exc:
            if exc.code == STILL_PROCESSING:
                continue
            logger.warning("STK query for %s failed: %s", push, exc)
            if exc.code in {BUSY, NETWORK}:
                return settled, exc
            continue
        code = str(answer.get("ResultCode", ""))
        with transaction.atomic():
            locked = StkPush.objects.select_for_update().get(pk=push.pk)
            if locked.status != StkStatus.REQUESTED:
                continue
            if code == "0":
                # The query carries no receipt number, and only a receipt can be booked exactly once:
                # the money is booked when its C2B confirmation (or a pull) brings the receipt.
                locked.result_code, locked.result_desc = code, str(answer.get("ResultDesc", ""))[:300]
                locked.save(update_fields=["result_code", "result_desc"])
                continue
            _settle(locked, code=code, description=str(answer.get("ResultDesc", "")), items={}, log=None)
            settled.append(locked)
    return settled, None


def _settle(
    push: StkPush, *, code: str, description: str, items: dict[str, Any], log: WebhookLog | None
) -> str:
    push.result_code, push.result_desc, push.settled_at = code, description[:300], timezone.now()
    if code == "0":
        payment = _payment_from(
            items, account_reference=push.account_reference, asked_amount=push.amount, phone=push.phone
        )
        assert log is not None
        status, detail, receipt = receipt_book(log=log, payment=payment, source=ReceiptSource.STK)
        if status != WebhookStatus.PROCESSED and push.sale and receipt.status == ReceiptStatus.UNALLOCATED:
            # The C2B confirmation came first and could not be placed (its account number differed):
            # the prompt says which sale the money is for.
            try:
                receipt = receipt_assign(receipt=receipt, reference=push.account_reference, by=None)
                detail = f"{detail} Assigned to {push.account_reference} from the prompt."
            except (MpesaError, ReceivablesError, LedgerError) as exc:
                # The sale cannot take it (cancelled, say): the money waits in suspense, and the
                # prompt for a person, rather than the callback failing on every retry.
                detail = f"{detail} Not assigned to {push.account_reference}: {exc}"
        paid_here = push.sale is None or (
            receipt.sale_payment is not None and receipt.sale_payment.sale_id == push.sale_id
        )
        push.status = StkStatus.PAID if paid_here else StkStatus.NEEDS_REVIEW
        push.receipt, push.mpesa_receipt_number = receipt, payment.trans_id
        push.save()
        _announce(push)
        return (
            f"Paid {payment.trans_id}: {detail}"
            if paid_here
            else f"Receipt {payment.trans_id} is booked elsewhere: {detail}"
        )
    push.status = StkStatus.FAILED if code in FINAL_FAILURES else StkStatus.NEEDS_REVIEW
    push.save()
    _announce(push)
    return f"{push.get_status_display()}: {code} {description}"


def _announce(push: StkPush) -> None:
    event_publish(
        kind="prompt",
        payload={"sale": push.account_reference, "status": push.status, "words": stk_words(push)},
    )


def _payment_from(
    items: dict[str, Any], *, account_reference: str, asked_amount: Decimal | None = None, phone: str = ""
) -> C2BPayment:
    receipt_number = receipt_number_parse(items.get("MpesaReceiptNumber"), name="MpesaReceiptNumber")
    try:
        amount = to_kes(callback_text(items.get("Amount", asked_amount)))
    except InvalidAmountError as exc:
        raise MalformedCallbackError(f"Amount {items.get('Amount')!r} is not an amount.") from exc
    if amount <= 0:
        raise MalformedCallbackError(f"Amount {amount} is not a payment.")
    return C2BPayment(
        trans_id=receipt_number,
        trans_time=trans_time_parse(callback_text(items.get("TransactionDate"))),
        amount=amount,
        business_short_code=settings.MPESA_SHORTCODE,
        bill_ref_number=account_reference,
        invoice_number="",
        transaction_type="M-Pesa Express",
        org_account_balance=None,
        third_party_trans_id="",
        msisdn=callback_text(items.get("PhoneNumber"))[:100] or phone,
        first_name="",
        middle_name="",
        last_name="",
    )


def _stk_callback_parse(body: bytes) -> tuple[str, str, str, dict[str, Any]]:
    try:
        data = json.loads(body, parse_float=Decimal)
        callback = data["Body"]["stkCallback"]
        checkout_id = callback_text(callback["CheckoutRequestID"])
        code = callback_text(callback["ResultCode"])[:20]  # the width of StkPush.result_code
        description = callback_text(callback.get("ResultDesc", ""))
        items = {
            str(item.get("Name")): item.get("Value")
            for item in (callback.get("CallbackMetadata") or {}).get("Item", [])
            if isinstance(item, dict)
        }
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, ArithmeticError) as exc:
        raise MalformedCallbackError(f"Not an STK callback ({type(exc).__name__}).") from exc
    if not checkout_id:
        raise MalformedCallbackError("There is no CheckoutRequestID.")
    if not CHECKOUT_REQUEST_ID.fullmatch(checkout_id):
        # Found by the fuzzing test: a NUL in it failed the prompt's lookup, and every retry after.
        raise MalformedCallbackError(f"CheckoutRequestID {checkout_id[:40]!r} is not one Safaricom issues.")
    return checkout_id, code, description, items
