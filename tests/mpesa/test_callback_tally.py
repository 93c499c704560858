"""The callback counts /metrics reads, kept by PostgreSQL as the webhook log is written."""

import threading
import time

import pytest
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor
from django.test import Client

from mpesa.models import CallbackTally, WebhookKind, WebhookLog, WebhookStatus
from mpesa.selectors import mpesa_verify
from mpesa.services.monitoring import callback_tally_fold
from tests.mpesa import payloads
from tests.threads import run_in_threads

CONFIRM = "/api/webhooks/c2b/test-webhook-token/confirmation"
VALIDATE = "/api/webhooks/c2b/test-webhook-token/validation"
BEFORE_TALLY = ("mpesa", "0006_webhook_lock_conflict_retries")


def post(url, payload):
    return Client().post(url, data=payloads.body(payload), content_type="application/json")


def counted():
    """(kind, status) -> (callbacks, lock-conflict retries) as the count rows say, zeros left out."""
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for row in CallbackTally.objects.all():
        callbacks, retries = totals.get((row.kind, row.status), (0, 0))
        totals[(row.kind, row.status)] = (callbacks + row.callbacks, retries + row.lock_conflict_retries)
    return {key: value for key, value in totals.items() if value != (0, 0)}


def logged():
    totals: dict[tuple[str, str], tuple[int, int]] = {}
    for log in WebhookLog.objects.all():
        callbacks, retries = totals.get((log.kind, log.status), (0, 0))
        totals[(log.kind, log.status)] = (callbacks + 1, retries + log.lock_conflict_retries)
    return totals


def count_errors():
    return [error for error in mpesa_verify() if error.startswith("Callback counts")]


@pytest.mark.django_db
def test_the_counts_follow_the_log_through_inserts_changes_of_status_and_deletions():
    post(CONFIRM, payloads.c2b(trans_id=payloads.trans_id(), amount="120.00", account="NOBODY-1"))
    post(CONFIRM, payloads.c2b(trans_id=payloads.trans_id(), amount="80.00", account="NOBODY-2"))
    Client().post(CONFIRM, data=b"not json", content_type="application/json")
    post(VALIDATE, payloads.c2b(trans_id=payloads.trans_id(), amount="50.00", account="NOBODY-3"))
    assert (
        counted()
        == logged()
        == {
            (WebhookKind.C2B_CONFIRMATION, WebhookStatus.PROCESSED): (2, 0),
            (WebhookKind.C2B_CONFIRMATION, WebhookStatus.REJECTED): (1, 0),
            (WebhookKind.C2B_VALIDATION, WebhookStatus.PROCESSED): (1, 0),
        }
    )

    rejected = WebhookLog.objects.get(status=WebhookStatus.REJECTED)
    WebhookLog.objects.filter(pk=rejected.pk).update(status=WebhookStatus.FAILED, lock_conflict_retries=2)
    WebhookLog.objects.filter(pk=rejected.pk).update(lock_conflict_retries=3)  # the status stays
    assert counted()[(WebhookKind.C2B_CONFIRMATION, WebhookStatus.FAILED)] == (1, 3)
    assert (WebhookKind.C2B_CONFIRMATION, WebhookStatus.REJECTED) not in counted()

    with connection.cursor() as cursor:  # as a database administrator might
        cursor.execute("DELETE FROM mpesa_webhooklog WHERE id = %s", [rejected.pk])
        assert counted() == logged()
        # One statement over logs of different kinds and states: counted by group, not log by log.
        cursor.execute("UPDATE mpesa_webhooklog SET status = 'REFUSED', lock_conflict_retries = 1")
    assert (
        counted()
        == logged()
        == {
            (WebhookKind.C2B_CONFIRMATION, WebhookStatus.REFUSED): (2, 2),
            (WebhookKind.C2B_VALIDATION, WebhookStatus.REFUSED): (1, 1),
        }
    )
    assert count_errors() == []


@pytest.mark.django_db
def test_verify_reports_counts_that_disagree_with_the_log():
    post(CONFIRM, payloads.c2b(trans_id=payloads.trans_id(), amount="120.00", account="NOBODY-1"))
    with connection.cursor() as cursor:
        cursor.execute("UPDATE mpesa_callbacktally SET callbacks = callbacks + 1 WHERE status = 'PROCESSED'")
    assert count_errors() == [
        "Callback counts for /metrics say 2 c2b_confirmation PROCESSED (0 lock-conflict retries) but the "
        "webhook log holds 1 (0)."
    ]


