"""Live updates: announced only once committed, streamed as Server-Sent Events, resumable."""

import re
import threading
import time
from contextlib import suppress
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from kellyos.audit import audit_record
from kellyos.events import event_listener_connect as listener
from kellyos.events import event_publish, events_gathered, events_prune, stream_slots
from kellyos.models import AuditEntry, Event
from mpesa.models import WebhookLog, WebhookStatus
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory
from tests.mpesa import payloads
from tests.pos.factories import SaleFactory

CONFIRM = "/api/webhooks/c2b/test-webhook-token/confirmation"


def heard(conn, seconds=0.5):
    return [int(n.payload) for n in conn.notifies(timeout=seconds, stop_after=10)]


def accountant_client():
    user = UserFactory(is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_invoice", "view_mpesareceipt"]))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db(transaction=True)
def test_an_event_is_announced_when_its_transaction_commits_and_never_after_a_rollback():
    with listener() as conn:
        with transaction.atomic():
            event_publish(kind="payment", payload={"amount": Decimal("10.00")})
            assert heard(conn, 0.3) == []  # not yet: the transaction is open
        first = Event.objects.get()
        assert heard(conn) == [first.pk]
        assert first.payload == {"amount": "10.00"}

        with pytest.raises(RuntimeError), transaction.atomic():
            event_publish(kind="payment", payload={"amount": "20.00"})
            raise RuntimeError("the booking failed")
        assert heard(conn, 0.3) == []
        assert Event.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_gathered_events_are_stored_together_at_the_blocks_end_and_dropped_with_a_failure():
    with listener() as conn:
        with transaction.atomic(), CaptureQueriesContext(connection) as statements:
            with events_gathered():
                event_publish(kind="payment", payload={"trans_id": "G1"})
                with events_gathered():  # an inner block leaves them to the outer one
                    event_publish(kind="customer", payload={"code": "C1"})
                assert not Event.objects.exists()  # nothing stored until the block ends
            assert [event.kind for event in Event.objects.order_by("pk")] == ["payment", "customer"]
        assert sum("INSERT INTO kellyos_event" in q["sql"] for q in statements.captured_queries) == 1
        assert sorted(heard(conn)) == sorted(Event.objects.values_list("pk", flat=True))

        with pytest.raises(RuntimeError), transaction.atomic(), events_gathered():
            event_publish(kind="payment", payload={"trans_id": "G2"})
            raise RuntimeError("the booking failed")
        assert Event.objects.count() == 2 and heard(conn, 0.3) == []


@pytest.mark.django_db
def test_a_confirmation_announces_its_payment_invoice_and_customer_in_one_statement():
    invoice = InvoiceFactory(amount=Decimal("500.00"))
    before = Event.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    with CaptureQueriesContext(connection) as statements:
        Client().post(
            CONFIRM,
            data=payloads.body(payloads.c2b(trans_id="TKGATHER01", amount="150", account=invoice.number)),
            content_type="application/json",
        )
    [closing] = [q["sql"] for q in statements.captured_queries if "INSERT INTO kellyos_event" in q["sql"]]
    # The booking's audit entry and its callback's outcome go out in the same statement.
    assert "INSERT INTO kellyos_auditentry" in closing and "UPDATE mpesa_webhooklog" in closing
    announced = Event.objects.filter(pk__gt=before)
    assert sorted(event.kind for event in announced) == ["customer", "invoice", "payment"]
    log = WebhookLog.objects.get(trans_id="TKGATHER01")
    assert log.status == WebhookStatus.PROCESSED and log.receipt.payment.allocated_amount == Decimal("150.00")
    assert AuditEntry.objects.filter(action="payment.receive", subject="payment TKGATHER01").exists()


@pytest.mark.django_db(transaction=True)
def test_writes_gathered_with_events_go_in_their_statement_or_not_at_all():
    def audit(subject):
        audit_record(action="test.gathered", subject=subject, summary="gathered")

    with transaction.atomic(), CaptureQueriesContext(connection) as statements, events_gathered():
        audit("first")
        event_publish(kind="payment", payload={"trans_id": "G3"})
        audit("second")
        assert not AuditEntry.objects.filter(action="test.gathered").exists()
    assert sorted(AuditEntry.objects.filter(action="test.gathered").values_list("subject", flat=True)) == [
        "first", "second"
    ]  # fmt: skip
    # The look inside the block, and the one statement at its end.
    assert sum("kellyos_auditentry" in q["sql"] for q in statements.captured_queries) == 2
    with transaction.atomic(), events_gathered():
        audit("alone")  # no events: the writes still go out
    assert AuditEntry.objects.filter(subject="alone").exists()
    # The transaction commits, but what a block gathered before an exception left it never goes out,
    # nested (a booking tried again inside a larger one) or not.
    with transaction.atomic(), events_gathered():
        with suppress(RuntimeError), transaction.atomic(), events_gathered():
            audit("dropped")
            raise RuntimeError("the first attempt failed")
        with transaction.atomic(), events_gathered():
            audit("kept")
    with transaction.atomic():
        with suppress(RuntimeError), events_gathered():
            audit("dropped too")
            raise RuntimeError("the booking failed")
        audit("after")
    assert set(AuditEntry.objects.values_list("subject", flat=True)) >= {"kept", "after"}
    assert not AuditEntry.objects.filter(subject__startswith="dropped").exists()
    audit("at once")  # outside a block: written by its own statement
    assert AuditEntry.objects.filter(subject="at once").exists()


@pytest.mark.django_db(transaction=True)
def test_a_booked_payment_reaches_a_listening_dashboard_at_once(settings):
    settings.EVENTS_STREAM_SECONDS = 4
    customer = CustomerFactory()
    response = accountant_client().get("/events")
    assert response["Content-Type"] == "text/event-stream"
    received: list[tuple[float, str]] = []

    def read():
        for chunk in response.streaming_content:
            received.append((time.monotonic(), chunk.decode()))

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.5)
    posted = time.monotonic()
    Client().post(
        CONFIRM,
        data=payloads.body(payloads.c2b(trans_id="TKLIVE0001", amount="150", account=customer.code)),
        content_type="application/json",
    )
    reader.join(timeout=10)
    payment = [(at, text) for at, text in received if "event: payment" in text]
    assert payment and "TKLIVE0001" in payment[0][1]
    assert payment[0][0] - posted < 1.5  # announced at commit, not at the next heartbeat
    assert any("event: customer" in text for _, text in received)


