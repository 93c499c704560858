"""M-Pesa screens for accountants: receipts (read-only), the suspense queue with assignment, repeated
receipts to review, and the raw webhook log with a reprocess action."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from kellyos.admin_lists import IndexedSearchMixin, LargeListAdminMixin
from mpesa.exceptions import MpesaError
from mpesa.models import (
    MpesaReceipt,
    MpesaRefund,
    ReceiptConflict,
    RefundState,
    StatementImport,
    StatementLine,
    StatementOutcome,
    TransactionStatusQuery,
    UnallocatedReceipt,
    WebhookLog,
    WebhookStatus,
)
from mpesa.services.c2b import (
    RETRIED_KINDS,
    c2b_book_refused,
    c2b_retry_failed,
    conflict_review,
    receipt_assign,
    receipt_reallocate,
)
from mpesa.services.refund import refund_book_again, refund_problem, refund_request
from mpesa.services.statement import (
    StatementFormatError,
    statement_check,
    statement_import,
    statement_line_book,
)
from mpesa.services.transaction_status import transaction_status_request


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _link(obj: Any, label: str | None = None) -> str:
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


@admin.register(MpesaReceipt)
class MpesaReceiptAdmin(IndexedSearchMixin, LargeListAdminMixin, ReadOnlyAdmin):
    list_display = [
        "trans_id",
        "trans_time",
        "amount",
        "bill_ref_number",
        "payer_name",
        "customer",
        "status",
        "unallocated_reason",
    ]
    list_filter = ["status", "unallocated_reason", "trans_time"]
    search_fields = ["trans_id", "bill_ref_number", "payer_name", "customer__code", "customer__name"]
    list_select_related = ["customer"]
    date_hierarchy = "trans_time"
    fields = (
        "trans_id", "trans_time", "amount", "business_short_code", "bill_ref_number", "transaction_type",
        "msisdn", "payer_name", "status", "unallocated_amount", "unallocated_reason", "unallocated_detail",
        "customer",
        "suggested_customer", "payment_link", "sale_payment", "allocations", "journal_entries", "assigned_at",
        "assigned_by",
        "recorded_at",
    )  # fmt: skip
    readonly_fields = fields
    actions = ["reallocate", "ask_status", "refund"]

    def has_refund_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.add_mpesarefund")

    @admin.action(description="Refund to the payer (M-Pesa reversal)", permissions=["refund"])
    def refund(self, request: HttpRequest, queryset: QuerySet[MpesaReceipt]) -> HttpResponse | None:
        form = RefundForm(request.POST if "confirm" in request.POST else None)
        receipts = list(queryset.order_by("pk"))
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Refund receipts to their payers",
                "receipts": [(receipt, refund_problem(receipt)) for receipt in receipts],
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/mpesa/mpesareceipt/refund.html", context)
        assert isinstance(request.user, User)
        for receipt in receipts:
            try:
                refund_request(receipt=receipt, reason=form.cleaned_data["reason"], by=request.user)
            except MpesaError as exc:
                self.message_user(request, f"{receipt}: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request,
                    f"Asked Safaricom to reverse {receipt}; see Refunds for the result.",
                    messages.SUCCESS,
                )
        return None

    def has_ask_status_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.add_transactionstatusquery")

    @admin.action(description="Ask Safaricom for the transaction status", permissions=["ask_status"])
    def ask_status(self, request: HttpRequest, queryset: QuerySet[MpesaReceipt]) -> None:
        assert isinstance(request.user, User)
        for receipt in queryset.order_by("pk"):
            _ask_status(self, request, receipt.trans_id)

    def has_reallocate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.change_mpesareceipt")

    @admin.action(description="Reallocate to another invoice or customer", permissions=["reallocate"])
    def reallocate(self, request: HttpRequest, queryset: QuerySet[MpesaReceipt]) -> HttpResponse | None:
        form = ReallocationForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Reallocate receipts",
                "receipts": queryset,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
                "action": "reallocate",
            }
            return TemplateResponse(request, "admin/mpesa/unallocatedreceipt/assign.html", context)
        assert isinstance(request.user, User)
        for receipt in queryset.order_by("pk"):
            try:
                receipt_reallocate(
                    receipt=receipt,
                    reference=form.cleaned_data["reference"],
                    reason=form.cleaned_data["reason"],
                    by=request.user,
                )
            except MpesaError as exc:
                self.message_user(request, f"{receipt}: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{receipt} moved to {form.cleaned_data['reference']}.", messages.SUCCESS
                )
        return None

    @admin.display(description="Payment")
    def payment_link(self, receipt: MpesaReceipt) -> str:
        return _link(receipt.payment)

    @admin.display(description="Allocations")
    def allocations(self, receipt: MpesaReceipt) -> str:
        if receipt.payment is None:
            return "-"
        rows = [
            f"{allocation.invoice.number}: KES {allocation.amount}"
            for allocation in receipt.payment.allocations.select_related("invoice")
        ]
        if receipt.payment.credit_amount:
            rows.append(f"customer credit: KES {receipt.payment.credit_amount}")
        return "; ".join(rows) or "-"

    @admin.display(description="Journal entries")
    def journal_entries(self, receipt: MpesaReceipt) -> str:
        entries = [
            e for e in (receipt.suspense_entry, receipt.payment and receipt.payment.journal_entry) if e
        ]
        return format_html(" ".join(["{}"] * len(entries)), *[_link(e) for e in entries]) if entries else "-"


class ReallocationForm(forms.Form):
    reference = forms.CharField(
        max_length=100, help_text="The invoice number or customer code it really belongs to"
    )
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}), help_text="Why it is being moved"
    )


class AssignmentForm(forms.Form):
    reference = forms.CharField(
        max_length=100,
        help_text="The invoice number or customer code this money belongs to, e.g. INV-20261101-0003",
    )


@admin.register(UnallocatedReceipt)
class UnallocatedReceiptAdmin(MpesaReceiptAdmin):
    """The suspense queue: what a clerk still has to match to a customer or an invoice."""

    list_display = [
        "trans_id", "trans_time", "amount", "unallocated_amount", "bill_ref_number", "payer_name",
        "unallocated_reason", "unallocated_detail", "suggested_customer",
    ]  # fmt: skip
    list_select_related = ["customer", "suggested_customer"]
    actions = ["assign"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[MpesaReceipt]:
        return super().get_queryset(request).filter(unallocated_amount__gt=0, payment__isnull=True)

    def has_assign_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.change_mpesareceipt")

    @admin.action(description="Assign to a customer or invoice", permissions=["assign"])
    def assign(self, request: HttpRequest, queryset: QuerySet[MpesaReceipt]) -> HttpResponse | None:
        form = AssignmentForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Assign receipts",
                "receipts": queryset,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/mpesa/unallocatedreceipt/assign.html", {**context, "action": "assign"}
            )
        assert isinstance(request.user, User)
        for receipt in queryset.order_by("pk"):
            try:
                assigned = receipt_assign(
                    receipt=receipt, reference=form.cleaned_data["reference"], by=request.user
                )
            except MpesaError as exc:
                self.message_user(request, f"{receipt}: {exc}", messages.ERROR)
            else:
                self.message_user(
                    request, f"{receipt} assigned: {assigned.get_status_display()}.", messages.SUCCESS
                )
        return None


@admin.register(ReceiptConflict)
class ReceiptConflictAdmin(ReadOnlyAdmin):
    list_display = ["receipt", "created_at", "differences", "reviewed_at", "reviewed_by"]
    list_filter = ["reviewed_at"]
    search_fields = ["receipt__trans_id"]
    list_select_related = ["receipt", "reviewed_by"]
    fields = readonly_fields = (
        "receipt", "webhook_log", "differences", "created_at", "reviewed_at", "reviewed_by", "review_note"
    )  # fmt: skip
    actions = ["mark_reviewed"]

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.change_receiptconflict")

    @admin.action(description="Mark reviewed (nothing more to book)", permissions=["review"])
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet[ReceiptConflict]) -> None:
        assert isinstance(request.user, User)
        for conflict in queryset.filter(reviewed_at__isnull=True):
            conflict_review(conflict=conflict, note="Reviewed in the admin.", by=request.user)
        self.message_user(request, "Marked reviewed.")


@admin.register(WebhookLog)
class WebhookLogAdmin(IndexedSearchMixin, LargeListAdminMixin, ReadOnlyAdmin):
    list_display = ["id", "received_at", "kind", "status", "trans_id", "source_ip", "attempts", "detail"]
    list_filter = ["kind", "status", "received_at"]
    # By receipt number only: a `contains` search of a million raw bodies cannot be indexed cheaply.
    search_fields = ["trans_id"]
    date_hierarchy = "received_at"
    fields = readonly_fields = (
        "kind", "received_at", "source_ip", "headers", "body", "status", "detail", "trans_id", "receipt",
        "attempts", "processed_at",
    )  # fmt: skip
    actions = ["reprocess", "book_refused"]

    def has_reprocess_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.change_webhooklog")

    @admin.action(description="Reprocess failed or unfinished confirmations", permissions=["reprocess"])
    def reprocess(self, request: HttpRequest, queryset: QuerySet[WebhookLog]) -> None:
        chosen = queryset.filter(
            kind__in=RETRIED_KINDS, status__in=[WebhookStatus.FAILED, WebhookStatus.RECEIVED]
        )
        results = c2b_retry_failed(logs=chosen)
        booked = sum(log.status != WebhookStatus.FAILED for log in results)
        level = messages.SUCCESS if booked == len(results) else messages.WARNING
        self.message_user(
            request, f"{len(results)} failed confirmation(s) reprocessed, {booked} now booked.", level
        )

    @admin.action(
        description="Book refused confirmations (only after Safaricom confirms the payment is real)",
        permissions=["reprocess"],
    )
    def book_refused(self, request: HttpRequest, queryset: QuerySet[WebhookLog]) -> None:
        assert isinstance(request.user, User)
        results = c2b_book_refused(logs=queryset, by=request.user)
        self.message_user(request, f"{len(results)} refused confirmation(s) booked.")


class StatementUploadForm(forms.ModelForm[StatementImport]):
    file = forms.FileField(help_text="The PayBill statement exported from the M-Pesa Org portal as CSV.")

    class Meta:
        model = StatementImport
        fields: list[str] = []

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        content = upload.read()
        try:
            statement_check(content)
        except StatementFormatError as exc:
            raise forms.ValidationError(str(exc)) from exc
        self.cleaned_data["content"] = content
        return upload


class StatementLineInline(admin.TabularInline):  # type: ignore[type-arg]
    model = StatementLine
    fields = readonly_fields = (
        "row_number", "receipt_no", "completed_at", "paid_in", "our_amount", "account_no", "outcome",
        "receipt",
    )  # fmt: skip
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(StatementImport)
class StatementImportAdmin(admin.ModelAdmin[StatementImport]):
    """Upload a statement; the differences are listed under it."""

    form = StatementUploadForm
    list_display = ["file_name", "uploaded_at", "uploaded_by", "period_start", "period_end", "summary"]
    inlines = [StatementLineInline]

    def get_fields(self, request: HttpRequest, obj: StatementImport | None = None) -> Any:
        return (
            ["file"] if obj is None else ["file_name", "uploaded_by", "period_start", "period_end", "summary"]
        )

    def get_readonly_fields(self, request: HttpRequest, obj: StatementImport | None = None) -> Any:
        return [] if obj is None else ["file_name", "uploaded_by", "period_start", "period_end", "summary"]

    def get_inlines(self, request: HttpRequest, obj: StatementImport | None) -> Any:
        return self.inlines if obj else []

    def save_model(self, request: HttpRequest, obj: StatementImport, form: Any, change: bool) -> None:
        assert isinstance(request.user, User)
        imported = statement_import(
            file_name=form.cleaned_data["file"].name, content=form.cleaned_data["content"], by=request.user
        )
        obj.pk = imported.pk

    def has_change_permission(self, request: HttpRequest, obj: StatementImport | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: StatementImport | None = None) -> bool:
        return False


@admin.register(StatementLine)
class StatementLineAdmin(ReadOnlyAdmin):
    """The reconciliation report: every difference between the statement and our books."""

    list_display = [
        "receipt_no",
        "statement",
        "completed_at",
        "paid_in",
        "our_amount",
        "account_no",
        "outcome",
    ]
    list_filter = ["outcome", "statement"]
    search_fields = ["receipt_no", "account_no", "payer"]
    list_select_related = ["statement"]
    actions = ["book_missing"]

    def has_book_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.change_mpesareceipt")

    @admin.action(description="Book the selected rows missing from our books", permissions=["book"])
    def book_missing(self, request: HttpRequest, queryset: QuerySet[StatementLine]) -> None:
        assert isinstance(request.user, User)
        for line in queryset.filter(outcome=StatementOutcome.MISSING):
            try:
                statement_line_book(line=line, by=request.user)
            except MpesaError as exc:
                self.message_user(request, f"{line}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{line.receipt_no} booked.", messages.SUCCESS)


def _ask_status(model_admin: admin.ModelAdmin[Any], request: HttpRequest, receipt_number: str) -> bool:
    assert isinstance(request.user, User)
    try:
        transaction_status_request(receipt_number=receipt_number, by=request.user)
    except MpesaError as exc:
        model_admin.message_user(request, f"{receipt_number}: {exc}", messages.ERROR)
        return False
    model_admin.message_user(
        request,
        f"Asked Safaricom about {receipt_number}; the answer appears under Transaction status queries.",
        messages.SUCCESS,
    )
    return True


class StatusQuestionForm(forms.Form):
    receipt_number = forms.CharField(
        max_length=30, help_text="The M-Pesa receipt, e.g. from the customer's SMS."
    )


@admin.register(TransactionStatusQuery)
class TransactionStatusQueryAdmin(ReadOnlyAdmin):
    """Safaricom's own account of a receipt, beside ours. "Add" asks about any receipt number."""

    list_display = [
        "receipt_number", "requested_at", "state", "transaction_status", "amount", "our_amount",
        "debit_party_name", "result_desc",
    ]  # fmt: skip
    list_filter = ["state", "requested_at"]
    search_fields = ["receipt_number", "originator_conversation_id", "conversation_id"]
    list_select_related = ["receipt"]
    fields = (
        "receipt_number", "receipt_link", "our_amount", "state", "transaction_status", "amount",
        "debit_party_name", "credit_party_name", "finalised_time", "result_code", "result_desc",
        "originator_conversation_id", "conversation_id", "result_parameters", "result_log",
        "requested_by", "requested_at", "answered_at",
    )  # fmt: skip
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.add_transactionstatusquery")

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = StatusQuestionForm(request.POST if request.method == "POST" else None)
        if form.is_valid() and _ask_status(self, request, form.cleaned_data["receipt_number"]):
            return HttpResponseRedirect(reverse("admin:mpesa_transactionstatusquery_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Ask Safaricom about a receipt",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/mpesa/transactionstatusquery/ask.html", context)

    @admin.display(description="Our booking")
    def receipt_link(self, query: TransactionStatusQuery) -> str:
        return _link(query.receipt) if query.receipt else "Not in our books"

    @admin.display(description="Our amount")
    def our_amount(self, query: TransactionStatusQuery) -> str:
        if query.receipt is None:
            return "-"
        if query.amount_differs:
            return format_html("<strong>{} (differs)</strong>", query.receipt.amount)
        return str(query.receipt.amount)


class RefundForm(forms.Form):
    reason = forms.CharField(
        max_length=90, help_text="Why the money goes back; it is sent to Safaricom as the remark."
    )


@admin.register(MpesaRefund)
class MpesaRefundAdmin(ReadOnlyAdmin):
    """Refunds asked of Safaricom and how they ended. Start one from M-Pesa receipts → Refund."""

    list_display = ["receipt", "amount", "state", "requested_at", "requested_by", "settled_at", "result_desc"]
    list_filter = ["state", "requested_at"]
    search_fields = ["receipt__trans_id", "originator_conversation_id", "reversal_receipt_number"]
    list_select_related = ["receipt", "requested_by"]
    fields = (
        "receipt", "amount", "reason", "state", "result_code", "result_desc", "reversal_receipt_number",
        "originator_conversation_id", "conversation_id", "result_parameters", "result_log", "requested_by",
        "requested_at", "settled_at",
    )  # fmt: skip
    readonly_fields = fields
    actions = ["book_again"]

    def has_book_again_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("mpesa.change_mpesarefund")

    @admin.action(description="Book again (refunds that need review)", permissions=["book_again"])
    def book_again(self, request: HttpRequest, queryset: QuerySet[MpesaRefund]) -> None:
        assert isinstance(request.user, User)
        for refund in queryset.filter(state=RefundState.NEEDS_REVIEW).order_by("pk"):
            try:
                refund_book_again(refund=refund, by=request.user)
            except MpesaError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            else:
                self.message_user(request, f"{refund.receipt} refunded in the books.", messages.SUCCESS)
