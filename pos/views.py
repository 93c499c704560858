"""The cashier's pages: today's sales, ring up a sale, wait for the payment, print the receipt.
Server-rendered; the waiting screen asks for the sale's status every two seconds."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.contrib.auth.models import User
from django.db.models import Sum
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from kellyos.events import event_latest_id
from pos.exceptions import SaleError, SaleValidationError
from pos.forms import FREE_ROWS, PRODUCT_ROWS, SaleForm
from pos.models import Sale, SaleStatus
from pos.selectors import sale_get_by_reference, sale_list_today
from pos.services import SaleLineInput, sale_cancel, sale_create


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


def _own_sale(request: HttpRequest, reference: str) -> Sale:
    """A cashier sees only their own sales; staff with the view permission see any."""
    sale = sale_get_by_reference(reference)
    user = _user(request)
    if sale is None or (
        sale.cashier_id != user.pk and not (user.is_staff and user.has_perm("pos.view_sale"))
    ):
        raise Http404("No such sale.")
    return sale


@login_required
@permission_required("pos.view_sale", raise_exception=True)
def pos_home(request: HttpRequest) -> HttpResponse:
    sales = sale_list_today(cashier=_user(request)).order_by("-created_at")
    totals = {
        status: sales.filter(status=status).aggregate(total=Sum("total"))["total"] or Decimal("0.00")
        for status in SaleStatus.values
    }
    return render(request, "pos/home.html", {"sales": sales, "totals": totals})


@login_required
@permission_required("pos.add_sale", raise_exception=True)
def pos_sale_new(request: HttpRequest) -> HttpResponse:
    form = SaleForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            sale = sale_create(lines=_sale_lines(form.cleaned_data), cashier=_user(request))
        except SaleValidationError as exc:
            for field, message in exc.errors.items():
                form.add_error(None, f"{field}: {message}")
        else:
            return redirect("pos-sale", reference=sale.reference)
    return render(request, "pos/new.html", {"form": form})


@login_required
@permission_required("pos.view_sale", raise_exception=True)
def pos_sale(request: HttpRequest, reference: str) -> HttpResponse:
    sale = _own_sale(request, reference)
    context = {"sale": sale, "paybill": settings.MPESA_SHORTCODE, "last_event_id": event_latest_id()}
    return render(request, "pos/sale.html", context)


@login_required
@permission_required("pos.view_sale", raise_exception=True)
def pos_sale_status(request: HttpRequest, reference: str) -> JsonResponse:
    sale = _own_sale(request, reference)
    payments = [
        {
            "receipt": p.source_id,
            "payer": p.payer_name,
            "amount": str(p.amount),
            "time": p.received_at.isoformat(),
        }
        for p in sale.payments.order_by("id")
    ]
    return JsonResponse(
        {
            "reference": sale.reference,
            "status": sale.status,
            "status_display": sale.get_status_display(),
            "total": str(sale.total),
            "amount_paid": str(sale.amount_paid),
            "balance_due": str(sale.balance_due),
            "payments": payments,
        }
    )


@login_required
@permission_required("pos.cancel_sale", raise_exception=True)
@require_POST
def pos_sale_cancel(request: HttpRequest, reference: str) -> HttpResponse:
    sale = _own_sale(request, reference)
    try:
        sale_cancel(sale=sale, by=_user(request))
    except SaleError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Sale {sale.reference} cancelled.")
    return redirect("pos-sale", reference=sale.reference)


@login_required
@permission_required("pos.view_sale", raise_exception=True)
def pos_sale_receipt(request: HttpRequest, reference: str) -> HttpResponse:
    sale = _own_sale(request, reference)
    return render(request, "pos/receipt.html", {"sale": sale, "paybill": settings.MPESA_SHORTCODE})


def _sale_lines(data: dict[str, Any]) -> list[SaleLineInput]:
    lines = [
        SaleLineInput(quantity=data[f"product_qty_{row}"] or 1, product=data[f"product_{row}"])
        for row in range(PRODUCT_ROWS)
        if data[f"product_{row}"]
    ]
    lines += [
        SaleLineInput(
            quantity=data[f"item_qty_{row}"] or 1,
            description=data[f"item_{row}"],
            unit_price=data[f"item_price_{row}"],
        )
        for row in range(FREE_ROWS)
        if data[f"item_{row}"] or data[f"item_price_{row}"] is not None
    ]
    return lines
