"""Structured logs: every line of a request carries its id, and a booking's lines its receipt."""

import json
import logging

import pytest
from django.test import Client

from kellyos.logging import JsonFormatter
from tests.mpesa import payloads

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_lines():
    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(json.loads(JsonFormatter().format(record)))

    handler = Collect()
    logging.getLogger().addHandler(handler)
    yield lines
    logging.getLogger().removeHandler(handler)


def test_a_failed_booking_is_logged_with_its_request_id_and_receipt(json_lines, monkeypatch):
    def outage(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("mpesa.services.c2b.receipt_book", outage)
    payload = payloads.c2b(trans_id="TKLOG00001", amount="50.00", account="ANY")
    response = Client().post(
        "/api/webhooks/c2b/test-webhook-token/confirmation",
        data=payloads.body(payload),
        content_type="application/json",
        HTTP_X_REQUEST_ID="edge-4f2a",
    )
    assert response["X-Request-ID"] == "edge-4f2a"
    (line,) = [line for line in json_lines if "will be retried" in line["message"]]
    assert (line["request_id"], line["receipt"], line["level"]) == ("edge-4f2a", "TKLOG00001", "ERROR")
    assert "the database went away" in line["exception"]


def test_a_request_without_an_id_gets_one():
    first, second = Client().get("/healthz"), Client().get("/healthz", HTTP_X_REQUEST_ID="bad id; drop")
    assert len(first["X-Request-ID"]) == 32 and second["X-Request-ID"] != "bad id; drop"
