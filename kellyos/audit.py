"""The audit trail: `audit_record` is called by services inside their own transaction."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

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
    AuditEntry.objects.create(
        action=action,
        subject=subject[:80],
        summary=summary,
        reason=reason,
        user=by if getattr(by, "pk", None) else None,
        data=json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder)),
    )
