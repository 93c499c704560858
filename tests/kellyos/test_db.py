"""The hand-written reads and writes on the payment path store what the ORM would have stored."""

import pytest
from django.utils import timezone

from kellyos.db import row_first, row_insert, row_update, rows_of
from mpesa.models import WebhookKind, WebhookLog, WebhookStatus

pytestmark = pytest.mark.django_db


def test_a_row_inserted_by_hand_reads_back_as_the_orm_would_have_saved_it():
    before = timezone.now()
    log = WebhookLog(kind=WebhookKind.C2B_CONFIRMATION, body='{"TransID": "X"}', headers={"A": "b"})
    row_insert(log)
    assert log.pk is not None and not log._state.adding
    stored = WebhookLog.objects.get(pk=log.pk)
    # Defaults, JSON and auto_now_add are prepared as Model.save() prepares them.
    assert stored.status == WebhookStatus.RECEIVED and stored.attempts == 0
    assert stored.headers == {"A": "b"}
    assert stored.received_at == log.received_at and stored.received_at >= before


def test_a_hand_written_update_changes_only_the_named_fields():
    log = WebhookLog(kind=WebhookKind.C2B_CONFIRMATION, body="{}", headers={})
    row_insert(log)
    log.status, log.detail = WebhookStatus.PROCESSED, "not saved"
    row_update(log, ["status"])
    stored = row_first(WebhookLog, "id = %s", [log.pk])
    assert stored is not None
    assert (stored.status, stored.detail) == (WebhookStatus.PROCESSED, "")


def test_updating_a_row_that_is_not_there_is_an_error_not_a_silent_no_op():
    log = WebhookLog(kind=WebhookKind.C2B_CONFIRMATION, body="{}", headers={}, pk=10**9)
    with pytest.raises(WebhookLog.DoesNotExist):
        row_update(log, ["status"])


def test_rows_read_by_hand_are_model_instances_with_typed_fields():
    log = WebhookLog(kind=WebhookKind.C2B_CONFIRMATION, body="{}", headers={})
    row_insert(log)
    [found] = rows_of(WebhookLog, "id = %s", [log.pk], tail="FOR UPDATE")
    assert isinstance(found, WebhookLog) and found.lock_conflict_retries == 0
    assert found.headers == {} and timezone.is_aware(found.received_at)
