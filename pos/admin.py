from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from pos.models import Product, Sale, SaleLine, SalePayment


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin[Product]):
    list_display = ["name", "sku", "price", "is_active"]
    list_filter = ["is_active"]
    search_fields = ["name", "sku"]

    def has_delete_permission(self, request: HttpRequest, obj: Product | None = None) -> bool:
        return False  # sold products stay on record; switch "active" off instead


class _ReadOnlyInline(admin.TabularInline):  # type: ignore[type-arg]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SaleLineInline(_ReadOnlyInline):
    model = SaleLine
    fields = readonly_fields = ("description", "quantity", "unit_price", "line_total")


class SalePaymentInline(_ReadOnlyInline):
    model = SalePayment
    fields = readonly_fields = ("source", "source_id", "amount", "payer_name", "received_at", "journal_entry")


@admin.register(Sale)
class SaleAdmin(admin.ModelAdmin[Sale]):
    list_display = ["reference", "created_at", "cashier", "status", "total", "amount_paid"]
    list_filter = ["status", "created_at"]
    search_fields = ["reference", "payments__source_id"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "reference", "status", "total", "amount_paid", "cashier", "created_at", "paid_at", "cancelled_at",
    )  # fmt: skip
    inlines = [SaleLineInline, SalePaymentInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Sale | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Sale | None = None) -> bool:
        return False
