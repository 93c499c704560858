from datetime import date, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from customers.models import Customer

EARLIEST_STATEMENT, LATEST_STATEMENT = date(2000, 1, 1), date(2099, 12, 31)


class InvoiceForm(forms.Form):
    customer = forms.ModelChoiceField(queryset=Customer.objects.filter(is_active=True).order_by("code"))
    issue_date = forms.DateField(initial=timezone.localdate, widget=forms.DateInput(attrs={"type": "date"}))
    due_date = forms.DateField(
        initial=lambda: timezone.localdate() + timedelta(days=30),
        widget=forms.DateInput(attrs={"type": "date"}),
    )


class InvoiceLineForm(forms.Form):
    description = forms.CharField(max_length=255)
    quantity = forms.DecimalField(max_digits=12, decimal_places=3, min_value=0)
    unit_price = forms.DecimalField(max_digits=14, decimal_places=2, min_value=0)


InvoiceLineFormSet = forms.formset_factory(InvoiceLineForm, extra=3, min_num=1, validate_min=True)


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 60}))


class StatementPeriodForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        today = timezone.localdate()
        data["end"] = data.get("end") or today
        data["start"] = data.get("start") or data["end"].replace(day=1)
        if data["start"] > data["end"]:
            raise forms.ValidationError("The period starts after it ends.")
        if not (data["start"] >= EARLIEST_STATEMENT and data["end"] <= LATEST_STATEMENT):
            raise forms.ValidationError(
                f"Statements cover {EARLIEST_STATEMENT.year} to {LATEST_STATEMENT.year}."
            )
        return data
