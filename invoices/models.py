"""Invoices, payments received, and the allocations that say which payment paid which invoice.

Amounts and statuses are derived and kept by the services in `invoices/services.py`; the database
refuses states that cannot be right (paid more than the total, a status that contradicts the amounts,
two payments for one source receipt).
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from customers.models import Customer
from ledger.models import JournalEntry

ZERO = Decimal("0.00")


class InvoiceStatus(models.TextChoices):
    UNPAID = "UNPAID", "Unpaid"
    PARTIALLY_PAID = "PARTIALLY_PAID", "Partially paid"
    PAID = "PAID", "Paid"
    VOID = "VOID", "Void"


OPEN_STATUSES = [InvoiceStatus.UNPAID, InvoiceStatus.PARTIALLY_PAID]
# Starts the reason on the reversal of a voided invoice's posting (corrections give another reason).
VOID_REASON_PREFIX = "Void "


class InvoiceNumberSequence(models.Model):
    """The last invoice number used on each issue day. Taking the next number locks the day's row
    until the invoice commits, so numbers are gap-free even when many invoices are made at once."""

    day = models.DateField(primary_key=True)
    last_number = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.day}: {self.last_number}"


class Invoice(models.Model):
    number = models.CharField(max_length=20, unique=True, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="invoices")
    issue_date = models.DateField()
    due_date = models.DateField()
    total = models.DecimalField(max_digits=14, decimal_places=2)
    amount_paid = models.DecimalField(max_digits=14, decimal_places=2, default=ZERO)
    status = models.CharField(max_length=20, choices=InvoiceStatus.choices, default=InvoiceStatus.UNPAID)
    journal_entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    void_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-issue_date", "-number"]
        permissions = [("void_invoice", "Can void an invoice")]
        constraints = [
            models.CheckConstraint(condition=Q(total__gt=0), name="invoices_invoice_total_positive"),
            models.CheckConstraint(
                condition=Q(amount_paid__gte=0) & Q(amount_paid__lte=F("total")),
                name="invoices_invoice_paid_within_total",
            ),
            models.CheckConstraint(
                condition=Q(due_date__gte=F("issue_date")), name="invoices_invoice_due_after_issue"
            ),
            models.CheckConstraint(
                condition=(
                    Q(status=InvoiceStatus.VOID, voided_at__isnull=False)
                    | Q(status=InvoiceStatus.UNPAID, amount_paid=0, voided_at__isnull=True)
                    | Q(
                        status=InvoiceStatus.PARTIALLY_PAID,
                        amount_paid__gt=0,
                        amount_paid__lt=F("total"),
                        voided_at__isnull=True,
                    )
                    | Q(status=InvoiceStatus.PAID, amount_paid=F("total"), voided_at__isnull=True)
                ),
                name="invoices_invoice_status_matches_amounts",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "issue_date", "number"], name="invoices_invoice_fifo_idx"),
            models.Index(fields=["status", "due_date"], name="invoices_invoice_status_idx"),
            # The invoice list, newest first.
            models.Index(fields=["issue_date", "number"], name="invoices_invoice_issue_idx"),
            # The list filtered by status, newest first, and the aged receivables (open ones by issue date).
            models.Index(fields=["status", "issue_date", "number"], name="invoices_invoice_state_day_idx"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def balance_due(self) -> Decimal:
        return ZERO if self.status == InvoiceStatus.VOID else self.total - self.amount_paid

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class InvoiceLine(models.Model):
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    description = models.CharField(max_length=255)
    quantity = models.DecimalField(max_digits=12, decimal_places=3)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2)
    line_total = models.DecimalField(max_digits=14, decimal_places=2)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(quantity__gt=0), name="invoices_invoiceline_quantity_positive"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__gte=0), name="invoices_invoiceline_price_not_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.description} x {self.quantity}"


class Payment(models.Model):
    """Money received from any channel, known by amount, the reference the payer typed, when, and
    the source's own identity for it (for M-Pesa, the receipt number)."""

    source = models.CharField(max_length=20)
    source_id = models.CharField(max_length=64)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    reference = models.CharField(max_length=100, blank=True)
    received_at = models.DateTimeField()
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="payments")
    invoice = models.ForeignKey(
        Invoice,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payments",
        help_text="The invoice the payer named in the reference, if any.",
    )
    allocated_amount = models.DecimalField(max_digits=14, decimal_places=2)
    credit_amount = models.DecimalField(max_digits=14, decimal_places=2)
    journal_entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Set when the payment was booked to the wrong place and moved: its posting is reversed, its
    # allocations undone, and a new payment carries the money (source_id frees up for it).
    reallocated_at = models.DateTimeField(null=True, blank=True)
    reallocated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reallocation_reason = models.TextField(blank=True)
    # Set when the money went back to the payer (an M-Pesa reversal): its posting is reversed and its
    # allocations undone; nothing replaces it.
    refunded_at = models.DateTimeField(null=True, blank=True)
    refunded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    refund_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "source_id"], name="invoices_payment_one_per_source_id"
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="invoices_payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(allocated_amount__gte=0)
                & Q(credit_amount__gte=0)
                & Q(amount=F("allocated_amount") + F("credit_amount")),
                name="invoices_payment_fully_accounted",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "received_at"], name="invoices_payment_customer_idx"),
            # The payments list, newest first.
            models.Index(fields=["received_at", "id"], name="invoices_payment_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source} {self.source_id}"


class AllocationKind(models.TextChoices):
    PAYMENT = "PAYMENT", "Payment"
    CREDIT = "CREDIT", "Customer credit applied"


class Allocation(models.Model):
    """The single record of "this payment (or this credit) paid this much of this invoice"."""

    kind = models.CharField(max_length=10, choices=AllocationKind.choices)
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="allocations"
    )
    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="allocations")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    journal_entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when its payment was reallocated or refunded."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="invoices_allocation_amount_positive"),
            models.CheckConstraint(
                condition=Q(kind=AllocationKind.PAYMENT, payment__isnull=False)
                | Q(kind=AllocationKind.CREDIT, payment__isnull=True),
                name="invoices_allocation_payment_iff_kind_payment",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.amount} to {self.invoice_id}"
