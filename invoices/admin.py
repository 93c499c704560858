"""Accountants' screens for receivables. Invoices are created and voided only through the services;
amounts, statuses, payments and allocations are read-only."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from customers.admin import CustomerAdmin
from customers.models import Customer
from invoices.exceptions import ReceivablesError
from invoices.forms import InvoiceForm, InvoiceLineFormSet, ReasonForm
from invoices.models import Allocation, Invoice, InvoiceLine, InvoiceStatus, Payment
from invoices.selectors import payment_source_list
from invoices.services import InvoiceLineInput, invoice_create, invoice_lines_replace, invoice_void
from kellyos.admin_lists import IndexedSearchMixin, LargeListAdminMixin
from kellyos.models import AuditEntry
from kellyos.money import format_kes


class ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class InvoiceLineInline(ReadOnlyInline):
    model = InvoiceLine
    fields = readonly_fields = ("description", "quantity", "unit_price", "line_total")
    show_change_link = False


class InvoiceAllocationInline(ReadOnlyInline):
    model = Allocation
    fk_name = "invoice"
    fields = readonly_fields = ("kind", "payment", "amount", "created_at")
    verbose_name_plural = "Paid by"


class PaymentAllocationInline(ReadOnlyInline):
    model = Allocation
    fk_name = "payment"
    fields = readonly_fields = ("invoice", "amount")
    verbose_name_plural = "Paid"


class CustomerInvoiceInline(ReadOnlyInline):
    model = Invoice
    fields = readonly_fields = ("number", "issue_date", "due_date", "total", "amount_paid", "status")
    ordering = ("-issue_date", "-number")


class CustomerReceivablesAdmin(CustomerAdmin):
    """The customer screen, with the customer's invoices and a link to the statement."""

    inlines = [CustomerInvoiceInline]
    search_fields = [*CustomerAdmin.search_fields, "invoices__number"]
    list_display = [*CustomerAdmin.list_display, "statement"]
    readonly_fields = [*CustomerAdmin.readonly_fields, "statement"]
    fields = [*CustomerAdmin.fields, "statement"]

    def get_inlines(
        self, request: HttpRequest, obj: Customer | None
    ) -> list[type[admin.options.InlineModelAdmin]]:  # type: ignore[type-arg]
        return self.inlines if obj else []  # a new customer has no invoices to show

    @admin.display(description="Statement")
    def statement(self, customer: Customer) -> str:
        if customer.pk is None:
            return "-"
        return format_html('<a href="{}">Statement</a>', reverse("customer-statement", args=[customer.pk]))


admin.site.unregister(Customer)
admin.site.register(Customer, CustomerReceivablesAdmin)


