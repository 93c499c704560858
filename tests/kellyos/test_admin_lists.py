"""Admin search answered from indexes finds what Django's own search finds, across related tables."""

from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from invoices.models import Invoice
from kellyos.admin_lists import EstimatedCountPaginator, ProbedDatesQuerySet
from ledger.models import JournalEntry
from mpesa.models import MpesaReceipt
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory, pay
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db

CONFIRM = "/api/webhooks/c2b/test-webhook-token/confirmation"


def confirm(trans_id, amount, account, first_name="NICHOLAS"):
    body = payloads.c2b(trans_id=trans_id, amount=amount, account=account, first_name=first_name)
    Client().post(CONFIRM, data=payloads.body(body), content_type="application/json")


@pytest.fixture
def books():
    wanjiku = CustomerFactory(name="Wanjiku Agrovet")
    otieno = CustomerFactory(name="Otieno Hardware")
    paid = InvoiceFactory(customer=wanjiku, amount=Decimal("500.00"))
    InvoiceFactory(customer=otieno, amount=Decimal("800.00"))
    confirm("TKSEARCH01", "500", paid.number, first_name="MARY")
    confirm("TKSEARCH02", "300", otieno.code.lower(), first_name="PETER")
    confirm("TKSEARCH03", "100", "nobody", first_name="JANE")
    return {"wanjiku": wanjiku, "otieno": otieno, "paid": paid}


def listed(admin_client, name, q):
    page = admin_client.get(reverse(f"admin:{name}_changelist"), {"q": q}).content.decode()
    return page


def test_receipts_are_found_by_receipt_number_account_payer_and_the_customers_code_or_name(
    admin_client, books
):
    receipts = "mpesa_mpesareceipt"
    assert "TKSEARCH01" in listed(admin_client, receipts, "search01")  # part of the receipt number
    page = listed(admin_client, receipts, "agrovet")  # the customer's name
    assert "TKSEARCH01" in page and "TKSEARCH02" not in page
    page = listed(admin_client, receipts, books["otieno"].code)  # the customer's code
    assert "TKSEARCH02" in page and "TKSEARCH01" not in page
    assert "TKSEARCH03" in listed(admin_client, receipts, "NOBOD")  # what the payer typed, any case
    page = listed(admin_client, receipts, "peter tksearch")  # every word must match somewhere
    assert "TKSEARCH02" in page and "TKSEARCH01" not in page and "TKSEARCH03" not in page


def test_related_searches_on_invoices_payments_allocations_customers_and_entries(admin_client, books):
    paid = books["paid"]
    assert paid.number in listed(admin_client, "invoices_invoice", "wanjiku")
    assert "TKSEARCH01" in listed(admin_client, "invoices_payment", "Agrovet")
    assert "TKSEARCH01" in listed(admin_client, "invoices_allocation", books["wanjiku"].code)
    assert "Wanjiku Agrovet" in listed(admin_client, "customers_customer", paid.number)  # by its invoices
    assert "Otieno Hardware" not in listed(admin_client, "customers_customer", paid.number)
    assert "TKSEARCH02" in listed(admin_client, "ledger_journalentry", "otieno hardware")  # the memo
    assert "TKSEARCH03" in listed(admin_client, "mpesa_webhooklog", "TKSEARCH03")


def test_lists_are_counted_exactly_while_small(rf, admin_user, books):
    request = rf.get("/")
    request.user = admin_user
    model_admin = admin.site._registry[Invoice]
    changelist = model_admin.get_changelist_instance(request)
    assert isinstance(changelist, ChangeList)
    assert changelist.paginator.__class__ is EstimatedCountPaginator
    assert changelist.result_count == 2


def test_the_date_drill_down_finds_the_periods_django_finds(books):
    for model, field in [(MpesaReceipt, "trans_time"), (JournalEntry, "posted_at")]:
        plain = model.objects.all()
        probed = model.objects.all()
        probed.__class__ = ProbedDatesQuerySet
        for kind in ["year", "month", "day"]:
            assert probed.datetimes(field, kind) == list(plain.datetimes(field, kind))
    invoices = Invoice.objects.all()
    probed_invoices = Invoice.objects.all()
    probed_invoices.__class__ = ProbedDatesQuerySet
    for kind in ["year", "month", "day"]:
        assert probed_invoices.dates("issue_date", kind) == list(invoices.dates("issue_date", kind))


def test_drilling_down_the_receipts_by_date(admin_client, books):
    receipts = reverse("admin:mpesa_mpesareceipt_changelist")
    today = timezone.localdate()
    for query in [
        {},
        {"trans_time__year": today.year},
        {"trans_time__year": today.year, "trans_time__month": today.month},
    ]:
        page = admin_client.get(receipts, query).content.decode()
        assert "TKSEARCH01" in page


def test_the_payment_source_filter_offers_every_channel(admin_client, books):
    pay(books["otieno"].code, Decimal("10.00"))  # source "test"
    page = admin_client.get(reverse("admin:invoices_payment_changelist")).content.decode()
    assert 'href="?source=mpesa"' in page and 'href="?source=test"' in page
