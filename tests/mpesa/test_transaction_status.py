"""Transaction Status end to end: the question goes to the fake Daraja over HTTP with a real RSA
security credential; the answer comes back to our result URL on the live server."""

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import load_pem_x509_certificate
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from mpesa.fake_daraja import FakeDaraja
from mpesa.models import (
    MpesaReceipt,
    StatusQueryState,
    TransactionStatusQuery,
    WebhookKind,
    WebhookLog,
    WebhookStatus,
)
from mpesa.security_credential import SecurityCredentialError, security_credential
from mpesa.services.transaction_status import TransactionStatusError, transaction_status_request
from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory
from tests.mpesa.test_stk import callback_delivered, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def paid(initiator_daraja, amount="800"):
    """A PayBill payment Safaricom made and told us about; returns our receipt."""
    invoice = InvoiceFactory()
    call_command("mpesa_simulate", "--amount", amount, "--account", invoice.number)
    assert wait_for(lambda: MpesaReceipt.objects.exists())
    return MpesaReceipt.objects.get()


def answered(query):
    return wait_for(
        lambda: TransactionStatusQuery.objects.get(pk=query.pk).state != StatusQueryState.REQUESTED
    )


def test_the_credential_is_the_password_under_pkcs1_v15_with_the_certificates_key():
    fake = FakeDaraja()
    credential = security_credential(password="Safaricom999!*!", certificate=fake.certificate_pem)
    secret = base64.b64decode(credential)
    assert fake.private_key.decrypt(secret, padding.PKCS1v15()) == b"Safaricom999!*!"
    der = load_pem_x509_certificate(fake.certificate_pem).public_bytes(serialization.Encoding.DER)
    from_der = security_credential(password="pw", certificate=der)
    assert fake.private_key.decrypt(base64.b64decode(from_der), padding.PKCS1v15()) == b"pw"
    # PKCS#1 v1.5 is randomised: the same password never gives the same credential twice.
    assert credential != security_credential(password="Safaricom999!*!", certificate=fake.certificate_pem)
    with pytest.raises(SecurityCredentialError, match=r"Not an X\.509 certificate"):
        security_credential(password="pw", certificate=b"not a certificate")
    with pytest.raises(SecurityCredentialError, match="MPESA_INITIATOR_PASSWORD"):
        security_credential(password="", certificate=fake.certificate_pem)


def test_safaricoms_answer_is_recorded_beside_our_booking(initiator_daraja):
    receipt = paid(initiator_daraja)
    accountant = UserFactory()
    query = transaction_status_request(receipt_number=f" {receipt.trans_id.lower()} ", by=accountant)
    assert query.state == StatusQueryState.REQUESTED and query.originator_conversation_id
    assert answered(query)
    query.refresh_from_db()
    assert query.state == StatusQueryState.ANSWERED
    assert query.receipt == receipt and query.requested_by == accountant
    assert query.transaction_status == "Completed"
    assert query.amount == receipt.amount and query.amount_differs is False
    assert "JOHN DOE" in query.debit_party_name
    assert query.result_parameters["ReceiptNo"] == receipt.trans_id
    assert query.result_log.status == WebhookStatus.PROCESSED
    # Asking moves no money.
    assert MpesaReceipt.objects.count() == 1


def test_a_repeated_or_late_answer_changes_nothing(initiator_daraja):
    receipt = paid(initiator_daraja)
    query = transaction_status_request(receipt_number=receipt.trans_id, by=None)
    assert answered(query)
    first = TransactionStatusQuery.objects.get(pk=query.pk)
    delivered = callback_delivered(initiator_daraja, "status_result")
    tampered = json.loads(json.dumps(delivered.payload))
    tampered["Result"]["ResultCode"] = 2001
    for body in (delivered.payload, tampered):
        response = Client().post(
            reverse("status-result", args=["test-webhook-token"]),
            json.dumps(body),
            content_type="application/json",
        )
        assert response.status_code == 200
    again = TransactionStatusQuery.objects.get(pk=query.pk)
    assert (again.state, again.answered_at, again.result_code) == (first.state, first.answered_at, "0")
    logs = WebhookLog.objects.filter(kind=WebhookKind.STATUS_RESULT).order_by("pk")
    assert [log.status for log in logs] == [
        WebhookStatus.PROCESSED,
        WebhookStatus.DUPLICATE,
        WebhookStatus.DUPLICATE,
    ]


def test_a_wrong_initiator_password_is_refused_by_safaricom(initiator_daraja, settings):
    receipt = paid(initiator_daraja)
    settings.MPESA_INITIATOR_PASSWORD = "last-quarters-password"
    query = transaction_status_request(receipt_number=receipt.trans_id, by=None)
    assert answered(query)
    query.refresh_from_db()
    assert (query.state, query.result_code) == (StatusQueryState.REFUSED, "2001")
    assert query.amount is None


def test_a_receipt_safaricom_never_saw(initiator_daraja):
    query = transaction_status_request(receipt_number="TZZ0000000", by=None)
    assert answered(query)
    query.refresh_from_db()
    assert query.state == StatusQueryState.REFUSED and query.receipt is None
    assert query.result_desc == "The OriginalTransactionID is invalid."


