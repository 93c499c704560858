from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from kellyos.api import paginated
from pos.api.serializers import SaleInputSerializer, SaleOutputSerializer
from pos.exceptions import SaleValidationError
from pos.models import Product, Sale, SaleStatus
from pos.selectors import sale_reference_normalize
from pos.services import SaleLineInput, sale_create


class SaleListCreateApi(APIView):
    """POST /api/pos rings up a sale; GET /api/pos?status=pending|paid|cancelled or ?posId=POS-000001."""

    required_permissions = {"GET": ["pos.view_sale"], "POST": ["pos.add_sale"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("posId", str, description="A sale number, e.g. POS-000001"),
            OpenApiParameter("status", str, enum=[value.lower() for value in SaleStatus.values]),
            OpenApiParameter("page", int),
        ],
        responses={
            200: paginated("PaginatedSaleList", SaleOutputSerializer),
            404: OpenApiResponse(description="No such sale, or no such page."),
        },
    )
    def get(self, request: Request) -> Response:
        sales = Sale.objects.prefetch_related("lines").order_by("-created_at")
        if not request.user.is_staff:  # a cashier sees their own sales; accountants see all
            sales = sales.filter(cashier_id=request.user.pk)
        reference = request.query_params.get("posId")
        if reference is not None:
            sales = sales.filter(reference=sale_reference_normalize(reference) or "")
            if not sales.exists():
                raise NotFound(f"No sale {reference!r}.")
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted.upper() not in SaleStatus.values:
                raise ValidationError(
                    {"status": [f"Use one of {', '.join(s.lower() for s in SaleStatus.values)}."]}
                )
            sales = sales.filter(status=wanted.upper())
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(sales, request, view=self)
        return paginator.get_paginated_response(SaleOutputSerializer(page, many=True).data)

    @extend_schema(request={"application/json": SaleInputSerializer}, responses={201: SaleOutputSerializer})
    def post(self, request: Request) -> Response:
        serializer = SaleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        items: list[dict[str, Any]] = serializer.validated_data["items"]
        products = {p.sku: p for p in Product.objects.filter(sku__in=[i["sku"] for i in items if i["sku"]])}
        unknown = sorted({i["sku"] for i in items if i["sku"] and i["sku"] not in products})
        if unknown:
            raise ValidationError({"items": [f"No product with SKU {sku!r}." for sku in unknown]})
        try:
            sale = sale_create(
                lines=[
                    SaleLineInput(
                        quantity=item["quantity"],
                        product=products.get(item["sku"]),
                        description=item["description"],
                        unit_price=item["unit_price"],
                    )
                    for item in items
                ],
                cashier=request.user,  # type: ignore[arg-type]
            )
        except SaleValidationError as exc:
            raise ValidationError({field: [message] for field, message in exc.errors.items()}) from exc
        return Response(SaleOutputSerializer(sale).data, status=status.HTTP_201_CREATED)
