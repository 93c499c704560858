"""Till sales. A sale's number is also what the customer types as the PayBill account (and the STK
AccountReference, which takes at most 12 characters): POS-000001."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Floor

from ledger.models import JournalEntry

ZERO = Decimal("0.00")
REFERENCE_PREFIX = "POS-"


class Product(models.Model):
    name = models.CharField(max_length=120)
    sku = models.CharField("SKU", max_length=40, unique=True)
    price = models.DecimalField(max_digits=14, decimal_places=2)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=Q(price__gt=0), name="pos_product_price_positive")]

    def __str__(self) -> str:
        return f"{self.name} ({self.sku})"


class SaleStatus(models.TextChoices):
    PENDING = "PENDING", "Pending"
    PAID = "PAID", "Paid"
    CANCELLED = "CANCELLED", "Cancelled"


class Sale(models.Model):
    # Filled in by the database from a sequence (migration 0002), like customer codes.
    reference = models.CharField(max_length=12, unique=True, blank=True, editable=False)
    status = models.CharField(max_length=10, choices=SaleStatus.choices, default=SaleStatus.PENDING)
    total = models.DecimalField(max_digits=14, decimal_places=2)
    amount_paid = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    cashier = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sales")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("cancel_sale", "Can cancel a pending sale")]
        constraints = [
            models.CheckConstraint(condition=Q(total__gt=0), name="pos_sale_total_positive"),
            # Customers pay by M-Pesa, which moves whole shillings only.
            models.CheckConstraint(
                condition=Q(total=Floor(F("total"))), name="pos_sale_total_whole_shillings"
            ),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0) & Q(amount_paid__lte=F("total")),
                name="pos_sale_paid_within_total",
            ),
            models.CheckConstraint(
                condition=Q(status=SaleStatus.PENDING, amount_paid__lt=F("total"), paid_at__isnull=True)
                | Q(status=SaleStatus.PAID, amount_paid=F("total"), paid_at__isnull=False)
                | Q(status=SaleStatus.CANCELLED, amount_paid=0, cancelled_at__isnull=False),
                name="pos_sale_status_matches_amounts",
            ),
            models.CheckConstraint(
                condition=Q(reference__startswith=REFERENCE_PREFIX), name="pos_sale_reference_format"
            ),
        ]

    def __str__(self) -> str:
        return self.reference

    @property
    def balance_due(self) -> Decimal:
        return ZERO if self.status == SaleStatus.CANCELLED else self.total - self.amount_paid


class SaleLine(models.Model):
    sale = models.ForeignKey(Sale, on_delete=models.PROTECT, related_name="lines")
    product = models.ForeignKey(Product, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    description = models.CharField(max_length=120)
    quantity = models.PositiveIntegerField()
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    line_total = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(quantity__gt=0), name="pos_saleline_quantity_positive"),
            models.CheckConstraint(condition=Q(unit_price__gt=0), name="pos_saleline_price_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.description}"


class SalePayment(models.Model):
    """Money applied to a sale: one row per source receipt (for M-Pesa, the receipt number)."""

    sale = models.ForeignKey(Sale, on_delete=models.PROTECT, related_name="payments")
    source = models.CharField(max_length=20)
    source_id = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    payer_name = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField()
    journal_entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the money went back to the payer: the revenue it booked is reversed.
    refunded_at = models.DateTimeField(null=True, blank=True)
    refund_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "source_id"], name="pos_salepayment_one_per_source_id"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="pos_salepayment_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.source_id} to {self.sale_id}"
