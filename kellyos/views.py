"""Project-wide pages: the health check, the live event stream, and the accountant's dashboard."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required, permission_required
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import Count, Sum
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseForbidden,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from invoices.models import OPEN_STATUSES, Invoice
from kellyos.events import HeldStream, event_latest_id, event_stream, event_stream_busy, stream_slots
from kellyos.reports import report_build
from kellyos.slots import refusal_counts, refusal_tally_fold
from ledger.exceptions import LedgerError
from mpesa.models import MpesaReceipt
from mpesa.selectors import mpesa_metrics, suspense_queue_count
from mpesa.services.monitoring import callback_tally_fold
from pos.selectors import sale_get_by_reference

logger = logging.getLogger(__name__)


def health(request: HttpRequest) -> JsonResponse:
    """For load balancers and operators: the app answers and its database does."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not healthy", said plainly
        return JsonResponse({"status": "error", "database": str(exc)[:200]}, status=503)
    return JsonResponse({"status": "ok"})


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format for the monitoring system, behind `Authorization: Bearer METRICS_TOKEN`
    (no token set: no metrics)."""
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if not token or not constant_time_compare(given, f"Bearer {token}"):
        raise Http404
    callback_tally_fold()  # bookkeeping of the counts below: a few rows, and only of backends gone
    refusal_tally_fold()
    figures = mpesa_metrics()
    lines = [
        "# HELP kellyos_callbacks_total Safaricom callbacks received, by kind and outcome.",
        "# TYPE kellyos_callbacks_total counter",
        *(
            f'kellyos_callbacks_total{{kind="{kind}",status="{status}"}} {count}'
            for kind, status, count in figures.callbacks
        ),
        "# HELP kellyos_unallocated_receipts M-Pesa receipts (or parts) waiting in suspense.",
        "# TYPE kellyos_unallocated_receipts gauge",
        f"kellyos_unallocated_receipts {figures.unallocated_count}",
        "# HELP kellyos_unallocated_amount_kes Shillings waiting in suspense (account 2200).",
        "# TYPE kellyos_unallocated_amount_kes gauge",
        f"kellyos_unallocated_amount_kes {figures.unallocated_amount}",
        "# HELP kellyos_refunds_needing_review Reversals Safaricom made that our books do not show yet.",
        "# TYPE kellyos_refunds_needing_review gauge",
        f"kellyos_refunds_needing_review {figures.refunds_needing_review}",
        "# HELP kellyos_booking_lock_conflict_retries_total Bookings tried again after a deadlock.",
        "# TYPE kellyos_booking_lock_conflict_retries_total counter",
        f"kellyos_booking_lock_conflict_retries_total {figures.lock_conflict_retries}",
        "# HELP kellyos_refusals_total Work turned away to keep threads for callbacks, by reason.",
        "# TYPE kellyos_refusals_total counter",
        *(f'kellyos_refusals_total{{reason="{reason}"}} {count}' for reason, count in refusal_counts()),
        "# HELP kellyos_booking_latency_seconds Arrival to booking (or now), C2B confirmations, last 5 min.",
        "# TYPE kellyos_booking_latency_seconds summary",
        *(
            f'kellyos_booking_latency_seconds{{quantile="{quantile}"}} {"NaN" if value is None else value}'
            for quantile, value in figures.booking_latency.items()
        ),
    ]
    return HttpResponse("\n".join(lines) + "\n", content_type="text/plain; version=0.0.4")


@login_required
def events(request: HttpRequest) -> HttpResponseBase:
    """Server-Sent Events. `?sale=POS-000001` follows one sale (its cashier may); without it, every
    event (accountants: the dashboard). Resumes after `Last-Event-ID`."""
    user = request.user
    wants: dict[str, str] = {}
    reference = request.GET.get("sale")
    if reference:
        sale = sale_get_by_reference(reference)
        if sale is None or (
            sale.cashier_id != user.pk and not (user.is_staff and user.has_perm("pos.view_sale"))
        ):
            return HttpResponseForbidden("Not your sale.")
        wants["sale"] = sale.reference
    elif not user.has_perm("invoices.view_invoice"):
        return HttpResponseForbidden("The payment feed is for accountants.")
    last = request.headers.get("Last-Event-ID") or request.GET.get("lastEventId") or ""
    last_event_id = int(last) if last.isascii() and last.isdigit() else None  # "²" is a digit to isdigit
    if not stream_slots.take():
        # The stream ends at once and the browser's EventSource reconnects by itself after `retry`.
        logger.warning("Live-update stream for %s turned away: this process holds all it takes", user)
        response = StreamingHttpResponse([event_stream_busy()], content_type="text/event-stream")
        response["Cache-Control"] = "no-cache"
        return response
    connection.close()  # the stream may outlive this request's bookkeeping; it opens what it needs
    stream = event_stream(
        last_event_id=last_event_id,
        wants=wants,
        max_seconds=settings.EVENTS_STREAM_SECONDS,
    )
    response = StreamingHttpResponse(HeldStream(stream), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # a proxy must pass events on at once
    return response


@staff_member_required
@permission_required("invoices.view_invoice", raise_exception=True)
def dashboard(request: HttpRequest) -> HttpResponse:
    start = datetime.combine(timezone.localdate(), time.min, tzinfo=timezone.get_current_timezone())
    today = MpesaReceipt.objects.filter(trans_time__gte=start, trans_time__lt=start + timedelta(days=1))
    collected = today.aggregate(total=Sum("amount"), count=Count("id"))
    context = {
        **admin.site.each_context(request),
        "title": "Dashboard",
        "last_event_id": event_latest_id(),
        "collected": collected["total"] or Decimal("0.00"),
        "receipts_today": collected["count"],
        "unallocated": suspense_queue_count(),
        "open_invoices": Invoice.objects.filter(status__in=OPEN_STATUSES).count(),
        "recent": MpesaReceipt.objects.select_related("customer").order_by("-trans_time", "-id")[:20],
    }
    return render(request, "dashboard.html", context)


class ReportsApi(APIView):
    """GET /api/reports?type=trial_balance|balance|ledger|verify|aged_receivables|collections|unallocated
    [&from=YYYY-MM-DD&to=YYYY-MM-DD][&account=1010][&format=csv]. Accountants and auditors."""

    required_permissions = {
        "GET": ["ledger.view_account", "invoices.view_invoice", "mpesa.view_mpesareceipt"]
    }

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "type",
                str,
                required=True,
                enum=[
                    *("trial_balance", "balance", "ledger", "verify"),
                    *("aged_receivables", "collections", "unallocated"),
                ],
            ),
            OpenApiParameter("from", OpenApiTypes.DATE, description="Default: the 1st of the month of `to`"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Default: today"),
            OpenApiParameter("account", str, description="The account code, for type=ledger"),
            OpenApiParameter("format", str, enum=["csv"], description="csv: the same table as a download"),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                OpenApiTypes.OBJECT, description="report, the period lock, columns, and rows"
            ),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="with format=csv"),
        },
    )
    def get(self, request: Request) -> HttpResponseBase:
        today = timezone.localdate()
        try:
            end = date.fromisoformat(request.query_params.get("to") or today.isoformat())
            start = date.fromisoformat(request.query_params.get("from") or end.replace(day=1).isoformat())
            if start > end or start.year < 2000 or end.year > 2099:
                raise ValueError("from must not be after to, within 2000-2099")
            report = report_build(
                request.query_params.get("type", ""),
                start=start,
                end=end,
                account=request.query_params.get("account"),
            )
        except (ValueError, LedgerError) as exc:
            return Response({"detail": str(exc)}, status=400)
        if request.query_params.get("format") == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow([f"{report.name}", *(f"{k}={v}" for k, v in report.meta.items() if k != "chart")])
            writer.writerow(report.columns)
            writer.writerows(report.rows)
            response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{report.name}-{start}-{end}.csv"'
            return response
        body = {
            "report": report.name,
            **report.meta,
            "columns": report.columns,
            "rows": [dict(zip(report.columns, row, strict=True)) for row in report.rows],
        }
        # Amounts as exact strings: DRF's own encoder would turn a Decimal into a float.
        return Response(json.loads(json.dumps(body, cls=DjangoJSONEncoder)))


REPORT_TITLES = {
    "trial_balance": "Trial balance",
    "balance": "Account balances",
    "aged_receivables": "Aged receivables",
    "collections": "Daily collections",
    "unallocated": "Unallocated receipts",
    "verify": "Ledger check",
}


@staff_member_required
@permission_required(
    ["ledger.view_account", "invoices.view_invoice", "mpesa.view_mpesareceipt"], raise_exception=True
)
def report_page(request: HttpRequest, kind: str = "trial_balance") -> HttpResponse:
    """The reports as admin pages, with a bar chart where one reads faster than a table."""
    today = timezone.localdate()
    try:
        end = date.fromisoformat(request.GET.get("to") or today.isoformat())
        start = date.fromisoformat(request.GET.get("from") or end.replace(day=1).isoformat())
        report = report_build(kind, start=start, end=end, account=None)
    except (ValueError, LedgerError) as exc:
        return HttpResponse(str(exc), status=400)
    bars: list[tuple[str, Decimal]] = []
    if kind == "collections":
        bars = [(str(row[0]), row[-1]) for row in report.rows]
    elif kind == "aged_receivables":
        bars = [(bucket, Decimal(value)) for bucket, value in report.meta["chart"].items()]
    top = max((value for _, value in bars), default=Decimal(0)) or Decimal(1)
    context = {
        **admin.site.each_context(request),
        "title": REPORT_TITLES.get(kind, kind),
        "kind": kind,
        "kinds": REPORT_TITLES,
        "report": report,
        "start": start,
        "end": end,
        "bars": [(label, value, int(value / top * 100)) for label, value in bars],
    }
    return render(request, "admin/reports.html", context)
