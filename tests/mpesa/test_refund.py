"""Refunds by M-Pesa Reversal, end to end: the request goes to the fake Daraja with a real security
credential; its result comes back to our live server and, only then, the books move, once."""

import json
from datetime import date
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from invoices.models import InvoiceStatus
from invoices.services import InvoiceLineInput, invoice_create, invoice_void
from ledger.chart import MPESA_CASH, SALES_REVENUE, UNALLOCATED_RECEIPTS
from ledger.models import JournalEntry
from ledger.selectors import account_balance, ledger_verify
from mpesa.exceptions import ReceiptAssignmentError
from mpesa.models import (
    MpesaReceipt,
    MpesaRefund,
    ReceiptStatus,
    RefundState,
    WebhookKind,
    WebhookLog,
    WebhookStatus,
)
from mpesa.services.c2b import receipt_assign, receipt_reallocate
from mpesa.services.refund import RefundError, refund_book_again, refund_request
from pos.models import SaleStatus
from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory
from tests.mpesa.test_stk import callback_delivered, wait_for
from tests.pos.factories import SaleFactory
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)


def paid(account, amount):
    before = set(MpesaReceipt.objects.values_list("pk", flat=True))
    call_command("mpesa_simulate", "--amount", amount, "--account", account)
    assert wait_for(lambda: MpesaReceipt.objects.exclude(pk__in=before).exists())
    return MpesaReceipt.objects.exclude(pk__in=before).get()


def settled(refund):
    return wait_for(lambda: MpesaRefund.objects.get(pk=refund.pk).state != RefundState.REQUESTED)


def test_a_refund_gives_the_money_back_and_reopens_the_invoice(initiator_daraja):
    invoice = InvoiceFactory(amount=Decimal("800.00"))
    receipt = paid(invoice.number, "800")
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID and account_balance(MPESA_CASH) == Decimal("800.00")

    refund = refund_request(receipt=receipt, reason="Paid the wrong school", by=UserFactory())
    assert refund.state == RefundState.REQUESTED and refund.originator_conversation_id
    assert account_balance(MPESA_CASH) == Decimal("800.00")  # nothing moves before the result
    assert settled(refund)

    refund.refresh_from_db()
    receipt.refresh_from_db()
    invoice.refresh_from_db()
    assert refund.state == RefundState.COMPLETED and refund.reversal_receipt_number
    assert refund.result_parameters["OriginalTransactionID"] == receipt.trans_id
    assert receipt.status == ReceiptStatus.REFUNDED
    assert (invoice.status, invoice.amount_paid) == (InvoiceStatus.UNPAID, Decimal("0.00"))
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert receipt.trans_id in initiator_daraja.state.reversed
    assert ledger_verify()["is_valid"]

    with pytest.raises(RefundError, match="already been refunded"):
        refund_request(receipt=receipt, reason="again", by=None)


def test_money_held_in_suspense_goes_back_out_of_suspense(initiator_daraja, settings):
    settings.MPESA_REJECT_UNKNOWN_ACCOUNTS = False  # validation lets it through to suspense
    receipt = paid("NO-SUCH-ACCOUNT", "1500")
    assert receipt.status == ReceiptStatus.UNALLOCATED
    refund = refund_request(receipt=receipt, reason="Customer typed a wrong account number", by=None)
    assert settled(refund)
    receipt.refresh_from_db()
    assert (receipt.status, receipt.unallocated_amount) == (ReceiptStatus.REFUNDED, Decimal("0.00"))
    assert account_balance(UNALLOCATED_RECEIPTS) == Decimal("0.00")
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


def test_a_receipt_assigned_from_suspense_is_undone_all_the_way(initiator_daraja, settings):
    settings.MPESA_REJECT_UNKNOWN_ACCOUNTS = False
    invoice = InvoiceFactory(amount=Decimal("900.00"))
    receipt = receipt_assign(receipt=paid("WRONG-REF", "900"), reference=invoice.number, by=None)
    refund = refund_request(receipt=receipt, reason="Not our customer after all", by=None)
    assert settled(refund)
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.UNPAID
    assert account_balance(UNALLOCATED_RECEIPTS) == account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


