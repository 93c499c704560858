from django.contrib import admin
from django.urls import path

admin.site.site_header = "Kelly OS"
admin.site.site_title = "Kelly OS"
admin.site.index_title = "Receivables and ledger"

urlpatterns = [
    path("admin/", admin.site.urls),
]
