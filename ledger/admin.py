"""The accountant's view of the ledger: accounts with balances, journal entries read-only, and a
Reverse action that asks for a reason and posts the reversal through the service."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db.models import DecimalField, OuterRef, QuerySet, Subquery, Sum
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from kellyos.admin_lists import IndexedSearchMixin, LargeListAdminMixin
from kellyos.money import ZERO, format_kes
from ledger.exceptions import LedgerError
from ledger.models import Account, CauseKind, JournalEntry, JournalLine, PeriodLock
from ledger.selectors import account_list_with_totals
from ledger.services import journal_entry_reverse, period_lock_set


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin[Account]):
    list_display = ["code", "name", "type", "balance", "is_active"]
    list_filter = ["type", "is_active"]
    search_fields = ["code", "name"]
    fields = ["code", "name", "type", "description", "is_active", "balance"]
    readonly_fields = ["balance"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return account_list_with_totals()

    def get_readonly_fields(self, request: HttpRequest, obj: Account | None = None) -> list[str]:
        # An account's code and type decide how every posted line on it reads; they never change.
        return ["code", "type", "balance"] if obj else ["balance"]

    @admin.display(description="Balance (normal side)")
    def balance(self, account: Account) -> str:
        debit: Decimal = getattr(account, "debit_total", ZERO)
        credit: Decimal = getattr(account, "credit_total", ZERO)
        return format_kes(account.signed(debit=debit, credit=credit))

    def has_delete_permission(self, request: HttpRequest, obj: Account | None = None) -> bool:
        return False


class JournalLineInline(admin.TabularInline[JournalLine, JournalEntry]):
    model = JournalLine
    fields = ("account", "debit", "credit", "customer_id")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: JournalEntry | None = None) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: JournalEntry | JournalLine | None = None
    ) -> bool:
        return False


def _business_document(entry: JournalEntry) -> str | None:
    """What an entry belongs to when it is not the ledger's own (manual) business. Those entries are
    undone by their own documents, which keep their records in step; a bare reversal would not."""
    booked = entry.reverses if entry.cause_kind == CauseKind.REVERSAL and entry.reverses else entry
    if booked.cause_kind in (CauseKind.MANUAL, CauseKind.DEMO):
        return None
    return f"{booked.get_cause_kind_display().lower()} {booked.cause_id}".strip()


class ReversalForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why these entries are being reversed. Kept on each reversal entry for the audit trail.",
    )


@admin.register(JournalEntry)
class JournalEntryAdmin(IndexedSearchMixin, LargeListAdminMixin, admin.ModelAdmin[JournalEntry]):
    list_display = [
        "__str__",
        "posted_at",
        "cause_kind",
        "cause_id",
        "amount",
        "posted_by",
        "reverses",
        "reversed",
    ]
    list_filter = ["cause_kind", "posted_at"]
    search_fields = ["memo", "cause_id"]
    date_hierarchy = "posted_at"
    list_select_related = ["posted_by", "reverses"]
    fields = (
        "posted_at",
        "memo",
        "cause_kind",
        "cause_id",
        "posted_by",
        "reverses",
        "reversal_reason",
        "recorded_at",
    )
    readonly_fields = fields
    inlines = [JournalLineInline]
    actions = ["reverse_entries"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[JournalEntry]:
        # A subquery per listed entry rather than a join and GROUP BY over every line of the ledger.
        debits = (
            JournalLine.objects.filter(entry=OuterRef("pk"))
            .order_by()
            .values("entry")
            .annotate(total=Sum("debit"))
            .values("total")
        )
        entries: QuerySet[JournalEntry] = super().get_queryset(request)
        return entries.annotate(
            total_debit=Subquery(debits, output_field=DecimalField(max_digits=14, decimal_places=2))
        ).prefetch_related("reversals")

    @admin.display(description="Amount")
    def amount(self, entry: JournalEntry) -> str:
        return format_kes(getattr(entry, "total_debit", None) or ZERO)

    @admin.display(description="Reversed by")
    def reversed(self, entry: JournalEntry) -> str:
        return ", ".join(str(r) for r in entry.reversals.all()) or "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: JournalEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: JournalEntry | None = None) -> bool:
        return False

    def has_reverse_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("ledger.reverse_journalentry")

    @admin.action(description="Reverse selected journal entries", permissions=["reverse"])
    def reverse_entries(self, request: HttpRequest, queryset: QuerySet[JournalEntry]) -> HttpResponse | None:
        form = ReversalForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            context: dict[str, Any] = {
                **self.admin_site.each_context(request),
                "title": "Reverse journal entries",
                "entries": queryset,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/ledger/journalentry/reverse.html", context)
        assert isinstance(request.user, User)  # the admin only admits signed-in staff
        for entry in queryset.select_related("reverses").order_by("pk"):
            owner = _business_document(entry)
            if owner:
                self.message_user(
                    request,
                    f"{entry} books {owner}: correct it there (for an invoice, void it).",
                    messages.ERROR,
                )
                continue
            try:
                reversal = journal_entry_reverse(
                    entry=entry, reason=form.cleaned_data["reason"], by=request.user
                )
            except LedgerError as exc:
                self.message_user(request, f"{entry}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{entry} reversed by {reversal}.", messages.SUCCESS)
        return None


class PeriodLockForm(forms.ModelForm[PeriodLock]):
    class Meta:
        model = PeriodLock
        fields = ["locked_through", "reason"]

    def clean_locked_through(self) -> date:
        day: date = self.cleaned_data["locked_through"]
        if day >= timezone.localdate():
            raise ValidationError("Only days that have ended can be closed.")
        return day


@admin.register(PeriodLock)
class PeriodLockAdmin(admin.ModelAdmin[PeriodLock]):
    """Closing the books: each lock (or reopening) is a new row; the newest one is in force."""

    form = PeriodLockForm
    list_display = ["locked_through", "reason", "set_by", "set_at"]

    def save_model(self, request: HttpRequest, obj: PeriodLock, form: Any, change: bool) -> None:
        assert isinstance(request.user, User)
        try:
            created = period_lock_set(
                locked_through=form.cleaned_data["locked_through"],
                reason=form.cleaned_data["reason"],
                by=request.user,
            )
        except LedgerError as exc:
            raise ValidationError(str(exc)) from exc
        obj.pk = created.pk

    def has_change_permission(self, request: HttpRequest, obj: PeriodLock | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: PeriodLock | None = None) -> bool:
        return False