@admin.register(Invoice)
class InvoiceAdmin(IndexedSearchMixin, LargeListAdminMixin, admin.ModelAdmin[Invoice]):
    list_display = [
        "number",
        "customer",
        "issue_date",
        "due_date",
        "total",
        "amount_paid",
        "balance",
        "status",
    ]
    list_filter = ["status", "issue_date", "due_date"]
    search_fields = ["number", "customer__code", "customer__name", "customer__phone"]
    list_select_related = ["customer"]
    date_hierarchy = "issue_date"
    fields = (
        "number",
        "correct_lines",
        "customer",
        "issue_date",
        "due_date",
        "total",
        "amount_paid",
        "balance",
        "status",
        "created_by",
        "created_at",
        "voided_at",
        "voided_by",
        "void_reason",
        "journal_entry",
        "history",
    )
    readonly_fields = fields
    inlines = [InvoiceLineInline, InvoiceAllocationInline]
    actions = ["void_invoices"]

    @admin.display(description="Balance due")
    def balance(self, invoice: Invoice) -> str:
        return format_kes(invoice.balance_due)

    @admin.display(description="History")
    def history(self, invoice: Invoice) -> str:
        entries = (
            AuditEntry.objects.filter(subject=f"invoice {invoice.number}")
            .select_related("user")
            .order_by("at")
        )
        rows = [
            format_html("<li>{} {} {}: {} {}</li>", f"{e.at:%Y-%m-%d %H:%M}", e.user or "system", e.action,
                        e.summary, f"({e.reason})" if e.reason else "")
            for e in entries
        ]  # fmt: skip
        return format_html("<ul>{}</ul>", format_html("".join(["{}"] * len(rows)), *rows)) if rows else "-"

    @admin.display(description="Lines")
    def correct_lines(self, invoice: Invoice) -> str:
        if invoice.status != InvoiceStatus.UNPAID:
            return "Fixed: money has been allocated to this invoice (void it to cancel)."
        url = reverse("admin:invoices_invoice_correct_lines", args=[invoice.pk])
        return format_html('<a href="{}">Correct the lines</a> (nothing has been paid on it yet)', url)

    def get_urls(self) -> list[URLPattern]:
        correct = path(
            "<int:invoice_id>/lines/",
            self.admin_site.admin_view(self.correct_lines_view),
            name="invoices_invoice_correct_lines",
        )
        return [correct, *super().get_urls()]

    def correct_lines_view(self, request: HttpRequest, invoice_id: int) -> HttpResponse:
        """Correct an unpaid invoice's lines through invoice_lines_replace (reverses and reposts it)."""
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        invoice = get_object_or_404(Invoice, pk=invoice_id)
        change_url = reverse("admin:invoices_invoice_change", args=[invoice.pk])
        initial = [
            {"description": line.description, "quantity": line.quantity, "unit_price": line.unit_price}
            for line in invoice.lines.all()
        ]
        lines = InvoiceLineFormSet(request.POST or None, prefix="lines", initial=initial)
        error = None
        if request.method == "POST" and lines.is_valid():
            assert isinstance(request.user, User)
            try:
                invoice = invoice_lines_replace(invoice=invoice, lines=_line_inputs(lines), by=request.user)
            except ReceivablesError as exc:
                error = str(exc)
            else:
                self.message_user(
                    request, f"{invoice.number} corrected: total now {format_kes(invoice.total)}."
                )
                return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Correct the lines of {invoice.number}",
            "opts": self.model._meta,
            "invoice": invoice,
            "lines": lines,
            "error": error,
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/invoices/invoice/lines.html", context)

    def has_change_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Invoice | None = None) -> bool:
        return False

    def has_void_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("invoices.void_invoice")

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context: Any = None) -> HttpResponse:
        """Issue an invoice through invoice_create (numbering, posting and credit applied there)."""
        if not self.has_add_permission(request):
            return HttpResponse(status=403)
        form = InvoiceForm(request.POST or None)
        lines = InvoiceLineFormSet(request.POST or None, prefix="lines")
        if request.method == "POST" and form.is_valid() and lines.is_valid():
            assert isinstance(request.user, User)
            try:
                invoice = invoice_create(
                    customer=form.cleaned_data["customer"],
                    issue_date=form.cleaned_data["issue_date"],
                    due_date=form.cleaned_data["due_date"],
                    lines=_line_inputs(lines),
                    by=request.user,
                )
            except ReceivablesError as exc:
                form.add_error(None, str(exc))
            else:
                self.message_user(
                    request, f"Invoice {invoice.number} issued for {format_kes(invoice.total)}."
                )
                return HttpResponseRedirect(reverse("admin:invoices_invoice_change", args=[invoice.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": "Issue an invoice",
            "opts": self.model._meta,
            "form": form,
            "lines": lines,
        }
        return TemplateResponse(request, "admin/invoices/invoice/issue.html", context)

    @admin.action(description="Void selected invoices", permissions=["void"])
    def void_invoices(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> HttpResponse | None:
        form = ReasonForm(request.POST if "confirm" in request.POST else None)
        if not form.is_valid():
            context = {
                **self.admin_site.each_context(request),
                "title": "Void invoices",
                "invoices": queryset,
                "form": form,
                "opts": self.model._meta,
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/invoices/invoice/void.html", context)
        assert isinstance(request.user, User)
        for invoice in queryset.order_by("pk"):
            try:
                invoice_void(invoice=invoice, reason=form.cleaned_data["reason"], by=request.user)
            except ReceivablesError as exc:
                self.message_user(request, f"{invoice}: {exc}", messages.ERROR)
            else:
                self.message_user(request, f"{invoice} voided.", messages.SUCCESS)
        return None


def _line_inputs(lines: Any) -> list[InvoiceLineInput]:
    return [
        InvoiceLineInput(
            description=line["description"], quantity=line["quantity"], unit_price=line["unit_price"]
        )
        for line in lines.cleaned_data
        if line
    ]


class RecordsOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Payments and allocations are written by the services only; here they are read."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class PaymentSourceFilter(admin.AllValuesFieldListFilter):
    """Django's "all values" filter, with the values read from the index rather than SELECT DISTINCT
    over every payment."""

    def __init__(
        self, field: Any, request: HttpRequest, params: Any, model: Any, model_admin: Any, field_path: str
    ):
        super().__init__(field, request, params, model, model_admin, field_path)
        self.lookup_choices = payment_source_list()  # type: ignore[assignment]  # iterated only


@admin.register(Payment)
class PaymentAdmin(IndexedSearchMixin, LargeListAdminMixin, RecordsOnlyAdmin):
    list_display = [
        "source_id",
        "source",
        "received_at",
        "customer",
        "reference",
        "amount",
        "allocated_amount",
        "credit_amount",
    ]
    list_filter = [("source", PaymentSourceFilter), "received_at"]
    search_fields = ["source_id", "reference", "customer__code", "customer__name"]
    list_select_related = ["customer"]
    date_hierarchy = "received_at"
    inlines = [PaymentAllocationInline]


@admin.register(Allocation)
class AllocationAdmin(IndexedSearchMixin, LargeListAdminMixin, RecordsOnlyAdmin):
    list_display = ["id", "created_at", "kind", "invoice", "payment", "amount"]
    list_filter = ["kind", "created_at"]
    search_fields = ["invoice__number", "payment__source_id", "invoice__customer__code"]
    list_select_related = ["invoice", "payment"]
