from typing import Any

import django_filters
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.exceptions import CustomerNotFoundError
from customers.models import Customer
from customers.selectors import customer_code_normalize, customer_get_by_code
from invoices.api.serializers import (
    InvoiceInputSerializer,
    InvoiceOutputSerializer,
    StatementOutputSerializer,
)
from invoices.exceptions import InvoiceValidationError, ReceivablesError
from invoices.forms import StatementPeriodForm
from invoices.models import OPEN_STATUSES, Invoice, InvoiceStatus
from invoices.selectors import customer_statement_get, invoice_list
from invoices.services import InvoiceLineInput, invoice_create
from kellyos.api import paginated

OUTSTANDING = "outstanding"


class InvoiceFilter(django_filters.FilterSet):
    customerId = django_filters.CharFilter(method="filter_customer", label="Customer code")
    status = django_filters.ChoiceFilter(
        method="filter_status",
        choices=[(OUTSTANDING, "Outstanding (unpaid or partly paid)")]
        + [(value.lower(), label) for value, label in InvoiceStatus.choices]
        + list(InvoiceStatus.choices),
    )

    class Meta:
        model = Invoice
        fields: list[str] = []

    def filter_customer(self, queryset: QuerySet[Invoice], name: str, value: str) -> QuerySet[Invoice]:
        return queryset.filter(customer__code=customer_code_normalize(value) or "")

    def filter_status(self, queryset: QuerySet[Invoice], name: str, value: str) -> QuerySet[Invoice]:
        if value == OUTSTANDING:
            return queryset.filter(status__in=OPEN_STATUSES)
        return queryset.filter(status=value.upper())


class InvoiceListCreateApi(APIView):
    """GET /api/invoices[?customerId=CUST-0001][&status=outstanding|unpaid|partially_paid|paid|void];
    POST /api/invoices issues one through invoice_create."""

    required_permissions = {"GET": ["invoices.view_invoice"], "POST": ["invoices.add_invoice"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("customerId", str, description="A customer code, e.g. CUST-0001"),
            OpenApiParameter(
                "status",
                str,
                enum=[OUTSTANDING, *(value.lower() for value in InvoiceStatus.values), *InvoiceStatus.values],
            ),
            OpenApiParameter("page", int),
        ],
        responses={
            200: paginated("PaginatedInvoiceList", InvoiceOutputSerializer),
            404: OpenApiResponse(description="No customer with that code, or no such page."),
        },
    )
    def get(self, request: Request) -> Response:
        filters = InvoiceFilter(request.query_params, queryset=invoice_list().prefetch_related("lines"))
        if not filters.is_valid():
            raise ValidationError(filters.errors)
        code = request.query_params.get("customerId")
        if code is not None:
            try:
                customer_get_by_code(code)
            except CustomerNotFoundError as exc:
                raise NotFound(str(exc)) from exc
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(filters.qs.order_by("issue_date", "number"), request, view=self)
        return paginator.get_paginated_response(InvoiceOutputSerializer(page, many=True).data)

    @extend_schema(
        request={"application/json": InvoiceInputSerializer},
        responses={201: InvoiceOutputSerializer, 404: OpenApiResponse(description="No such customer.")},
    )
    def post(self, request: Request) -> Response:
        serializer = InvoiceInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        try:
            customer = customer_get_by_code(data["customer"])
        except CustomerNotFoundError as exc:
            raise NotFound(str(exc)) from exc
        assert request.user.is_authenticated
        try:
            invoice = invoice_create(
                customer=customer,
                lines=[InvoiceLineInput(**line) for line in data["lines"]],
                due_date=data["due_date"],
                issue_date=data.get("issue_date"),
                by=request.user,
            )
        except InvoiceValidationError as exc:
            raise ValidationError({field: [message] for field, message in exc.errors.items()}) from exc
        except ReceivablesError as exc:
            raise ValidationError({"non_field_errors": [str(exc)]}) from exc
        return Response(InvoiceOutputSerializer(invoice).data, status=status.HTTP_201_CREATED)


class CustomerStatementApi(APIView):
    """GET /api/customers/<id>/statement?from=YYYY-MM-DD&to=YYYY-MM-DD (default: this month)."""

    required_permissions = {"GET": ["customers.view_customer", "invoices.view_invoice"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="Default: the 1st of this month"),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Last day (default: today)"),
        ],
        responses={200: StatementOutputSerializer, 404: OpenApiResponse(description="No such customer.")},
    )
    def get(self, request: Request, customer_id: int) -> Response:
        customer = get_object_or_404(Customer, pk=customer_id)
        period = StatementPeriodForm(
            {"start": request.query_params.get("from"), "end": request.query_params.get("to")}
        )
        if not period.is_valid():
            errors = period.errors.get_json_data()
            raise ValidationError(
                {
                    {"start": "from", "end": "to"}.get(k, k): [e["message"] for e in v]
                    for k, v in errors.items()
                }
            )
        statement = customer_statement_get(
            customer=customer, start=period.cleaned_data["start"], end=period.cleaned_data["end"]
        )
        return Response(StatementOutputSerializer(statement).data)