def test_a_till_sale_refund_takes_back_the_revenue_and_cancels_the_sale(initiator_daraja):
    sale = SaleFactory(total=Decimal("200.00"))
    receipt = paid(sale.reference, "200")
    assert receipt.status == ReceiptStatus.SALE
    refund = refund_request(receipt=receipt, reason="Goods returned", by=None)
    assert settled(refund)
    sale.refresh_from_db()
    assert (sale.status, sale.amount_paid) == (SaleStatus.CANCELLED, Decimal("0.00"))
    assert account_balance(SALES_REVENUE) == account_balance(UNALLOCATED_RECEIPTS) == Decimal("0.00")
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


def test_repeated_late_and_concurrent_results_book_once(initiator_daraja):
    invoice = InvoiceFactory(amount=Decimal("500.00"))
    receipt = paid(invoice.number, "500")
    refund = refund_request(receipt=receipt, reason="Duplicate payment", by=None)
    assert settled(refund)
    delivered = callback_delivered(initiator_daraja, "refund_result")
    url = reverse("refund-result", args=["test-webhook-token"])

    def deliver(_):
        return Client().post(url, json.dumps(delivered.payload), content_type="application/json").status_code

    results, errors = run_in_threads(4, deliver)
    assert errors == [] and results == [200] * 4
    timeout = {"Result": {**delivered.payload["Result"], "ResultCode": 1}}
    timeout_url = reverse("refund-timeout", args=["test-webhook-token"])
    assert Client().post(timeout_url, json.dumps(timeout), content_type="application/json").status_code == 200
    assert MpesaRefund.objects.get().state == RefundState.COMPLETED
    assert JournalEntry.objects.filter(reverses__isnull=False).count() == 1
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    statuses = list(
        receipt.webhook_logs.model.objects.filter(
            kind__in=[WebhookKind.REFUND_RESULT, WebhookKind.REFUND_TIMEOUT]
        )
        .order_by("pk")
        .values_list("status", flat=True)
    )
    assert statuses == [WebhookStatus.PROCESSED] + [WebhookStatus.DUPLICATE] * 5
    assert ledger_verify()["is_valid"]


def test_two_clerks_refunding_one_receipt_at_once_send_one_reversal(initiator_daraja):
    invoice = InvoiceFactory(amount=Decimal("700.00"))
    receipt = paid(invoice.number, "700")
    results, errors = run_in_threads(
        3, lambda i: refund_request(receipt=receipt, reason=f"clerk {i}", by=None)
    )
    assert len(results) == 1 and len(errors) == 2
    assert all(isinstance(e, RefundError) and "already with Safaricom" in str(e) for e in errors)
    assert settled(results[0])
    assert MpesaRefund.objects.count() == 1
    assert account_balance(MPESA_CASH) == Decimal("0.00")


def test_a_refused_reversal_changes_nothing_and_can_be_asked_again(initiator_daraja, settings):
    invoice = InvoiceFactory(amount=Decimal("300.00"))
    receipt = paid(invoice.number, "300")
    settings.MPESA_INITIATOR_PASSWORD = "expired-after-90-days"
    refund = refund_request(receipt=receipt, reason="Customer asked", by=None)
    assert settled(refund)
    refund.refresh_from_db()
    assert (refund.state, refund.result_code) == (RefundState.FAILED, "2001")
    assert account_balance(MPESA_CASH) == Decimal("300.00")

    settings.MPESA_INITIATOR_PASSWORD = initiator_daraja.state.initiator_password
    again = refund_request(receipt=receipt, reason="Customer asked", by=None)
    assert settled(again)
    assert MpesaRefund.objects.get(pk=again.pk).state == RefundState.COMPLETED
    assert account_balance(MPESA_CASH) == Decimal("0.00")


def test_a_timed_out_reversal_is_unknown_until_asked_again(initiator_daraja):
    invoice = InvoiceFactory(amount=Decimal("400.00"))
    receipt = paid(invoice.number, "400")
    initiator_daraja.state.reversal_times_out = True  # Safaricom reversed it, but told us only "expired"
    refund = refund_request(receipt=receipt, reason="Customer asked", by=None)
    assert settled(refund)
    assert MpesaRefund.objects.get(pk=refund.pk).state == RefundState.TIMED_OUT
    assert account_balance(MPESA_CASH) == Decimal("400.00")

    initiator_daraja.state.reversal_times_out = False
    again = refund_request(receipt=receipt, reason="Customer asked", by=None)
    assert settled(again)
    again.refresh_from_db()
    assert (again.state, again.result_code) == (RefundState.COMPLETED, "R000001")  # "already reversed"
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


