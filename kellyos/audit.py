"""The audit trail: `audit_record` is called by services inside their own transaction."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from kellyos.db import row_insert
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
    # Through row_insert (kellyos.db): every payment writes one. The data goes through the JSON encoder
    # first, so Decimals and datetimes are stored as text.
    row_insert(
        AuditEntry(
            action=action,
            subject=subject[:80],
            summary=summary,
            reason=reason,
            user_id=getattr(by, "pk", None),
            data=json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder)),
        )
    )
