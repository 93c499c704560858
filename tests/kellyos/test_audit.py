"""Who did what, when and why, written with the change and visible in the admin."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from invoices.services import invoice_void
from kellyos.models import AuditEntry
from ledger.services import journal_entry_reverse, period_lock_set
from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory, pay
from tests.ledger.factories import PostedEntryFactory

pytestmark = pytest.mark.django_db


def test_money_moves_are_audited_with_who_and_why_and_invoices_keep_their_history(admin_client):
    accountant = UserFactory(username="njeri")
    invoice = InvoiceFactory(amount=Decimal("900.00"))
    pay(invoice.number, "400.00", source_id="TKAUDIT001")
    invoice_void(invoice=invoice, reason="Duplicate of INV-2", by=accountant)
    actions = list(AuditEntry.objects.order_by("id").values_list("action", "subject"))
    assert ("invoice.create", f"invoice {invoice.number}") in actions
    assert ("payment.receive", "payment TKAUDIT001") in actions
    void = AuditEntry.objects.get(action="invoice.void")
    assert (void.user, void.reason) == (accountant, "Duplicate of INV-2")
    page = admin_client.get(reverse("admin:invoices_invoice_change", args=[invoice.pk])).content.decode()
    assert "invoice.create" in page and "invoice.void" in page and "Duplicate of INV-2" in page
    trail = admin_client.get(reverse("admin:kellyos_auditentry_changelist")).content.decode()
    assert "njeri" in trail
    assert admin_client.get(reverse("admin:kellyos_auditentry_add")).status_code == 403


def test_ledger_reversals_and_period_locks_are_audited():
    entry = PostedEntryFactory()
    journal_entry_reverse(entry=entry, reason="typo", by=None)
    period_lock_set(locked_through=timezone.localdate() - timedelta(days=1), reason="month end", by=None)
    assert set(AuditEntry.objects.values_list("action", flat=True)) >= {"journal.reverse", "period.lock"}


def test_a_change_rolled_back_leaves_no_audit_entry():
    with pytest.raises(RuntimeError), transaction.atomic():
        InvoiceFactory()
        raise RuntimeError("something failed after the invoice")
    assert not AuditEntry.objects.filter(action="invoice.create").exists()