def test_a_reversal_whose_booking_became_impossible_is_kept_for_review(initiator_daraja):
    invoice = InvoiceFactory(amount=Decimal("100.00"))
    receipt = paid(invoice.number, "600")  # KES 500 becomes credit
    initiator_daraja.state.callback_delay = 1.0
    refund = refund_request(receipt=receipt, reason="Overpaid", by=None)
    term2 = invoice_create(
        customer=invoice.customer,
        lines=[InvoiceLineInput(description="Term 2", quantity=1, unit_price="500.00")],
        due_date=date.today(),
        by=None,
    )  # the credit is spent before Safaricom answers
    assert settled(refund)
    refund.refresh_from_db()
    assert refund.state == RefundState.NEEDS_REVIEW and "has been used since" in refund.result_desc
    receipt.refresh_from_db()
    assert receipt.status != ReceiptStatus.REFUNDED
    assert account_balance(MPESA_CASH) == Decimal("600.00")  # nothing half-booked...
    (error,) = ledger_verify()["errors"]  # ...and the books say they are wrong until it is sorted out
    assert error.startswith(f"M-Pesa receipt {receipt.trans_id} was reversed by Safaricom but is still")
    with pytest.raises(RefundError, match="already with Safaricom"):
        refund_request(receipt=receipt, reason="again", by=None)
    with pytest.raises(ReceiptAssignmentError, match="cannot move"):
        receipt_reallocate(receipt=receipt, reference=invoice.customer.code, reason="x", by=None)

    with pytest.raises(RefundError, match="Still cannot book"):
        refund_book_again(refund=refund, by=None)
    invoice_void(invoice=term2, reason="Issued in error", by=None)  # the credit comes back
    refund_book_again(refund=refund, by=None)
    assert MpesaRefund.objects.get(pk=refund.pk).state == RefundState.COMPLETED
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


def test_a_result_that_failed_to_process_is_booked_by_the_retry(initiator_daraja, monkeypatch):
    invoice = InvoiceFactory(amount=Decimal("650.00"))
    receipt = paid(invoice.number, "650")

    def outage(refund):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("mpesa.services.refund._book", outage)
    refund = refund_request(receipt=receipt, reason="Paid twice", by=None)
    assert wait_for(
        lambda: WebhookLog.objects.filter(kind=WebhookKind.REFUND_RESULT, status="FAILED").exists()
    )
    assert MpesaRefund.objects.get(pk=refund.pk).state == RefundState.REQUESTED  # rolled back whole
    monkeypatch.undo()
    call_command("mpesa_retry_failed")
    assert MpesaRefund.objects.get(pk=refund.pk).state == RefundState.COMPLETED
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


def test_a_late_success_for_an_earlier_request_settles_the_receipt_once(initiator_daraja):
    invoice = InvoiceFactory(amount=Decimal("550.00"))
    receipt = paid(invoice.number, "550")
    initiator_daraja.state.reversal_times_out = True  # Safaricom reverses it but tells us only "expired"
    first = refund_request(receipt=receipt, reason="Paid twice", by=None)
    assert settled(first)
    expired = callback_delivered(initiator_daraja, "refund_timeout")
    initiator_daraja.state.reversal_times_out, initiator_daraja.state.callback_delay = False, 1.0
    second = refund_request(receipt=receipt, reason="Paid twice", by=None)

    late = {
        "Result": {**expired.payload["Result"], "ResultCode": 0, "ResultDesc": "ok"}
    }  # the first, after all
    url = reverse("refund-result", args=["test-webhook-token"])
    assert Client().post(url, json.dumps(late), content_type="application/json").status_code == 200
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.state == RefundState.COMPLETED
    assert second.state == RefundState.FAILED and "Superseded" in second.result_desc
    assert wait_for(
        lambda: "Already refunded" in MpesaRefund.objects.get(pk=second.pk).result_desc
    )  # R000001
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert JournalEntry.objects.filter(reverses__isnull=False).count() == 1
    assert ledger_verify()["is_valid"]


