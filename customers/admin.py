from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest

from customers.models import Customer
from customers.phones import phone_normalize
from customers.selectors import customer_list_with_positions
from customers.services import customer_create, customer_update
from kellyos.admin_lists import IndexedSearchMixin
from kellyos.money import ZERO, format_kes


class CustomerForm(forms.ModelForm[Customer]):
    phone = forms.CharField(max_length=30, required=False, help_text="e.g. 0712 345 678 or +254 712 345 678")

    class Meta:
        model = Customer
        fields = ["name", "phone", "email", "is_active"]

    def clean_phone(self) -> str:
        phone: str = self.cleaned_data["phone"]
        if not phone.strip():
            return ""
        try:
            return phone_normalize(phone)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Customer)
class CustomerAdmin(IndexedSearchMixin, admin.ModelAdmin[Customer]):
    form = CustomerForm
    list_display = ["code", "name", "phone", "email", "owed", "credit", "balance", "is_active"]
    list_filter = ["is_active", "created_at"]
    search_fields = ["code", "name", "phone", "email"]
    readonly_fields = ["code", "created_at", "owed", "credit", "balance"]
    fields = ["code", "name", "phone", "email", "is_active", "owed", "credit", "balance", "created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Customer]:
        return customer_list_with_positions()

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Customer], search_term: str
    ) -> tuple[QuerySet[Customer], bool]:
        # A clerk types the number the way the customer said it: 0712..., +254 712...
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        try:
            phone = phone_normalize(search_term)
        except ValueError:
            return results, may_have_duplicates
        return queryset.filter(Q(pk__in=results.values("pk")) | Q(phone=phone)), may_have_duplicates

    @admin.display(description="Owed on invoices")
    def owed(self, customer: Customer) -> str:
        return format_kes(self._figure(customer, "owed"))

    @admin.display(description="Credit held")
    def credit(self, customer: Customer) -> str:
        return format_kes(self._figure(customer, "credit"))

    @admin.display(description="Balance")
    def balance(self, customer: Customer) -> str:
        return format_kes(self._figure(customer, "owed") - self._figure(customer, "credit"))

    @staticmethod
    def _figure(customer: Customer, name: str) -> Decimal:
        value: Decimal = getattr(customer, name, None) or ZERO
        return value

    def save_model(self, request: HttpRequest, obj: Customer, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if change:
            customer_update(
                customer=obj,
                name=data["name"],
                phone=data["phone"],
                email=data["email"],
                is_active=data["is_active"],
            )
        else:
            created = customer_create(
                name=data["name"], phone=data["phone"], email=data["email"], by=request.user
            )
            obj.pk, obj.code = created.pk, created.code

    def has_delete_permission(self, request: HttpRequest, obj: Customer | None = None) -> bool:
        return False  # customers with history are closed (active off), never deleted