def test_a_queue_timeout_leaves_the_answer_unknown(initiator_daraja):
    receipt = paid(initiator_daraja)
    initiator_daraja.state.status_times_out = True
    query = transaction_status_request(receipt_number=receipt.trans_id, by=None)
    assert answered(query)
    query.refresh_from_db()
    assert query.state == StatusQueryState.TIMED_OUT
    assert query.result_log.kind == WebhookKind.STATUS_TIMEOUT


def test_a_question_safaricom_did_not_answer_stays_asked_and_its_late_answer_is_recorded(
    initiator_daraja, safaricom_hanging
):
    receipt = paid(initiator_daraja)
    safaricom_hanging()
    with pytest.raises(TransactionStatusError, match="will be recorded if it comes"):
        transaction_status_request(receipt_number=receipt.trans_id, by=None)
    query = TransactionStatusQuery.objects.get()
    assert query.state == StatusQueryState.REQUESTED and "did not answer within" in query.result_desc
    late = {"Result": {"ResultType": 0, "ResultCode": 0, "ResultDesc": "ok",
                       "OriginatorConversationID": "never-seen", "ConversationID": "AG_late",
                       "TransactionID": "TKS0000001", "ResultParameters": {"ResultParameter": [
                           {"Key": "ReceiptNo", "Value": receipt.trans_id},
                           {"Key": "TransactionStatus", "Value": "Completed"},
                           {"Key": "Amount", "Value": 800}]}}}  # fmt: skip
    url = reverse("status-result", args=["test-webhook-token"])
    assert Client().post(url, json.dumps(late), content_type="application/json").status_code == 200
    query.refresh_from_db()
    assert (query.state, query.transaction_status, query.amount) == (
        StatusQueryState.ANSWERED,
        "Completed",
        receipt.amount,
    )


def test_bad_questions_and_refusals_are_explained(initiator_daraja, settings):
    with pytest.raises(TransactionStatusError, match="is not an M-Pesa receipt number"):
        transaction_status_request(receipt_number="TK-1; drop", by=None)
    settings.MPESA_SHORTCODE = ""  # Safaricom refuses the request itself
    with pytest.raises(TransactionStatusError, match="Safaricom did not take the question"):
        transaction_status_request(receipt_number="TKA1234567", by=None)
    refused = TransactionStatusQuery.objects.get()
    assert refused.state == StatusQueryState.REFUSED and refused.result_code == "400.002.02"
    settings.MPESA_CERTIFICATE_PATH = "/nowhere/cert.cer"
    with pytest.raises(SecurityCredentialError, match="Cannot read the M-Pesa certificate"):
        transaction_status_request(receipt_number="TKA1234567", by=None)
    assert TransactionStatusQuery.objects.count() == 1


def test_result_callbacks_are_protected_and_logged(initiator_daraja):
    url = reverse("status-result", args=["test-webhook-token"])
    assert (
        Client()
        .post(reverse("status-result", args=["wrong"]), "{}", content_type="application/json")
        .status_code
        == 404
    )
    not_json = Client().post(url, "<xml/>", content_type="application/json")
    assert not_json.status_code == 400
    stranger = {"Result": {"OriginatorConversationID": "not-ours", "ResultCode": 0, "ResultDesc": "ok"}}
    assert Client().post(url, json.dumps(stranger), content_type="application/json").status_code == 400
    outsider = Client(REMOTE_ADDR="203.0.113.9").post(
        url, json.dumps(stranger), content_type="application/json"
    )
    assert outsider.status_code == 403
    statuses = list(WebhookLog.objects.order_by("pk").values_list("status", flat=True))
    assert statuses == [WebhookStatus.REJECTED, WebhookStatus.REJECTED, WebhookStatus.REFUSED]


def test_an_accountant_asks_from_the_admin_and_an_auditor_cannot(initiator_daraja):
    receipt = paid(initiator_daraja)
    accountant = UserFactory(is_staff=True)
    accountant.groups.add(Group.objects.get(name="Accountant"))
    client = Client()
    client.force_login(accountant)
    listing = reverse("admin:mpesa_mpesareceipt_changelist")
    done = client.post(listing, {"action": "ask_status", "_selected_action": [receipt.pk]}, follow=True)
    assert f"Asked Safaricom about {receipt.trans_id}" in done.content.decode()
    add = reverse("admin:mpesa_transactionstatusquery_add")
    assert "Ask Safaricom" in client.get(add).content.decode()
    client.post(add, {"receipt_number": receipt.trans_id})
    assert wait_for(
        lambda: not TransactionStatusQuery.objects.filter(state=StatusQueryState.REQUESTED).exists()
    )
    page = client.get(reverse("admin:mpesa_transactionstatusquery_changelist")).content.decode()
    assert page.count("Completed") >= 2

    auditor = UserFactory(is_staff=True)
    auditor.groups.add(Group.objects.get(name="Auditor"))
    client.force_login(auditor)
    assert client.get(add).status_code == 403
    assert client.get(reverse("admin:mpesa_transactionstatusquery_changelist")).status_code == 200