@pytest.mark.django_db(transaction=True)
def test_a_callback_never_waits_for_another_connections_uncommitted_count():
    # One connection has logged a callback and not committed: its count row is locked until it does.
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(
                "INSERT INTO mpesa_webhooklog (kind, received_at, headers, body, status, detail, trans_id, "
                "attempts, lock_conflict_retries) VALUES ('c2b_confirmation', now(), '{}', '', 'RECEIVED', "
                "'', '', 0, 0)"
            )
            with connection.cursor() as ours:  # a waiting insert would fail instead of waiting
                ours.execute("SET lock_timeout = '1s'")
                response = post(
                    CONFIRM, payloads.c2b(trans_id=payloads.trans_id(), amount="10.00", account="NOBODY")
                )
                ours.execute("RESET lock_timeout")
            assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}
            cursor.execute("COMMIT")
    finally:
        holder.close()
    assert counted()[(WebhookKind.C2B_CONFIRMATION, WebhookStatus.PROCESSED)] == (1, 0)
    assert counted()[(WebhookKind.C2B_CONFIRMATION, WebhookStatus.RECEIVED)] == (1, 0)


def _backends_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [list(pids)])
            if cursor.fetchone()[0] == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"backends {pids} still running")


@pytest.mark.django_db(transaction=True)
def test_counts_of_connections_that_have_gone_fold_into_one_row_per_kind_and_status():
    pids = set()
    lock = threading.Lock()

    def deliver(index):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            with lock:
                pids.add(cursor.fetchone()[0])
        for n in range(3):
            post(CONFIRM, payloads.c2b(trans_id=f"TKFOLD{index}{n}", amount="10.00", account="NOBODY"))

    _, errors = run_in_threads(4, deliver)  # each thread closes its connection at the end
    assert errors == []
    _backends_gone(pids)
    # Each connection has a row for the confirmations it received (net 0: all moved on) and booked.
    assert CallbackTally.objects.filter(backend_pid__in=pids).count() == 8

    assert callback_tally_fold() == 8
    assert not CallbackTally.objects.filter(backend_pid__in=pids).exists()
    assert list(CallbackTally.objects.values_list("backend_pid", "kind", "status", "callbacks")) == [
        (0, WebhookKind.C2B_CONFIRMATION, WebhookStatus.PROCESSED, 12)
    ]
    assert callback_tally_fold() == 0  # a second fold finds nothing left
    assert counted() == logged() and count_errors() == []


@pytest.mark.django_db(transaction=True)
def test_the_migration_counts_the_log_already_there(settings):
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE_TALLY])
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO mpesa_webhooklog (kind, received_at, headers, body, status, detail, trans_id, "
                "attempts, lock_conflict_retries) SELECT kind, now(), '{}', '', status, '', '', 1, retries "
                "FROM (VALUES ('c2b_confirmation', 'PROCESSED', 0), ('c2b_confirmation', 'PROCESSED', 1), "
                "('stk_callback', 'FAILED', 0)) AS log(kind, status, retries)"
            )
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())

    assert set(CallbackTally.objects.values_list("backend_pid", flat=True)) == {0}
    assert (
        counted()
        == logged()
        == {
            (WebhookKind.C2B_CONFIRMATION, WebhookStatus.PROCESSED): (2, 1),
            (WebhookKind.STK_CALLBACK, WebhookStatus.FAILED): (1, 0),
        }
    )
    settings.METRICS_TOKEN = "scrape-secret"
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    assert 'kellyos_callbacks_total{kind="c2b_confirmation",status="PROCESSED"} 2\n' in text
    assert "kellyos_booking_lock_conflict_retries_total 1\n" in text


@pytest.mark.django_db(transaction=True)
def test_a_callback_is_logged_and_counted_before_the_app_role_is_granted_the_counts_table():
    # Deploys run migrate, then db_grant_app_role: in between, callbacks must still be logged.
    role = "kellyos_app_tally_test"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role}")
        cursor.execute(f"GRANT INSERT, SELECT ON mpesa_webhooklog TO {role}")
        cursor.execute(f"GRANT USAGE ON SEQUENCE mpesa_webhooklog_id_seq TO {role}")
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {role}")
            try:
                cursor.execute(
                    "INSERT INTO mpesa_webhooklog (kind, received_at, headers, body, status, detail,"
                    " trans_id, attempts, lock_conflict_retries) VALUES ('c2b_confirmation', now(), '{}',"
                    " '', 'RECEIVED', '', '', 0, 0)"
                )
            finally:
                cursor.execute("RESET ROLE")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP OWNED BY {role}")
            cursor.execute(f"DROP ROLE {role}")
    assert counted() == logged() == {(WebhookKind.C2B_CONFIRMATION, WebhookStatus.RECEIVED): (1, 0)}