def test_an_accountant_refunds_from_the_admin_and_an_auditor_cannot(initiator_daraja):
    invoice = InvoiceFactory(amount=Decimal("250.00"))
    receipt = paid(invoice.number, "250")
    accountant = UserFactory(is_staff=True)
    accountant.groups.add(Group.objects.get(name="Accountant"))
    client = Client()
    client.force_login(accountant)
    listing = reverse("admin:mpesa_mpesareceipt_changelist")
    action = {"action": "refund", "_selected_action": [receipt.pk]}
    assert "Ask Safaricom to reverse" in client.post(listing, action).content.decode()
    done = client.post(listing, {**action, "confirm": "yes", "reason": "Paid twice"}, follow=True)
    assert f"Asked Safaricom to reverse {receipt.trans_id}" in done.content.decode()
    assert wait_for(lambda: MpesaRefund.objects.filter(state=RefundState.COMPLETED).exists())
    assert "Reversed" in client.get(reverse("admin:mpesa_mpesarefund_changelist")).content.decode()

    auditor = UserFactory(is_staff=True)
    auditor.groups.add(Group.objects.get(name="Auditor"))
    client.force_login(auditor)
    assert 'value="refund"' not in client.get(listing).content.decode()
    client.post(listing, {**action, "confirm": "yes", "reason": "x"})
    assert MpesaRefund.objects.count() == 1


def test_a_result_that_overtakes_the_acknowledgement_still_finds_its_refund(initiator_daraja):
    invoice = InvoiceFactory(amount=Decimal("350.00"))
    receipt = paid(invoice.number, "350")
    pending = MpesaRefund.objects.create(receipt=receipt, amount=receipt.amount, reason="Paid twice")
    result = {
        "Result": {
            "OriginatorConversationID": "not-yet-saved",
            "ConversationID": "AG_not_yet_saved",
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "TransactionID": "TKR0000001",
            "ResultParameters": {
                "ResultParameter": {"Key": "OriginalTransactionID", "Value": receipt.trans_id}
            },
        }
    }
    url = reverse("refund-result", args=["test-webhook-token"])
    assert Client().post(url, json.dumps(result), content_type="application/json").status_code == 200
    pending.refresh_from_db()
    assert pending.state == RefundState.COMPLETED and pending.reversal_receipt_number == "TKR0000001"
    assert account_balance(MPESA_CASH) == Decimal("0.00")
    assert ledger_verify()["is_valid"]


def test_a_reversal_that_never_went_out_is_failed_not_unknown(initiator_daraja, settings):
    invoice = InvoiceFactory(amount=Decimal("450.00"))
    receipt = paid(invoice.number, "450")
    settings.MPESA_CALLS_PER_PROCESS = 0  # this process already waits on Safaricom for all it may
    with pytest.raises(RefundError, match="nothing was sent"):
        refund_request(receipt=receipt, reason="Paid twice", by=None)
    initiator_daraja.stop()
    settings.MPESA_CALLS_PER_PROCESS = 1
    with pytest.raises(RefundError, match="did not take the reversal"):  # connection refused
        refund_request(receipt=receipt, reason="Paid twice", by=None)
    refunds = MpesaRefund.objects.order_by("pk")
    assert [(r.state, r.result_code) for r in refunds] == [
        (RefundState.FAILED, "busy"),
        (RefundState.FAILED, "network"),
    ]
    assert account_balance(MPESA_CASH) == Decimal("450.00") and ledger_verify()["is_valid"]


def test_no_answer_from_safaricom_is_unknown_and_a_late_result_still_books(
    initiator_daraja, safaricom_hanging
):
    invoice = InvoiceFactory(amount=Decimal("450.00"))
    receipt = paid(invoice.number, "450")
    safaricom_hanging()  # the request may or may not have reached Safaricom
    with pytest.raises(RefundError, match="did not answer"):
        refund_request(receipt=receipt, reason="Paid twice", by=None)
    refund = MpesaRefund.objects.get()
    assert (refund.state, refund.result_code) == (RefundState.TIMED_OUT, "network")
    assert account_balance(MPESA_CASH) == Decimal("450.00")

    late = {"Result": {"OriginatorConversationID": "never-seen", "ResultCode": 0, "ResultDesc": "ok",
                       "TransactionID": "TKR0000002", "ResultParameters": {"ResultParameter": [
                           {"Key": "OriginalTransactionID", "Value": receipt.trans_id}]}}}  # fmt: skip
    url = reverse("refund-result", args=["test-webhook-token"])
    assert Client().post(url, json.dumps(late), content_type="application/json").status_code == 200
    refund.refresh_from_db()
    assert refund.state == RefundState.COMPLETED
    assert account_balance(MPESA_CASH) == Decimal("0.00")
