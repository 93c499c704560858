"""Refunds through the M-Pesa Reversal API. The request is stored, then sent; nothing in the books
moves until Safaricom's result says the money went back. Then, in one transaction: the receipt's
booking is reversed (crediting 1010 M-Pesa Cash), its allocations are undone so the invoices it paid
reopen, and the receipt is marked refunded. A repeated or late result changes nothing."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from invoices.exceptions import ReceivablesError
from invoices.services import payment_refund, payment_refund_problem
from kellyos.audit import audit_record
from kellyos.db import violated_constraint
from kellyos.money import ZERO
from ledger.exceptions import LedgerError
from ledger.services import journal_entry_reverse
from mpesa.daraja import DarajaClient, DarajaError
from mpesa.exceptions import MpesaError
from mpesa.models import (
    MpesaReceipt,
    MpesaRefund,
    ReceiptStatus,
    RefundState,
    WebhookKind,
    WebhookLog,
    WebhookStatus,
)
from mpesa.services.c2b import webhook_log_close
from mpesa.services.initiator import initiator_credentials, result_parameters, result_parse, result_urls
from pos.exceptions import SaleError
from pos.services import sale_payment_refund

logger = logging.getLogger(__name__)

# Result codes that mean the money is back with the payer: 0, and "already reversed" (an earlier
# request of ours whose result never came, or a reversal made on the Org portal).
MONEY_RETURNED = {"0", "R000001"}


class RefundError(MpesaError):
    pass


def refund_problem(receipt: MpesaReceipt) -> str | None:
    """Why this receipt cannot be refunded now (None when it can)."""
    if receipt.status == ReceiptStatus.REFUNDED:
        return f"Receipt {receipt.trans_id} has already been refunded."
    if receipt.refunds.filter(state__in=[RefundState.REQUESTED, RefundState.NEEDS_REVIEW]).exists():
        return f"A refund of {receipt.trans_id} is already with Safaricom."
    if receipt.amount != receipt.amount.to_integral_value():
        return f"M-Pesa reverses whole shillings; receipt {receipt.trans_id} is KES {receipt.amount}."
    if receipt.payment is not None:
        return payment_refund_problem(receipt.payment)
    return None


def refund_request(*, receipt: MpesaReceipt, reason: str, by: User | None) -> MpesaRefund:
    reason = reason.strip()
    if not reason:
        raise RefundError("Say why the money is going back.")
    initiator, credential = initiator_credentials(RefundError)
    result_url, timeout_url = result_urls("refund")
    with transaction.atomic():
        receipt = MpesaReceipt.objects.select_for_update().get(pk=receipt.pk)
        problem = refund_problem(receipt)
        if problem:
            raise RefundError(problem)
        try:
            # Committed before Safaricom is asked: a result always finds its request.
            refund = MpesaRefund.objects.create(
                receipt=receipt, amount=receipt.amount, reason=reason, requested_by=by
            )
        except IntegrityError as exc:
            if violated_constraint(exc) == "mpesa_mpesarefund_one_live_per_receipt":
                raise RefundError(f"A refund of {receipt.trans_id} is already with Safaricom.") from exc
            raise
        audit_record(
            action="receipt.refund_request", subject=f"M-Pesa receipt {receipt.trans_id}", by=by,
            reason=reason, summary=f"Asked Safaricom to reverse KES {receipt.amount} to "
            f"{receipt.payer_name or receipt.msisdn}.",
        )  # fmt: skip
    try:
        answer = DarajaClient.from_settings().reversal(
            initiator=initiator,
            security_credential=credential,
            receipt_number=receipt.trans_id,
            amount=receipt.amount,
            shortcode=settings.MPESA_SHORTCODE,
            result_url=result_url,
            timeout_url=timeout_url,
            remarks=f"Refund {receipt.trans_id}: {reason}",
        )
    except Exception as exc:
        # Without a clear refusal the request may still have reached Safaricom: unknown, not failed.
        may_have_arrived = not isinstance(exc, DarajaError) or exc.may_have_arrived
        state = RefundState.TIMED_OUT if may_have_arrived else RefundState.FAILED
        code, message = (exc.code, exc.message) if isinstance(exc, DarajaError) else ("error", str(exc))
        MpesaRefund.objects.filter(pk=refund.pk).update(
            state=state, result_code=code[:20], result_desc=message[:300], settled_at=timezone.now()
        )
        if state == RefundState.TIMED_OUT:
            raise RefundError(
                "Safaricom did not answer; the reversal may still happen. Its result will be booked if it "
                "comes; asking again later is safe."
            ) from exc
        raise RefundError(f"Safaricom did not take the reversal: {message or exc}") from exc
    MpesaRefund.objects.filter(pk=refund.pk).update(
        originator_conversation_id=str(answer.get("OriginatorConversationID", "")),
        conversation_id=str(answer.get("ConversationID", "")),
    )
    refund.refresh_from_db()
    return refund


def refund_result_process(*, log: WebhookLog) -> None:
    """Settle the refund a result (or queue timeout) is about, once. A failure leaves the log FAILED
    for `mpesa_retry_failed`, which runs this again."""
    try:
        result = result_parse(log.body)
    except ValueError as exc:
        webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=f"Not a Reversal result: {exc}")
        return
    try:
        with transaction.atomic():
            found = _refund_for(result)
            if found is None:
                conversation = result.get("OriginatorConversationID") or result.get("ConversationID")
                webhook_log_close(
                    log=log, status=WebhookStatus.REJECTED,
                    detail=f"No refund of ours has conversation {conversation!r}.",
                )  # fmt: skip
                return
            # The same order as refund_request: the receipt, then its refunds.
            MpesaReceipt.objects.select_for_update().get(pk=found.receipt_id)
            refund = MpesaRefund.objects.select_for_update().select_related("receipt").get(pk=found.pk)
            trans_id = refund.receipt.trans_id
            money_returned = log.kind == WebhookKind.REFUND_RESULT and _code(result) in MONEY_RETURNED
            if not _open_to(refund, money_returned=money_returned):
                webhook_log_close(
                    log=log,
                    status=WebhookStatus.DUPLICATE,
                    detail=f"Already {refund.state}.",
                    trans_id=trans_id,
                )
                return
            _settle(refund, result=result, log=log, money_returned=money_returned)
            webhook_log_close(
                log=log, status=WebhookStatus.PROCESSED, detail=refund.get_state_display(), trans_id=trans_id
            )
    except Exception as exc:  # the raw log is kept, FAILED, for the retry
        logger.exception("Reversal result #%s failed", log.pk)
        webhook_log_close(log=log, status=WebhookStatus.FAILED, detail=f"{type(exc).__name__}: {exc}"[:2000])


def refund_book_again(*, refund: MpesaRefund, by: User | None) -> MpesaRefund:
    """Safaricom gave the money back but booking it was impossible then (NEEDS_REVIEW): try again once
    the obstacle (say, an invoice the credit paid) has been sorted out."""
    with transaction.atomic():
        MpesaReceipt.objects.select_for_update().get(pk=refund.receipt_id)
        refund = MpesaRefund.objects.select_for_update().get(pk=refund.pk)
        if refund.state != RefundState.NEEDS_REVIEW:
            raise RefundError(f"{refund} does not need booking.")
        problem = _book_unless_impossible(refund)
        if problem:
            raise RefundError(f"Still cannot book the refund of {refund.receipt.trans_id}: {problem}")
        refund.state, refund.settled_at = RefundState.COMPLETED, timezone.now()
        refund.result_desc = f"{refund.result_desc} | Booked later by {by or 'the system'}."[:300]
        refund.save(update_fields=["state", "settled_at", "result_desc"])
    return refund


def _code(result: dict[str, object]) -> str:
    return str(result.get("ResultCode", ""))


def _open_to(refund: MpesaRefund, *, money_returned: bool) -> bool:
    """Whether this answer may still settle the refund. A refund we marked failed because the request
    itself went wrong may yet have been carried out: news that the money went back still counts."""
    if refund.state in {RefundState.REQUESTED, RefundState.TIMED_OUT}:
        return True
    return money_returned and refund.state == RefundState.FAILED and refund.result_log_id is None


def _refund_for(result: dict[str, object]) -> MpesaRefund | None:
    refunds = MpesaRefund.objects.all()
    originator = str(result.get("OriginatorConversationID") or "")
    conversation = str(result.get("ConversationID") or "")
    if originator and (refund := refunds.filter(originator_conversation_id=originator).first()):
        return refund
    if conversation and (refund := refunds.filter(conversation_id=conversation).first()):
        return refund
    # The result overtook the saving of Safaricom's acknowledgement (or we never got one): the
    # receipt it names tells.
    receipt_number = str(result_parameters(result).get("OriginalTransactionID") or "")
    return (
        refunds.filter(
            receipt__trans_id=receipt_number,
            originator_conversation_id="",
            state__in=[RefundState.REQUESTED, RefundState.TIMED_OUT, RefundState.FAILED],
        )
        .order_by("pk")
        .first()
        if receipt_number
        else None
    )


def _settle(refund: MpesaRefund, *, result: dict[str, object], log: WebhookLog, money_returned: bool) -> None:
    refund.result_log = log
    refund.result_code = _code(result)
    refund.result_desc = str(result.get("ResultDesc", ""))[:300]
    refund.settled_at = timezone.now()
    if log.kind == WebhookKind.REFUND_TIMEOUT:
        # Not a failure: the reversal may still happen. Asking again is safe (an already reversed
        # receipt answers R000001, which books the refund).
        refund.state = RefundState.TIMED_OUT
        refund.save()
        return
    if not money_returned:
        refund.state = RefundState.FAILED
        refund.save()
        return
    refund.result_parameters = result_parameters(result)
    refund.reversal_receipt_number = str(result.get("TransactionID") or "")[:30]
    if refund.receipt.status == ReceiptStatus.REFUNDED:
        # Another request for the same receipt was booked first; this answer adds nothing.
        refund.state = RefundState.FAILED
        refund.result_desc = f"{refund.result_desc} | Already refunded by another request."[:300]
        refund.save()
        return
    # Any other request for this receipt is answered by this one (one live refund per receipt).
    MpesaRefund.objects.filter(
        receipt_id=refund.receipt_id, state__in=[RefundState.REQUESTED, RefundState.TIMED_OUT]
    ).exclude(pk=refund.pk).update(
        state=RefundState.FAILED, result_desc="Superseded: another request's result refunded the receipt."
    )
    problem = _book_unless_impossible(refund)
    if problem:
        # Safaricom has given the money back whatever our books say: keep that fact for a person.
        refund.state = RefundState.NEEDS_REVIEW
        refund.result_desc = f"{refund.result_desc} | Not booked: {problem}"[:300]
    else:
        refund.state = RefundState.COMPLETED
    refund.save()


def _book_unless_impossible(refund: MpesaRefund) -> str | None:
    """Book the refund, or say why the books refuse it (leaving nothing of it written)."""
    try:
        with transaction.atomic():
            _book(refund)
    except (ReceivablesError, SaleError, LedgerError, MpesaError) as exc:
        return str(exc)
    return None


def _book(refund: MpesaRefund) -> None:
    """Take the receipt out of the books: its payment (if any) and its suspense entry (if any) are
    reversed, which together credit 1010 M-Pesa Cash with the whole receipt."""
    receipt = MpesaReceipt.objects.select_for_update().get(pk=refund.receipt_id)
    if receipt.status == ReceiptStatus.REFUNDED:
        raise RefundError(f"Receipt {receipt.trans_id} was already refunded.")
    why = f"M-Pesa reversal of {receipt.trans_id}: {refund.reason}"
    if receipt.sale_payment is not None:
        sale_payment_refund(payment=receipt.sale_payment, reason=why, by=refund.requested_by)
    if receipt.payment is not None:
        payment_refund(payment=receipt.payment, reason=why, by=refund.requested_by)
    if receipt.suspense_entry is not None:
        journal_entry_reverse(
            entry=receipt.suspense_entry, reason=why, by=refund.requested_by,
            memo=f"M-Pesa {receipt.trans_id} refunded to the payer"[:255],
        )  # fmt: skip
    receipt.status, receipt.unallocated_amount = ReceiptStatus.REFUNDED, ZERO
    receipt.save(update_fields=["status", "unallocated_amount"])
    audit_record(
        action="receipt.refund", subject=f"M-Pesa receipt {receipt.trans_id}", by=refund.requested_by,
        reason=refund.reason, summary=f"KES {refund.amount} went back to the payer; the booking is reversed.",
    )  # fmt: skip
