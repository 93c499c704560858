from django.urls import path

from pos import views

urlpatterns = [
    path("", views.pos_home, name="pos-home"),
    path("sales/new", views.pos_sale_new, name="pos-sale-new"),
    path("sales/<str:reference>/", views.pos_sale, name="pos-sale"),
    path("sales/<str:reference>/status", views.pos_sale_status, name="pos-sale-status"),
    path("sales/<str:reference>/cancel", views.pos_sale_cancel, name="pos-sale-cancel"),
    path("sales/<str:reference>/receipt", views.pos_sale_receipt, name="pos-sale-receipt"),
]
