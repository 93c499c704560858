"""/metrics for the monitoring system and /healthz for the load balancer."""

import re

import pytest
from django.db import connection
from django.test import Client

from tests.mpesa import payloads

pytestmark = pytest.mark.django_db

CONFIRM = "/api/webhooks/c2b/test-webhook-token/confirmation"


def test_metrics_exist_only_for_the_monitoring_token(settings):
    assert Client().get("/metrics").status_code == 404  # no token configured
    settings.METRICS_TOKEN = "scrape-secret"
    assert Client().get("/metrics").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer guess").status_code == 404
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200


def test_metrics_count_callbacks_suspense_and_booking_latency(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    for account in ("NOBODY-1", "NOBODY-2"):
        payload = payloads.c2b(trans_id=payloads.trans_id(), amount="120.00", account=account)
        Client().post(CONFIRM, data=payloads.body(payload), content_type="application/json")
    Client().post(CONFIRM, data=b"not json", content_type="application/json")

    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    assert 'kellyos_callbacks_total{kind="c2b_confirmation",status="PROCESSED"} 2' in text
    assert 'kellyos_callbacks_total{kind="c2b_confirmation",status="REJECTED"} 1' in text
    assert "kellyos_unallocated_receipts 2\n" in text
    assert "kellyos_unallocated_amount_kes 240.00\n" in text
    assert "kellyos_refunds_needing_review 0\n" in text
    p99 = re.search(r'kellyos_booking_latency_seconds\{quantile="0.99"\} (\S+)', text)
    assert p99 and 0 <= float(p99.group(1)) < 5


def test_a_confirmation_still_waiting_counts_in_the_latency_as_waited_so_far(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    with connection.cursor() as cursor:  # arrived two minutes ago; its booking has not finished
        cursor.execute(
            "INSERT INTO mpesa_webhooklog (kind, received_at, headers, body, status, detail, trans_id, "
            "attempts, lock_conflict_retries) VALUES ('c2b_confirmation', now() - interval '2 minutes', "
            "'{}', '', 'RECEIVED', '', '', 0, 0)"
        )
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    p99 = re.search(r'kellyos_booking_latency_seconds\{quantile="0.99"\} (\S+)', text)
    assert p99 and float(p99.group(1)) >= 120


def test_healthz_answers_for_the_app_and_its_database():
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
