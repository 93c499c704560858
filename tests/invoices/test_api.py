from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from customers.models import Customer
from invoices.models import Invoice
from ledger.models import JournalEntry
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory, pay

pytestmark = pytest.mark.django_db


ACCOUNTANT_PERMISSIONS = ["view_customer", "add_customer", "view_invoice", "add_invoice"]


def client_for(user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def api():
    accountant = UserFactory()
    accountant.user_permissions.add(*Permission.objects.filter(codename__in=ACCOUNTANT_PERMISSIONS))
    return client_for(accountant)


def test_the_api_needs_a_login():
    assert APIClient().get("/api/customers").status_code == 401
    assert APIClient().post("/api/invoices", {}, format="json").status_code == 401


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", "/api/customers"),
        ("post", "/api/customers"),
        ("get", "/api/invoices"),
        ("post", "/api/invoices"),
        ("get", "/api/customers/1/statement"),
    ],
)
def test_a_user_without_the_permissions_is_refused_and_nothing_is_written(method, url):
    customer = CustomerFactory()
    stranger = client_for(UserFactory())
    payload = {"name": "Someone", "customer": customer.code, "due_date": "2099-01-01", "lines": []}
    response = (
        getattr(stranger, method)(url, payload, format="json") if method == "post" else stranger.get(url)
    )
    assert response.status_code == 403
    assert Customer.objects.count() == 1 and not Invoice.objects.exists()


def test_create_a_customer_and_find_them_by_code(api):
    created = api.post("/api/customers", {"name": "Wanjiku Kamau", "phone": "0712 345 678"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["code"].startswith("CUST-") and body["phone"] == "254712345678"
    assert (body["owed"], body["credit"], body["balance"]) == ("0.00", "0.00", "0.00")

    number = int(body["code"].removeprefix("CUST-"))
    found = api.get("/api/customers", {"customerId": f"cust-{number:03d}"}).json()
    assert [c["code"] for c in found["results"]] == [body["code"]]


def test_bad_customer_input_gets_a_message_per_field_and_writes_nothing(api):
    response = api.post("/api/customers", {"name": " ", "phone": "12345", "email": "not-mail"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"name", "phone", "email"}
    assert not Customer.objects.exists()


def test_customer_balances_show_what_is_owed_and_the_credit(api):
    customer = CustomerFactory()
    InvoiceFactory(customer=customer, amount=Decimal("1000.00"))
    other = CustomerFactory()
    pay(other.code, "250.00")
    rows = {c["code"]: c for c in api.get("/api/customers").json()["results"]}
    assert (rows[customer.code]["owed"], rows[customer.code]["balance"]) == ("1000.00", "1000.00")
    assert (rows[other.code]["credit"], rows[other.code]["balance"]) == ("250.00", "-250.00")


def test_issue_an_invoice_with_lines(api):
    customer = CustomerFactory()
    due = (timezone.localdate() + timedelta(days=14)).isoformat()
    response = api.post(
        "/api/invoices",
        {
            "customer": customer.code.lower(),
            "due_date": due,
            "lines": [
                {"description": "Water, March", "quantity": 12.5, "unit_price": 199.99},
                {"description": "Standing charge", "quantity": "1", "unit_price": "150"},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["number"].startswith("INV-") and body["status"] == "UNPAID"
    assert body["total"] == "2649.88"  # 12.5 x 199.99 = 2499.875 -> 2499.88, + 150.00
    assert [line["line_total"] for line in body["lines"]] == ["2499.88", "150.00"]


def test_an_unknown_customer_is_a_404_and_bad_lines_a_400_with_nothing_written(api):
    due = (timezone.localdate() + timedelta(days=14)).isoformat()
    line = {"description": "Cement", "quantity": "1", "unit_price": "780"}
    missing = api.post(
        "/api/invoices", {"customer": "CUST-9999", "due_date": due, "lines": [line]}, format="json"
    )
    assert missing.status_code == 404
    customer = CustomerFactory()
    bad = api.post(
        "/api/invoices",
        {"customer": customer.code, "due_date": "31/12/2026", "lines": [{**line, "unit_price": "10.001"}]},
        format="json",
    )
    assert bad.status_code == 400
    assert set(bad.json()) == {"due_date", "lines"}
    empty = api.post(
        "/api/invoices", {"customer": customer.code, "due_date": due, "lines": []}, format="json"
    )
    assert empty.status_code == 400 and "lines" in empty.json()
    past_due = api.post(
        "/api/invoices",
        {"customer": customer.code, "due_date": "2000-01-01", "lines": [line]},
        format="json",
    )
    assert past_due.status_code == 400 and "due_date" in past_due.json()
    huge = api.post(
        "/api/invoices",
        {
            "customer": customer.code,
            "due_date": due,
            "lines": [
                {"description": "Land", "quantity": "1", "unit_price": "999999999999.99"},
                {"description": "Survey", "quantity": "1", "unit_price": "1.00"},
            ],
        },
        format="json",
    )
    assert huge.status_code == 400 and "larger than an invoice can hold" in huge.json()["lines"][0]
    assert not Invoice.objects.exists() and not JournalEntry.objects.exists()


def test_list_invoices_by_customer_and_status(api):
    customer = CustomerFactory()
    paid = InvoiceFactory(customer=customer, amount=Decimal("100.00"))
    partly = InvoiceFactory(customer=customer, amount=Decimal("300.00"))
    unpaid = InvoiceFactory(customer=customer, amount=Decimal("500.00"))
    InvoiceFactory()  # someone else's
    pay(paid.number, "100.00")
    pay(partly.number, "50.00")

    def numbers(**params):
        response = api.get("/api/invoices", params)
        assert response.status_code == 200, response.content
        return [i["number"] for i in response.json()["results"]]

    assert numbers(customerId=customer.code) == [paid.number, partly.number, unpaid.number]
    assert numbers(customerId=customer.code, status="outstanding") == [partly.number, unpaid.number]
    assert numbers(customerId=customer.code, status="PAID") == [paid.number]
    assert numbers(customerId=customer.code, status="partially_paid") == [partly.number]
    assert api.get("/api/invoices", {"status": "nonsense"}).status_code == 400
    assert api.get("/api/invoices", {"customerId": "CUST-99999"}).status_code == 404
    assert api.get("/api/customers", {"customerId": "CUST-99999"}).status_code == 404


def test_statement_over_the_api(api):
    customer = CustomerFactory()
    invoice = InvoiceFactory(customer=customer, amount=Decimal("900.00"))
    pay(invoice.number, "400.00")
    today = timezone.localdate().isoformat()
    body = api.get(f"/api/customers/{customer.pk}/statement", {"from": today, "to": today}).json()
    assert body["opening_balance"] == "0.00" and body["closing_balance"] == "500.00"
    assert [(line["kind"], line["balance"]) for line in body["lines"]] == [
        ("Invoice", "900.00"),
        ("Payment", "500.00"),
    ]
    assert api.get("/api/customers/999999/statement").status_code == 404
    assert api.get(f"/api/customers/{customer.pk}/statement", {"from": "yesterday"}).status_code == 400
    assert api.get(f"/api/customers/{customer.pk}/statement", {"to": "9999-12-31"}).status_code == 400