@pytest.mark.django_db(transaction=True)
def test_a_reconnecting_browser_is_replayed_what_it_missed(settings):
    settings.EVENTS_STREAM_SECONDS = 0.5
    event_publish(kind="payment", payload={"trans_id": "SEEN"})
    seen = Event.objects.get().pk
    event_publish(kind="payment", payload={"trans_id": "MISSED1"})
    event_publish(kind="invoice", payload={"number": "MISSED2"})
    response = accountant_client().get("/events", HTTP_LAST_EVENT_ID=str(seen))
    stream = "".join(chunk.decode() for chunk in response.streaming_content)
    assert "MISSED1" in stream and "MISSED2" in stream
    assert f"id: {seen + 2}" in stream


@pytest.mark.django_db(transaction=True)
def test_a_process_holds_only_its_streams_and_tells_the_next_browser_to_come_back_later(settings):
    settings.EVENTS_STREAM_SECONDS = 1
    settings.EVENTS_STREAMS_PER_PROCESS = stream_slots.taken + 1  # beside any an earlier test left unread
    client = accountant_client()
    held = client.get("/events")
    assert next(iter(held.streaming_content)).startswith(b"retry: 2000\n")  # streaming, holding the slot

    turned_away = client.get("/events")
    body = b"".join(turned_away.streaming_content).decode()
    assert turned_away.status_code == 200 and turned_away["Content-Type"] == "text/event-stream"
    retry = re.fullmatch(r"retry: (\d+)\n: busy: [^\n]+\n\n", body)
    assert retry and 10_000 <= int(retry.group(1)) <= 20_000  # EventSource reconnects by itself then
    customer = CustomerFactory()  # Safaricom is served meanwhile
    answer = Client().post(
        CONFIRM,
        data=payloads.body(payloads.c2b(trans_id="TKSLOT0001", amount="150", account=customer.code)),
        content_type="application/json",
    )
    assert answer.json() == {"ResultCode": 0, "ResultDesc": "Success"}

    b"".join(held.streaming_content)  # the stream ends after EVENTS_STREAM_SECONDS, giving its slot back
    again = client.get("/events")
    assert b"busy" not in next(iter(again.streaming_content))
    again.close()


