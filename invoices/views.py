"""The printable customer statement (HTML or CSV), for accountants."""

from django.conf import settings
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render

from customers.models import Customer
from invoices.forms import StatementPeriodForm
from invoices.selectors import customer_statement_get, statement_csv


@staff_member_required
@permission_required(["customers.view_customer", "invoices.view_invoice"], raise_exception=True)
def customer_statement_view(request: HttpRequest, customer_id: int) -> HttpResponse:
    customer = get_object_or_404(Customer, pk=customer_id)
    period = StatementPeriodForm(request.GET)
    if not period.is_valid():
        return HttpResponseBadRequest(period.errors.as_text())
    statement = customer_statement_get(
        customer=customer, start=period.cleaned_data["start"], end=period.cleaned_data["end"]
    )
    if request.GET.get("format") == "csv":
        response = HttpResponse(statement_csv(statement), content_type="text/csv; charset=utf-8")
        filename = f"statement-{customer.code}-{statement.start}-{statement.end}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
    context = {"statement": statement, "period": period, "paybill": settings.MPESA_SHORTCODE}
    return render(request, "invoices/statement.html", context)
