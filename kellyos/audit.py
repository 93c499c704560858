"""The audit trail: `audit_record` is called by services inside their own transaction."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone

from kellyos.events import write_with_events
from kellyos.models import AuditEntry


def audit_record(
    *,
    action: str,
    subject: str,
    summary: str,
    by: Any = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> None:
    # Hand-written: every payment writes one. The ORM's insert compilation costs more than the insert,
    # and kellyos.db.row_insert would need the data decoded back from the encoder's JSON first. In a
    # booking it goes out with the booking's events (kellyos.events.events_gathered).
    write_with_events(
        f"INSERT INTO {AuditEntry._meta.db_table} (at, user_id, action, subject, summary, reason, data) "  # noqa: S608
        "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb)",
        [timezone.now(), getattr(by, "pk", None), action, subject[:80], summary, reason,
         json.dumps(data or {}, cls=DjangoJSONEncoder)],
    )  # fmt: skip