@pytest.mark.django_db(transaction=True)  # the events view closes the request's connection
def test_a_stream_that_never_started_gives_its_slot_back_when_closed(settings):
    settings.EVENTS_STREAMS_PER_PROCESS = stream_slots.taken + 1
    open_before = stream_slots.taken
    response = accountant_client().get("/events")
    assert stream_slots.taken == open_before + 1
    response.close()  # as the server does when the browser has gone before the first line
    response.close()
    assert stream_slots.taken == open_before
    # A last event id that is no number: streamed from now, and the slot given back all the same.
    odd = accountant_client().get("/events", {"lastEventId": "²"})
    assert odd.status_code == 200 and stream_slots.taken == open_before + 1
    odd.close()
    assert stream_slots.taken == open_before


@pytest.mark.django_db
def test_only_accountants_get_the_whole_feed_and_cashiers_only_their_sales(settings):
    settings.EVENTS_STREAM_SECONDS = 0.2
    cashier = UserFactory()
    cashier.groups.add(Group.objects.get(name="Cashier"))
    client = Client()
    client.force_login(cashier)
    assert client.get("/events").status_code == 403
    mine, theirs = SaleFactory(cashier=cashier), SaleFactory()
    assert client.get("/events", {"sale": theirs.reference}).status_code == 403
    assert client.get("/events", {"sale": mine.reference})["Content-Type"] == "text/event-stream"


@pytest.mark.django_db
def test_the_dashboard_shows_todays_collections(admin_client):
    customer = CustomerFactory()
    Client().post(
        CONFIRM,
        data=payloads.body(payloads.c2b(trans_id="TKDASH0001", amount="1250", account=customer.code)),
        content_type="application/json",
    )
    page = admin_client.get("/dashboard/").content.decode()
    assert "1,250.00" in page and "TKDASH0001" in page and "Unallocated receipts" in page


@pytest.mark.django_db
def test_events_older_than_a_day_are_pruned_and_newer_ones_kept():
    old = Event.objects.create(kind="payment", payload={"trans_id": "OLD"})
    Event.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=25))
    recent = Event.objects.create(kind="payment", payload={"trans_id": "RECENT"})
    out = StringIO()
    call_command("events_prune", "--older-than-hours", "24", stdout=out)
    assert list(Event.objects.values_list("pk", flat=True)) == [recent.pk]
    assert "Deleted 1 live-update events" in out.getvalue()


@pytest.mark.django_db
def test_pruning_in_batches_deletes_everything_old():
    Event.objects.bulk_create(Event(kind="payment", payload={"n": n}) for n in range(25))
    Event.objects.update(created_at=timezone.now() - timedelta(days=2))
    assert events_prune(older_than=timedelta(days=1), batch=10) == 25
    assert not Event.objects.exists()


def test_events_a_reconnecting_browser_may_still_need_are_never_pruned():
    with pytest.raises(CommandError, match="at least"):
        call_command("events_prune", "--older-than-hours", "0.001")
