from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from ledger.chart import MPESA_CASH, SALES_REVENUE
from ledger.models import JournalEntry
from ledger.selectors import account_balance
from ledger.services import journal_entry_reverse
from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory
from tests.ledger.factories import PostedEntryFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:ledger_journalentry_changelist")


def test_chart_of_accounts_shows_every_account_with_its_balance(admin_client):
    PostedEntryFactory(amount=Decimal("1234.50"), debit_account=MPESA_CASH, credit_account=SALES_REVENUE)
    page = admin_client.get(reverse("admin:ledger_account_changelist")).content.decode()
    for label in [
        "M-Pesa Cash",
        "Accounts Receivable",
        "Customer Credit",
        "Unallocated M-Pesa Receipts",
        "Sales Revenue",
        "Cost of Goods Sold",
    ]:
        assert label in page
    assert page.count("KES 1,234.50") == 2  # cash (debit side) and sales (credit side)


def test_accounts_cannot_be_deleted_and_code_and_type_are_fixed(admin_client):
    account_url = reverse("admin:ledger_account_change", args=[1])
    page = admin_client.get(account_url).content.decode()
    assert 'name="code"' not in page and 'name="type"' not in page
    assert admin_client.get(reverse("admin:ledger_account_delete", args=[1])).status_code == 403


def test_journal_entries_are_read_only_with_their_lines(admin_client):
    entry = PostedEntryFactory(amount=Decimal("460.00"), memo="Till sale: maize flour")
    listing = admin_client.get(CHANGELIST).content.decode()
    assert "Till sale: maize flour" in listing and "KES 460.00" in listing
    detail = admin_client.get(reverse("admin:ledger_journalentry_change", args=[entry.pk])).content.decode()
    assert "460.00" in detail and "1010 M-Pesa Cash" in detail
    assert 'name="memo"' not in detail  # nothing editable
    assert admin_client.get(reverse("admin:ledger_journalentry_add")).status_code == 403
    assert admin_client.get(reverse("admin:ledger_journalentry_delete", args=[entry.pk])).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:ledger_journalentry_change", args=[entry.pk]), {"memo": "x"}
        ).status_code
        == 403
    )
    entry.refresh_from_db()
    assert entry.memo == "Till sale: maize flour"


def test_reverse_action_asks_for_a_reason_then_posts_the_reversal(admin_client):
    entry = PostedEntryFactory(amount=Decimal("750.00"))
    action = {"action": "reverse_entries", "_selected_action": [entry.pk]}

    asked = admin_client.post(CHANGELIST, action)
    assert asked.status_code == 200
    assert "Why these entries are being reversed" in asked.content.decode()
    assert JournalEntry.objects.count() == 1

    missing_reason = admin_client.post(CHANGELIST, {**action, "confirm": "yes", "reason": ""})
    assert "This field is required" in missing_reason.content.decode()
    assert JournalEntry.objects.count() == 1

    done = admin_client.post(
        CHANGELIST, {**action, "confirm": "yes", "reason": "Customer paid twice"}, follow=True
    )
    assert "reversed by" in done.content.decode()
    reversal = JournalEntry.objects.get(reverses=entry)
    assert reversal.reversal_reason == "Customer paid twice"
    assert reversal.posted_by.username == "admin"
    assert account_balance(MPESA_CASH) == Decimal("0.00")

    again = admin_client.post(CHANGELIST, {**action, "confirm": "yes", "reason": "again"}, follow=True)
    assert "already been reversed" in again.content.decode()
    assert JournalEntry.objects.filter(reverses=entry).count() == 1


def test_staff_without_the_reverse_permission_cannot_reverse(client):
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(Permission.objects.get(codename="view_journalentry"))
    client.force_login(clerk)
    entry = PostedEntryFactory()
    page = client.get(CHANGELIST).content.decode()
    assert "reverse_entries" not in page
    client.post(
        CHANGELIST,
        {"action": "reverse_entries", "_selected_action": [entry.pk], "confirm": "yes", "reason": "x"},
    )
    assert not JournalEntry.objects.filter(reverses=entry).exists()


def test_reversing_a_reversal_is_flagged_before_it_is_posted(admin_client):
    entry = PostedEntryFactory()
    reversal = journal_entry_reverse(entry=entry, reason="mistake", by=None)
    page = admin_client.post(CHANGELIST, {"action": "reverse_entries", "_selected_action": [reversal.pk]})
    assert f"puts JE-{entry.pk} back in force" in page.content.decode()


def test_entries_that_belong_to_an_invoice_or_payment_are_not_reversed_from_the_ledger(admin_client):
    invoice = InvoiceFactory()
    done = admin_client.post(
        CHANGELIST,
        {
            "action": "reverse_entries",
            "_selected_action": [invoice.journal_entry_id],
            "confirm": "yes",
            "reason": "trying",
        },
        follow=True,
    )
    assert f"books invoice {invoice.number}: correct it there" in done.content.decode()
    assert not JournalEntry.objects.filter(reverses_id=invoice.journal_entry_id).exists()
