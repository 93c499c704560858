"""Reports against figures worked out by hand on a fixed data set, and who may read them."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from invoices.models import InvoiceStatus
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory
from tests.mpesa import payloads
from tests.pos.factories import SaleFactory

pytestmark = pytest.mark.django_db

D = Decimal


def member_of(role, **extra):
    user = UserFactory(**extra)
    user.groups.add(Group.objects.get(name=role))
    client = APIClient()
    client.force_authenticate(user)
    return client


def confirm(account, amount):
    payload = payloads.c2b(trans_id=payloads.trans_id(), amount=amount, account=account)
    Client().post(reverse("c2b-confirmation", args=["test-webhook-token"]), data=payloads.body(payload),
                  content_type="application/json")  # fmt: skip


@pytest.fixture
def books():
    """A: 1,000 due 10 days ago and 500 not yet due, then pays 300 by customer code (oldest first).
    B: 2,000 issued and due 60 days ago. Plus a 200 till sale paid by M-Pesa and 75 nobody can place."""
    today = timezone.localdate()
    a, b = CustomerFactory(name="Amani Traders"), CustomerFactory(name="Baraka Hardware")
    InvoiceFactory(
        customer=a,
        amount=D("1000"),
        issue_date=today - timedelta(days=40),
        due_date=today - timedelta(days=10),
    )
    InvoiceFactory(
        customer=a, amount=D("500"), issue_date=today - timedelta(days=5), due_date=today + timedelta(days=25)
    )
    InvoiceFactory(
        customer=b,
        amount=D("2000"),
        issue_date=today - timedelta(days=60),
        due_date=today - timedelta(days=60),
    )
    confirm(a.code, "300")
    sale = SaleFactory(total=D("200"))
    confirm(sale.reference, "200")
    confirm("who is this", "75")
    return a, b


def rows(response):
    assert response.status_code == 200, response.content
    return response.json()["rows"]


def test_trial_balance_and_balances(books):
    accountant = member_of("Accountant")
    tb = {
        r["code"]: (r["debit"], r["credit"])
        for r in rows(accountant.get("/api/reports", {"type": "trial_balance"}))
    }
    assert tb["1200"] == ("3200.00", "0.00") and tb["1010"] == ("575.00", "0.00")
    assert tb["4000"] == ("0.00", "3700.00") and tb["2200"] == ("0.00", "75.00")
    assert tb[""] == ("3775.00", "3775.00")
    balances = {r["code"]: r["balance"] for r in rows(accountant.get("/api/reports", {"type": "balance"}))}
    assert balances["4000"] == "3700.00"


def test_aged_receivables_today_and_two_months_on(books):
    a, b = books
    accountant = member_of("Accountant")
    today = {r["customer"]: r for r in rows(accountant.get("/api/reports", {"type": "aged_receivables"}))}
    assert (today[a.code]["current"], today[a.code]["1-30"], today[a.code]["total"]) == (
        "500.00",
        "700.00",
        "1200.00",
    )
    assert today[b.code]["31-60"] == "2000.00"
    assert today[""]["total"] == "3200.00"
    later = (timezone.localdate() + timedelta(days=60)).isoformat()
    on = {
        r["customer"]: r
        for r in rows(accountant.get("/api/reports", {"type": "aged_receivables", "to": later}))
    }
    assert (on[a.code]["61-90"], on[a.code]["31-60"], on[b.code]["90+"]) == ("700.00", "500.00", "2000.00")


def test_aged_receivables_rows_in_code_order_and_a_total_row_even_when_nobody_owes():
    # Given nothing owed yet
    accountant = member_of("Accountant")
    (total,) = rows(accountant.get("/api/reports", {"type": "aged_receivables"}))
    assert (total["name"], total["current"], total["90+"], total["total"]) == (
        "Total",
        "0.00",
        "0.00",
        "0.00",
    )
    # When three customers owe: one 50 days past due, one due today, one with nothing due yet
    today = timezone.localdate()
    owing = [CustomerFactory(), CustomerFactory(), CustomerFactory()]
    fifty_days_ago = today - timedelta(days=50)
    InvoiceFactory(customer=owing[2], amount=D("100"), issue_date=fifty_days_ago, due_date=fifty_days_ago)
    InvoiceFactory(customer=owing[0], amount=D("250.50"), issue_date=today, due_date=today)
    InvoiceFactory(customer=owing[1], amount=D("40"), issue_date=today, due_date=today + timedelta(days=30))
    # Then each has a row, ordered by code, with zeros in the empty buckets, and the totals come last
    *customers, total = rows(accountant.get("/api/reports", {"type": "aged_receivables"}))
    assert [r["customer"] for r in customers] == sorted(c.code for c in owing)
    late = next(r for r in customers if r["customer"] == owing[2].code)
    assert [late[bucket] for bucket in ("current", "1-30", "31-60", "61-90", "90+", "total")] == [
        "0.00", "0.00", "100.00", "0.00", "0.00", "100.00"
    ]  # fmt: skip
    assert (total["current"], total["31-60"], total["total"]) == ("290.50", "100.00", "390.50")


def test_collections_by_day_and_kind_and_the_unallocated_list(books):
    accountant = member_of("Accountant")
    (day,) = rows(accountant.get("/api/reports", {"type": "collections"}))
    assert (day["customer"], day["sale"], day["unallocated"], day["total"]) == (
        "300.00",
        "200.00",
        "75.00",
        "575.00",
    )
    (waiting,) = rows(accountant.get("/api/reports", {"type": "unallocated"}))
    assert (waiting["in_suspense"], waiting["account_typed"]) == ("75.00", "who is this")
    assert accountant.get("/api/reports", {"type": "verify"}).json()["is_valid"] is True


def test_reports_export_csv_and_state_the_lock(books):
    from ledger.services import period_lock_set

    period_lock_set(locked_through=timezone.localdate() - timedelta(days=1), reason="closed", by=None)
    auditor = member_of("Auditor")
    response = auditor.get("/api/reports", {"type": "trial_balance", "format": "csv"})
    text = response.content.decode()
    assert response["Content-Type"].startswith("text/csv")
    assert "period_locked_through=" in text.splitlines()[0]
    assert "code,account,type,debit,credit" in text and ",Total,,3775.00,3775.00" in text
    body = auditor.get("/api/reports", {"type": "ledger", "account": "1010"}).json()
    assert body["period_locked_through"] == (timezone.localdate() - timedelta(days=1)).isoformat()
    assert body["rows"][-1]["balance"] == "575.00"


def test_bad_report_requests_are_400():
    accountant = member_of("Accountant")
    assert accountant.get("/api/reports", {"type": "nope"}).status_code == 400
    assert accountant.get("/api/reports", {"type": "ledger"}).status_code == 400
    assert accountant.get("/api/reports", {"type": "balance", "to": "yesterday"}).status_code == 400


def test_roles_auditors_read_cashiers_do_not_and_only_accountants_change_things(books):
    assert member_of("Cashier").get("/api/reports", {"type": "balance"}).status_code == 403
    auditor = member_of("Auditor", is_staff=True)
    assert auditor.get("/api/reports", {"type": "balance"}).status_code == 200
    assert auditor.get("/api/invoices").status_code == 200
    due = (timezone.localdate() + timedelta(days=5)).isoformat()
    new_invoice = {"customer": books[0].code, "due_date": due,
                   "lines": [{"description": "x", "quantity": 1, "unit_price": 5}]}  # fmt: skip
    assert auditor.post("/api/invoices", new_invoice, format="json").status_code == 403
    assert member_of("Accountant").post("/api/invoices", new_invoice, format="json").status_code == 201


def test_an_auditor_in_the_admin_sees_but_cannot_void(books):
    auditor = UserFactory(is_staff=True)
    auditor.groups.add(Group.objects.get(name="Auditor"))
    client = Client()
    client.force_login(auditor)
    url = reverse("admin:invoices_invoice_changelist")
    page = client.get(url)
    assert page.status_code == 200 and "void_invoices" not in page.content.decode()
    invoice = books[1].invoices.get()
    client.post(
        url, {"action": "void_invoices", "_selected_action": [invoice.pk], "confirm": "yes", "reason": "x"}
    )
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.UNPAID


def test_report_pages_in_the_admin_with_charts(books, admin_client):
    page = admin_client.get(reverse("admin-report", args=["collections"])).content.decode()
    assert 'class="chart"' in page and "575.00" in page and "Download CSV" in page
    aged = admin_client.get(reverse("admin-report", args=["aged_receivables"])).content.decode()
    assert "90+" in aged and "3200.00" in aged
    assert admin_client.get(reverse("admin-reports")).status_code == 200
    assert admin_client.get(reverse("admin-report", args=["nope"])).status_code == 400
    cashier = UserFactory(is_staff=True)
    cashier.groups.add(Group.objects.get(name="Cashier"))
    client = Client()
    client.force_login(cashier)
    assert client.get(reverse("admin-reports")).status_code == 403
