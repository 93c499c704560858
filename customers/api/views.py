from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from customers.api.serializers import CustomerInputSerializer, CustomerOutputSerializer
from customers.exceptions import CustomerValidationError
from customers.selectors import customer_code_normalize, customer_list_with_positions
from customers.services import customer_create
from kellyos.api import paginated


class CustomerListCreateApi(APIView):
    """GET /api/customers[?customerId=CUST-0001] lists customers with what they owe and their credit;
    POST /api/customers creates one (name, phone, email)."""

    required_permissions = {"GET": ["customers.view_customer"], "POST": ["customers.add_customer"]}

    @extend_schema(
        parameters=[
            OpenApiParameter("customerId", str, description="A customer code, e.g. CUST-0001"),
            OpenApiParameter("page", int),
        ],
        responses={
            200: paginated("PaginatedCustomerList", CustomerOutputSerializer),
            404: OpenApiResponse(description="No customer with that code, or no such page."),
        },
    )
    def get(self, request: Request) -> Response:
        customers = customer_list_with_positions().order_by("code")
        code = request.query_params.get("customerId")
        if code is not None:
            customers = customers.filter(code=customer_code_normalize(code) or "")
            if not customers.exists():
                raise NotFound(f"No customer with code {code!r}.")
        paginator = PageNumberPagination()
        page = paginator.paginate_queryset(customers, request, view=self)
        return paginator.get_paginated_response(CustomerOutputSerializer(page, many=True).data)

    @extend_schema(
        request={"application/json": CustomerInputSerializer}, responses={201: CustomerOutputSerializer}
    )
    def post(self, request: Request) -> Response:
        serializer = CustomerInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        try:
            customer = customer_create(name=data["name"], phone=data["phone"], email=data["email"])
        except CustomerValidationError as exc:
            raise ValidationError({field: [message] for field, message in exc.errors.items()}) from exc
        created = customer_list_with_positions().get(pk=customer.pk)
        return Response(CustomerOutputSerializer(created).data, status=status.HTTP_201_CREATED)
