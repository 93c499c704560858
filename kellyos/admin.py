from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from kellyos.models import AuditEntry


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin[AuditEntry]):
    """The audit trail, read-only: who moved money or changed a customer's position, when and why."""

    list_display = ["at", "user", "action", "subject", "summary", "reason"]
    list_filter = ["action", "at"]
    search_fields = ["subject", "summary", "reason", "user__username"]
    date_hierarchy = "at"
    list_select_related = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
