"""Transaction Status: ask Safaricom what became of one receipt (a customer shows an SMS we have no
booking for, or an amount looks wrong). The answer comes later, to our result URL; the accountant
reads it beside our own booking of the receipt."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from kellyos.money import InvalidAmountError, to_kes
from mpesa.daraja import DarajaClient, DarajaError
from mpesa.exceptions import MpesaError
from mpesa.models import (
    MpesaReceipt,
    StatusQueryState,
    TransactionStatusQuery,
    WebhookKind,
    WebhookLog,
    WebhookStatus,
)
from mpesa.services.c2b import webhook_log_close
from mpesa.services.initiator import initiator_credentials, result_parameters, result_parse, result_urls


class TransactionStatusError(MpesaError):
    pass


def transaction_status_request(*, receipt_number: str, by: User | None) -> TransactionStatusQuery:
    receipt_number = receipt_number.strip().upper()
    if not receipt_number.isalnum() or len(receipt_number) > 30:
        raise TransactionStatusError(f"{receipt_number!r} is not an M-Pesa receipt number.")
    initiator, credential = initiator_credentials(TransactionStatusError)
    result_url, timeout_url = result_urls("status")
    # Stored before Safaricom is asked, so a question is never lost even when the answer is.
    query = TransactionStatusQuery.objects.create(
        receipt_number=receipt_number,
        receipt=MpesaReceipt.objects.filter(trans_id=receipt_number).first(),
        requested_by=by,
    )
    try:
        answer = DarajaClient.from_settings().transaction_status(
            initiator=initiator,
            security_credential=credential,
            receipt_number=receipt_number,
            shortcode=settings.MPESA_SHORTCODE,
            result_url=result_url,
            timeout_url=timeout_url,
            remarks=f"Status of {receipt_number}",
        )
    except DarajaError as exc:
        if exc.may_have_arrived:
            # Still asked: an answer naming the receipt, if the question reached Safaricom, finds it.
            TransactionStatusQuery.objects.filter(pk=query.pk).update(result_desc=exc.message[:300])
            raise TransactionStatusError(
                f"{exc.what_safaricom_did}; the question may still have reached it, and an answer naming the "
                "receipt will be recorded if it comes. Asking again is safe."
            ) from exc
        TransactionStatusQuery.objects.filter(pk=query.pk).update(
            state=StatusQueryState.REFUSED, result_code=exc.code, result_desc=exc.message[:300],
            answered_at=timezone.now(),
        )  # fmt: skip
        raise TransactionStatusError(f"Safaricom did not take the question: {exc.message or exc}") from exc
    TransactionStatusQuery.objects.filter(pk=query.pk).update(
        originator_conversation_id=str(answer.get("OriginatorConversationID", "")),
        conversation_id=str(answer.get("ConversationID", "")),
    )
    query.refresh_from_db()
    return query


def transaction_status_result_process(*, log: WebhookLog) -> None:
    """Record the first answer to a question; a repeated or late answer changes nothing."""
    try:
        result = result_parse(log.body)
    except ValueError as exc:
        detail = f"Not a Transaction Status result: {exc}"
        webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=detail)
        return
    parameters = result_parameters(result)
    receipt_number = str(parameters.get("ReceiptNo", "")).strip().upper()
    with transaction.atomic():
        query = _query_for(result, receipt_number)
        if query is None:
            webhook_log_close(
                log=log,
                status=WebhookStatus.REJECTED,
                detail=f"No question of ours has conversation {result.get('OriginatorConversationID')!r}.",
                trans_id=receipt_number,
            )
            return
        if query.state != StatusQueryState.REQUESTED:
            webhook_log_close(
                log=log, status=WebhookStatus.DUPLICATE, detail=f"Already {query.state}.",
                trans_id=query.receipt_number,
            )  # fmt: skip
            return
        query.result_log = log
        query.answered_at = timezone.now()
        query.result_code = str(result.get("ResultCode", ""))
        query.result_desc = str(result.get("ResultDesc", ""))[:300]
        query.conversation_id = query.conversation_id or str(result.get("ConversationID", ""))
        if log.kind == WebhookKind.STATUS_TIMEOUT:
            query.state = StatusQueryState.TIMED_OUT
        elif query.result_code == "0":
            query.state = StatusQueryState.ANSWERED
            query.result_parameters = parameters
            query.transaction_status = str(parameters.get("TransactionStatus", ""))[:30]
            query.amount = _amount(parameters.get("Amount"))
            query.debit_party_name = str(parameters.get("DebitPartyName", ""))[:200]
            query.credit_party_name = str(parameters.get("CreditPartyName", ""))[:200]
            query.finalised_time = str(parameters.get("FinalisedTime", ""))[:30]
        else:
            query.state = StatusQueryState.REFUSED
        query.save()
        detail = f"{query.receipt_number}: {query.get_state_display()}"
        webhook_log_close(
            log=log, status=WebhookStatus.PROCESSED, detail=detail, trans_id=query.receipt_number
        )


def _query_for(result: dict[str, Any], receipt_number: str) -> TransactionStatusQuery | None:
    queries = TransactionStatusQuery.objects.select_for_update()
    originator = str(result.get("OriginatorConversationID") or "")
    query = queries.filter(originator_conversation_id=originator).first() if originator else None
    if query is None and receipt_number:
        # The answer overtook the saving of Safaricom's acknowledgement.
        query = (
            queries.filter(receipt_number=receipt_number, originator_conversation_id="",
                           state=StatusQueryState.REQUESTED)
            .order_by("-requested_at").first()  # the newest: older ones may have gone unanswered
        )  # fmt: skip
    return query


def _amount(value: Any) -> Decimal | None:
    try:
        return to_kes(str(value))
    except (InvalidAmountError, ValueError):
        return None
