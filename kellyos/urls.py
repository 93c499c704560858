from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from customers.api.views import CustomerListCreateApi
from invoices.api.views import CustomerStatementApi, InvoiceListCreateApi
from invoices.views import customer_statement_view
from kellyos.views import ReportsApi, dashboard, events, health, metrics, report_page
from mpesa.api.views import (
    C2BConfirmationApi,
    C2BValidationApi,
    RefundResultApi,
    RefundTimeoutApi,
    StkCallbackApi,
    TransactionStatusResultApi,
    TransactionStatusTimeoutApi,
)
from mpesa.views import sale_prompt
from pos.api.views import SaleListCreateApi

admin.site.site_header = "Kelly OS"
admin.site.site_title = "Kelly OS"
admin.site.index_title = "Receivables and ledger"

urlpatterns = [
    path("health", health, name="health"),
    path("healthz", health, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("events", events, name="events"),
    path("dashboard/", dashboard, name="dashboard"),
    path("admin/reports/", report_page, name="admin-reports"),
    path("admin/reports/<str:kind>/", report_page, name="admin-report"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("pos/", include("pos.urls")),
    path("pos/sales/<str:reference>/prompt", sale_prompt, name="pos-sale-prompt"),
    path("statements/<int:customer_id>/", customer_statement_view, name="customer-statement"),
    path("api/customers", CustomerListCreateApi.as_view(), name="api-customers"),
    path(
        "api/customers/<int:customer_id>/statement",
        CustomerStatementApi.as_view(),
        name="api-customer-statement",
    ),
    path("api/invoices", InvoiceListCreateApi.as_view(), name="api-invoices"),
    path("api/pos", SaleListCreateApi.as_view(), name="api-pos"),
    path("api/reports", ReportsApi.as_view(), name="api-reports"),
    # The OpenAPI schema and Swagger UI (for staff). The split view loads its start-up script from a
    # URL of its own instead of an inline one, as the Content-Security-Policy requires.
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    # Safaricom refuses callback URLs containing "mpesa", "safaricom", "query", "sql", "cmd", "exe".
    path("api/webhooks/c2b/<str:token>/validation", C2BValidationApi.as_view(), name="c2b-validation"),
    path("api/webhooks/c2b/<str:token>/confirmation", C2BConfirmationApi.as_view(), name="c2b-confirmation"),
    path("api/webhooks/stk/<str:token>/callback", StkCallbackApi.as_view(), name="stk-callback"),
    path(
        "api/webhooks/status/<str:token>/result", TransactionStatusResultApi.as_view(), name="status-result"
    ),
    path(
        "api/webhooks/status/<str:token>/timeout",
        TransactionStatusTimeoutApi.as_view(),
        name="status-timeout",
    ),
    path("api/webhooks/refund/<str:token>/result", RefundResultApi.as_view(), name="refund-result"),
    path("api/webhooks/refund/<str:token>/timeout", RefundTimeoutApi.as_view(), name="refund-timeout"),
]
