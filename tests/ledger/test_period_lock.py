from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from invoices.exceptions import InvoiceValidationError
from ledger.exceptions import InvalidJournalEntryError, PeriodClosedError
from ledger.models import JournalEntry, PeriodLock
from ledger.selectors import period_lock_could_cover
from ledger.services import journal_entry_reverse, period_lock_set
from mpesa.models import MpesaReceipt
from tests.customers.factories import CustomerFactory
from tests.invoices.factories import InvoiceFactory
from tests.ledger.factories import PostedEntryFactory
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db

NAIROBI = ZoneInfo("Africa/Nairobi")


def days_ago(days):
    return timezone.localdate() - timedelta(days=days)


def morning(day):
    return datetime.combine(day, datetime.min.time(), tzinfo=NAIROBI)


def test_nothing_can_be_posted_or_reversed_into_a_closed_period():
    old, older = (
        PostedEntryFactory(posted_at=morning(days_ago(10))),
        PostedEntryFactory(posted_at=morning(days_ago(10))),
    )
    period_lock_set(locked_through=days_ago(5), reason="October closed", by=None)
    with pytest.raises(PeriodClosedError, match="closed through"):
        PostedEntryFactory(posted_at=morning(days_ago(6)))
    reversal = journal_entry_reverse(entry=old, reason="found in November", by=None)  # dated today: allowed
    assert reversal.posted_at.date() >= days_ago(4)
    with pytest.raises(PeriodClosedError):
        journal_entry_reverse(entry=older, reason="x", by=None, posted_at=morning(days_ago(6)))


def test_the_database_refuses_a_dated_entry_in_a_closed_period_even_with_raw_sql():
    period_lock_set(locked_through=days_ago(5), reason="closed", by=None)
    with (
        pytest.raises(IntegrityError, match="closed through"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO ledger_journalentry"
            " (posted_at, memo, cause_kind, cause_id, reversal_reason, recorded_at)"
            " VALUES (now() - interval '10 days', 'sneaky', 'manual', '', '', now())"
        )
    with (
        pytest.raises(IntegrityError, match="immutable"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM ledger_periodlock")
    assert PeriodLock.objects.count() == 1


def test_invoices_cannot_be_dated_in_a_closed_period_but_late_payments_still_book():
    customer = CustomerFactory()
    period_lock_set(locked_through=days_ago(1), reason="yesterday closed", by=None)
    with pytest.raises(InvoiceValidationError, match="closed through"):
        InvoiceFactory(customer=customer, issue_date=days_ago(2))
    late = payloads.c2b(trans_id="TKLATE0001", amount="50", account=customer.code,
                        when=datetime.now(tz=NAIROBI) - timedelta(days=2))  # fmt: skip
    url = reverse("c2b-confirmation", args=["test-webhook-token"])
    response = Client().post(url, data=payloads.body(late), content_type="application/json")
    assert response.json()["ResultCode"] == 0
    receipt = MpesaReceipt.objects.get()
    assert receipt.trans_time >= PeriodLock.objects.get().boundary
    assert JournalEntry.objects.filter(cause_id="TKLATE0001").exists()


def test_only_ended_days_can_be_closed_and_a_reason_is_needed(admin_client):
    with pytest.raises(InvalidJournalEntryError):
        period_lock_set(locked_through=timezone.localdate(), reason="too soon", by=None)
    with pytest.raises(InvalidJournalEntryError):
        period_lock_set(locked_through=days_ago(3), reason=" ", by=None)
    page = admin_client.post(reverse("admin:ledger_periodlock_add"),
                             {"locked_through": timezone.localdate().isoformat(), "reason": "x"})  # fmt: skip
    assert "Only days that have ended" in page.content.decode()
    admin_client.post(
        reverse("admin:ledger_periodlock_add"), {"locked_through": days_ago(3).isoformat(), "reason": "Q3"}
    )
    assert PeriodLock.objects.get().set_by.username == "admin"


def test_a_closed_period_can_reach_back_only_before_today():
    today = datetime.combine(timezone.localdate(), datetime.min.time(), tzinfo=NAIROBI)
    assert not period_lock_could_cover(today) and not period_lock_could_cover(timezone.now())
    assert period_lock_could_cover(today - timedelta(microseconds=1))
    # The latest lock allowed, yesterday's, ends where today starts.
    period_lock_set(locked_through=days_ago(1), reason="yesterday closed", by=None)
    assert PeriodLock.objects.get().boundary == today
