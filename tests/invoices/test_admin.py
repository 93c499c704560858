from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from customers.models import Customer
from invoices.models import Invoice, InvoiceStatus
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory, pay

pytestmark = pytest.mark.django_db

INVOICES = reverse("admin:invoices_invoice_changelist")


def test_customer_list_shows_owed_credit_and_balance_and_finds_a_phone_typed_locally(admin_client):
    customer = CustomerFactory(name="Otieno Hardware Ltd", phone="0722000111")
    InvoiceFactory(customer=customer, amount=Decimal("15600.00"))
    page = admin_client.get(
        reverse("admin:customers_customer_changelist"), {"q": "0722 000 111"}
    ).content.decode()
    assert "Otieno Hardware Ltd" in page
    assert page.count("KES 15,600.00") == 2  # owed and balance
    assert "Statement" in page


def test_adding_a_customer_in_the_admin_gives_the_next_code_and_a_normalised_phone(admin_client):
    response = admin_client.post(
        reverse("admin:customers_customer_add"),
        {"name": "Kiprono Dairy", "phone": "+254 701 999 888", "email": "", "is_active": "on"},
    )
    assert response.status_code == 302
    customer = Customer.objects.get(name="Kiprono Dairy")
    assert customer.code.startswith("CUST-") and customer.phone == "254701999888"
    bad = admin_client.post(
        reverse("admin:customers_customer_add"), {"name": "X", "phone": "999", "is_active": "on"}
    )
    assert "is not a Kenyan mobile number" in bad.content.decode()


def test_customer_page_lists_invoices_read_only(admin_client):
    invoice = InvoiceFactory()
    page = admin_client.get(
        reverse("admin:customers_customer_change", args=[invoice.customer_id])
    ).content.decode()
    assert invoice.number in page


def test_statement_page_prints_and_exports(admin_client):
    invoice = InvoiceFactory(amount=Decimal("2500.00"))
    pay(invoice.number, "1000.00")
    url = reverse("customer-statement", args=[invoice.customer_id])
    html = admin_client.get(url).content.decode()
    assert "Statement of account" in html and "1,500.00" in html and "Amount due" in html
    csv = admin_client.get(url, {"format": "csv"})
    assert csv["Content-Type"].startswith("text/csv")
    assert "Closing balance,,,,1500.00" in csv.content.decode()
    assert admin_client.get(url, {"start": "2026-05-01", "end": "2026-04-01"}).status_code == 400


def test_statement_is_for_staff_only(client):
    invoice = InvoiceFactory()
    response = client.get(reverse("customer-statement", args=[invoice.customer_id]))
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_issue_an_invoice_from_the_admin(admin_client):
    customer = CustomerFactory()
    today = timezone.localdate()
    form = {
        "customer": customer.pk,
        "issue_date": today.isoformat(),
        "due_date": (today + timedelta(days=30)).isoformat(),
        "lines-TOTAL_FORMS": "3",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "1",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-description": "School fees, Term 2",
        "lines-0-quantity": "1",
        "lines-0-unit_price": "45000",
        "lines-1-description": "Lunch programme",
        "lines-1-quantity": "60",
        "lines-1-unit_price": "120.50",
    }
    response = admin_client.post(reverse("admin:invoices_invoice_add"), form)
    assert response.status_code == 302
    invoice = Invoice.objects.get(customer=customer)
    assert invoice.total == Decimal("52230.00") and invoice.lines.count() == 2
    past = admin_client.post(reverse("admin:invoices_invoice_add"), {**form, "due_date": "2000-01-01"})
    assert "before the issue date" in past.content.decode()
    assert Invoice.objects.count() == 1


def test_invoices_are_read_only_and_void_asks_for_a_reason(admin_client):
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    pay(invoice.number, "400.00")
    assert (
        admin_client.post(reverse("admin:invoices_invoice_change", args=[invoice.pk]), {}).status_code == 403
    )
    action = {"action": "void_invoices", "_selected_action": [invoice.pk]}
    asked = admin_client.post(INVOICES, action)
    assert "becomes the customer's credit" in asked.content.decode()
    admin_client.post(INVOICES, {**action, "confirm": "yes", "reason": "Customer cancelled the order"})
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.VOID and invoice.void_reason == "Customer cancelled the order"


def test_staff_without_the_void_permission_cannot_void(client):
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_invoice"))
    client.force_login(clerk)
    invoice = InvoiceFactory()
    client.post(
        INVOICES,
        {"action": "void_invoices", "_selected_action": [invoice.pk], "confirm": "yes", "reason": "x"},
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.UNPAID


def test_payments_and_allocations_are_listed_read_only(admin_client):
    invoice = InvoiceFactory()
    outcome = pay(invoice.number, "100.00", source_id="RKT9ADMIN1")
    assert "RKT9ADMIN1" in admin_client.get(reverse("admin:invoices_payment_changelist")).content.decode()
    assert admin_client.get(reverse("admin:invoices_payment_add")).status_code == 403
    detail = admin_client.get(
        reverse("admin:invoices_payment_change", args=[outcome.payment.pk])
    ).content.decode()
    assert invoice.number in detail
    assert admin_client.get(reverse("admin:invoices_allocation_changelist")).status_code == 200


def test_an_unpaid_invoices_lines_can_be_corrected_in_the_admin(admin_client):
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    page = admin_client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])).content.decode()
    url = reverse("admin:invoices_invoice_correct_lines", args=[invoice.pk])
    assert url in page
    form = admin_client.get(url).content.decode()
    assert "School fees" in form
    response = admin_client.post(
        url,
        {
            "lines-TOTAL_FORMS": "4",
            "lines-INITIAL_FORMS": "1",
            "lines-MIN_NUM_FORMS": "1",
            "lines-MAX_NUM_FORMS": "1000",
            "lines-0-description": "School fees",
            "lines-0-quantity": "1",
            "lines-0-unit_price": "900",
            "lines-1-description": "Swimming",
            "lines-1-quantity": "2",
            "lines-1-unit_price": "150",
        },
    )
    assert response.status_code == 302
    invoice.refresh_from_db()
    assert invoice.total == Decimal("1200.00") and invoice.lines.count() == 2


def test_a_paid_invoice_offers_no_correction(admin_client):
    invoice = InvoiceFactory(amount=Decimal("1000.00"))
    pay(invoice.number, "10.00")
    page = admin_client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])).content.decode()
    assert "Correct the lines" not in page and "void it to cancel" in page
    url = reverse("admin:invoices_invoice_correct_lines", args=[invoice.pk])
    response = admin_client.post(
        url,
        {
            "lines-TOTAL_FORMS": "1",
            "lines-INITIAL_FORMS": "1",
            "lines-MIN_NUM_FORMS": "1",
            "lines-MAX_NUM_FORMS": "1000",
            "lines-0-description": "Cheaper",
            "lines-0-quantity": "1",
            "lines-0-unit_price": "1",
        },
    )
    assert "only unpaid invoices can be corrected" in response.content.decode()
    invoice.refresh_from_db()
    assert invoice.total == Decimal("1000.00")
