"""Failures mid-booking, retries, and the same receipt from many threads and processes at once."""

import multiprocessing
from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client

from invoices.models import InvoiceStatus, Payment
from ledger.chart import MPESA_CASH
from ledger.models import JournalEntry
from ledger.selectors import account_balance, ledger_verify
from mpesa.callbacks import c2b_payment_parse
from mpesa.models import MpesaReceipt, WebhookLog, WebhookStatus
from mpesa.services.c2b import c2b_confirmation_book
from tests.invoices.factories import InvoiceFactory
from tests.mpesa import payloads
from tests.threads import run_in_threads

CONFIRM = "/api/webhooks/c2b/test-webhook-token/confirmation"
SUCCESS = {"ResultCode": 0, "ResultDesc": "Success"}
D = Decimal


def confirm(payload):
    return Client().post(CONFIRM, data=payloads.body(payload), content_type="application/json")


@pytest.mark.django_db(transaction=True)
def test_a_failure_mid_booking_leaves_a_failed_log_and_nothing_booked_then_the_retry_books_once():
    invoice = InvoiceFactory(amount=D("1000.00"))
    with connection.cursor() as cursor:  # the database refuses payments for a moment
        cursor.execute(
            "CREATE FUNCTION test_refuse_payment() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'disk full (injected)'; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_refuse_payment BEFORE INSERT ON invoices_payment"
            " FOR EACH ROW EXECUTE FUNCTION test_refuse_payment()"
        )
    try:
        response = confirm(payloads.c2b(trans_id="TKFAIL0001", amount="1000", account=invoice.number))
        assert response.json() == SUCCESS  # the raw body is ours; the retry will book it
        log = WebhookLog.objects.get()
        assert log.status == WebhookStatus.FAILED and "disk full (injected)" in log.detail
        assert not MpesaReceipt.objects.exists() and not Payment.objects.exists()
        assert not JournalEntry.objects.filter(cause_kind="receipt").exists()
        assert account_balance(MPESA_CASH) == D("0.00")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_refuse_payment ON invoices_payment")
            cursor.execute("DROP FUNCTION test_refuse_payment()")

    call_command("mpesa_retry_failed")
    call_command("mpesa_retry_failed")  # a second run finds nothing left to do

    log.refresh_from_db()
    assert log.status == WebhookStatus.PROCESSED and log.attempts == 2
    assert MpesaReceipt.objects.count() == 1 and Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    assert ledger_verify()["is_valid"]


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_delivering_one_trans_id_book_one_receipt_and_one_entry():
    invoice = InvoiceFactory(amount=D("5000.00"))
    payload = payloads.c2b(trans_id="TKTHREAD01", amount="1200", account=invoice.number)

    responses, errors = run_in_threads(20, lambda index: confirm(payload))

    assert errors == []
    assert all(response.json() == SUCCESS for response in responses)
    assert MpesaReceipt.objects.count() == 1
    assert JournalEntry.objects.filter(cause_kind="receipt", cause_id="TKTHREAD01").count() == 1
    assert sorted(WebhookLog.objects.values_list("status", flat=True)) == sorted(
        [WebhookStatus.PROCESSED] + [WebhookStatus.DUPLICATE] * 19
    )
    assert account_balance(MPESA_CASH) == D("1200.00")
    assert ledger_verify()["is_valid"]


def _deliver_in_another_process(payload, results):
    connection.close()  # a fresh connection of this process's own
    results.put(confirm(payload).json())
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_two_processes_delivering_one_trans_id_book_it_once():
    invoice = InvoiceFactory(amount=D("5000.00"))
    payload = payloads.c2b(trans_id="TKPROCESS1", amount="700", account=invoice.number)
    connection.close()
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [
        context.Process(target=_deliver_in_another_process, args=(payload, results)) for _ in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    assert [results.get(timeout=5) for _ in processes] == [SUCCESS, SUCCESS]
    assert MpesaReceipt.objects.count() == 1
    assert JournalEntry.objects.filter(cause_kind="receipt", cause_id="TKPROCESS1").count() == 1
    assert ledger_verify()["is_valid"]


@contextmanager
def deadlocks_injected(*, times):
    """PostgreSQL aborts the next `times` payment inserts as a deadlock's victim (SQLSTATE 40P01).
    A sequence counts them: it is not rolled back with the aborted transaction."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE SEQUENCE test_deadlock_count")
        cursor.execute(
            "CREATE FUNCTION test_deadlock() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            f" IF nextval('test_deadlock_count') <= {times} THEN"
            " RAISE EXCEPTION 'deadlock detected (injected)' USING ERRCODE = '40P01'; END IF;"
            " RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER test_deadlock BEFORE INSERT ON invoices_payment"
            " FOR EACH ROW EXECUTE FUNCTION test_deadlock()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_deadlock ON invoices_payment")
            cursor.execute("DROP FUNCTION test_deadlock()")
            cursor.execute("DROP SEQUENCE test_deadlock_count")


@pytest.mark.django_db(transaction=True)
def test_a_deadlock_victim_is_booked_again_at_once_and_counted(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    invoice = InvoiceFactory(amount=D("1000.00"))
    with deadlocks_injected(times=1):
        response = confirm(payloads.c2b(trans_id="TKDEAD0001", amount="400", account=invoice.number))
    assert response.json() == SUCCESS
    log = WebhookLog.objects.get()
    assert (log.status, log.attempts, log.lock_conflict_retries) == (WebhookStatus.PROCESSED, 1, 1)
    assert MpesaReceipt.objects.count() == 1 and Payment.objects.count() == 1
    invoice.refresh_from_db()
    assert invoice.amount_paid == D("400.00")
    metrics = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    assert "kellyos_booking_lock_conflict_retries_total 1\n" in metrics
    assert ledger_verify()["is_valid"]


@pytest.mark.django_db(transaction=True)
def test_a_booking_that_keeps_deadlocking_is_left_failed_for_the_retry_path():
    invoice = InvoiceFactory(amount=D("1000.00"))
    with deadlocks_injected(times=3):
        response = confirm(payloads.c2b(trans_id="TKDEAD0002", amount="400", account=invoice.number))
    assert response.json() == SUCCESS  # the raw body is stored; mpesa_retry_failed books it
    log = WebhookLog.objects.get()
    assert (log.status, log.lock_conflict_retries) == (WebhookStatus.FAILED, 2)
    assert not MpesaReceipt.objects.exists() and not Payment.objects.exists()
    call_command("mpesa_retry_failed")
    log.refresh_from_db()
    assert log.status == WebhookStatus.PROCESSED and MpesaReceipt.objects.count() == 1
    assert ledger_verify()["is_valid"]


@pytest.mark.django_db(transaction=True)
def test_a_confirmation_another_runner_has_booked_meanwhile_is_left_as_it_is():
    invoice = InvoiceFactory(amount=D("1000.00"))
    payload = payloads.c2b(trans_id="TKRACE0001", amount="300", account=invoice.number)
    assert confirm(payload).json() == SUCCESS
    log = WebhookLog.objects.get()
    stale = WebhookLog.objects.get(pk=log.pk)
    stale.status = WebhookStatus.RECEIVED  # what a request that waited for the log's lock had read

    c2b_confirmation_book(log=stale, payment=c2b_payment_parse(payloads.body(payload)))

    log.refresh_from_db()
    assert (stale.status, log.status, log.attempts) == (WebhookStatus.PROCESSED, WebhookStatus.PROCESSED, 1)
    assert MpesaReceipt.objects.count() == 1 and Payment.objects.count() == 1
