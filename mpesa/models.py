"""What Safaricom sends us and what we made of it.

A webhook log row is written, and committed, before anything else happens to a callback, so none is
ever lost. A receipt is the M-Pesa payment itself: one row per TransID, whatever number of times
Safaricom (or a retry, or a pull) delivers it.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from customers.models import Customer
from invoices.models import Payment
from ledger.models import JournalEntry
from pos.models import Sale, SalePayment


class WebhookKind(models.TextChoices):
    C2B_VALIDATION = "c2b_validation", "C2B validation"
    C2B_CONFIRMATION = "c2b_confirmation", "C2B confirmation"
    STK_CALLBACK = "stk_callback", "STK Push callback"
    PULL = "pull", "Pull Transactions item"
    STATEMENT = "statement", "Org-portal statement row"
    STATUS_RESULT = "status_result", "Transaction Status result"
    STATUS_TIMEOUT = "status_timeout", "Transaction Status queue timeout"
    REFUND_RESULT = "refund_result", "Reversal result"
    REFUND_TIMEOUT = "refund_timeout", "Reversal queue timeout"


class WebhookStatus(models.TextChoices):
    RECEIVED = "RECEIVED", "Received, not yet processed"
    PROCESSED = "PROCESSED", "Processed"
    DUPLICATE = "DUPLICATE", "Duplicate of a booked receipt"
    CONFLICT = "CONFLICT", "Repeated receipt with different details"
    REJECTED = "REJECTED", "Rejected: not a payment"
    REFUSED = "REFUSED", "Refused: caller not allowed"
    FAILED = "FAILED", "Failed: to be retried"


class WebhookLog(models.Model):
    kind = models.CharField(max_length=30, choices=WebhookKind.choices)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict)
    body = models.TextField(blank=True)
    status = models.CharField(max_length=12, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED)
    detail = models.TextField(
        blank=True, help_text="Why it was rejected, refused or failed; what was answered."
    )
    trans_id = models.CharField(max_length=30, blank=True, db_index=True)
    receipt = models.ForeignKey(
        "MpesaReceipt", null=True, blank=True, on_delete=models.PROTECT, related_name="webhook_logs"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    lock_conflict_retries = models.PositiveSmallIntegerField(
        default=0,
        help_text="Times booking was tried again at once after a deadlock or a serialization conflict.",
    )
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(
                fields=["status", "kind"], name="mpesa_webhooklog_failed_idx", condition=Q(status="FAILED")
            ),
            # The log filtered by kind, newest first (and counted, and its dates drilled).
            models.Index(fields=["kind", "received_at"], name="mpesa_webhooklog_kind_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} {self.trans_id}".strip()


class CallbackTally(models.Model):
    """How many callbacks of each kind are in each state, kept by PostgreSQL from the webhook log's own
    inserts and updates (migration 0007), so /metrics reads a few rows instead of counting the whole
    log. Rows are per database backend: a backend runs one transaction at a time, so no two callbacks
    ever wait on the same row. Backend 0 holds the folded rows of backends that are gone."""

    backend_pid = models.IntegerField()
    kind = models.CharField(max_length=30, choices=WebhookKind.choices)
    status = models.CharField(max_length=12, choices=WebhookStatus.choices)
    callbacks = models.BigIntegerField(default=0)
    lock_conflict_retries = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["backend_pid", "kind", "status"], name="mpesa_callbacktally_one_row_per_backend"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.status}: {self.callbacks} (backend {self.backend_pid})"


class ReceiptStatus(models.TextChoices):
    ALLOCATED = "ALLOCATED", "Allocated to invoices"
    PARTLY_ALLOCATED = "PARTLY_ALLOCATED", "Partly allocated, rest credit"
    CREDIT = "CREDIT", "Customer credit"
    SALE = "SALE", "Paid to a till sale"
    UNALLOCATED = "UNALLOCATED", "Unallocated (suspense)"
    REFUNDED = "REFUNDED", "Refunded to the payer (M-Pesa reversal)"


class UnallocatedReason(models.TextChoices):
    UNKNOWN_REFERENCE = "UNKNOWN_REFERENCE", "Account number matches no invoice or customer"
    OVER_TRANSACTION_LIMIT = "OVER_TRANSACTION_LIMIT", "Over the per-transaction maximum"
    OVER_DAILY_LIMIT = "OVER_DAILY_LIMIT", "Over the customer's daily limit"
    WRONG_SHORTCODE = "WRONG_SHORTCODE", "Paid to another shortcode"
    SALE_OVERPAID = "SALE_OVERPAID", "More than the sale needed"
    SALE_CLOSED = "SALE_CLOSED", "The sale was already paid or cancelled"


class ReceiptSource(models.TextChoices):
    C2B = "C2B", "C2B confirmation"
    STK = "STK", "STK Push callback"
    PULL = "PULL", "Recovered by Pull Transactions"
    STATEMENT = "STATEMENT", "Booked from the Org-portal statement"


class MpesaReceipt(models.Model):
    trans_id = models.CharField(max_length=30, help_text="The M-Pesa receipt number (TransID).")
    trans_time = models.DateTimeField(
        help_text="When M-Pesa completed the payment (TransTime, Nairobi time)."
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    business_short_code = models.CharField(max_length=20)
    bill_ref_number = models.CharField(max_length=100, blank=True)
    invoice_number = models.CharField(max_length=100, blank=True)
    transaction_type = models.CharField(max_length=50, blank=True)
    org_account_balance = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    third_party_trans_id = models.CharField(max_length=100, blank=True)
    msisdn = models.CharField(
        max_length=100, blank=True, help_text="As sent: masked (v2) or a SHA-256 hash (v1)."
    )
    payer_name = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=10, choices=ReceiptSource.choices, default=ReceiptSource.C2B)
    status = models.CharField(max_length=20, choices=ReceiptStatus.choices)
    unallocated_reason = models.CharField(max_length=30, choices=UnallocatedReason.choices, blank=True)
    unallocated_detail = models.TextField(blank=True)
    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.PROTECT, related_name="mpesa_receipts"
    )
    suggested_customer = models.ForeignKey(
        Customer,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="A known customer whose phone hashes to the payer's hashed MSISDN.",
    )
    payment = models.OneToOneField(
        Payment, null=True, blank=True, on_delete=models.PROTECT, related_name="mpesa_receipt"
    )
    sale_payment = models.OneToOneField(
        SalePayment, null=True, blank=True, on_delete=models.PROTECT, related_name="mpesa_receipt"
    )
    unallocated_amount = models.DecimalField(
        max_digits=14, decimal_places=2, default=Decimal("0.00"), help_text="The part held in 2200 suspense."
    )
    suspense_entry = models.ForeignKey(
        JournalEntry, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-trans_time", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["trans_id"], name="mpesa_mpesareceipt_one_per_trans_id"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="mpesa_mpesareceipt_amount_positive"),
            models.CheckConstraint(
                condition=(Q(status=ReceiptStatus.UNALLOCATED) & Q(unallocated_amount=F("amount")))
                | (Q(status=ReceiptStatus.SALE) & Q(sale_payment__isnull=False))
                | (
                    Q(
                        status__in=[
                            ReceiptStatus.ALLOCATED,
                            ReceiptStatus.PARTLY_ALLOCATED,
                            ReceiptStatus.CREDIT,
                        ]
                    )
                    & Q(payment__isnull=False)
                )
                | (Q(status=ReceiptStatus.REFUNDED) & Q(unallocated_amount=0)),
                name="mpesa_mpesareceipt_booked_somewhere",
            ),
            models.CheckConstraint(
                condition=Q(unallocated_amount=0)
                | (
                    Q(
                        unallocated_amount__gt=0,
                        unallocated_amount__lte=F("amount"),
                        suspense_entry__isnull=False,
                    )
                    & ~Q(unallocated_reason="")
                ),
                name="mpesa_mpesareceipt_suspense_explained",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "trans_time"], name="mpesa_receipt_customer_day_idx"),
            # The receipts list (newest first) and the collections report read by time.
            models.Index(fields=["trans_time", "id"], name="mpesa_receipt_time_idx"),
            # The suspense queue (newest first, and counted) from its own rows only.
            models.Index(
                fields=["trans_time", "id"],
                name="mpesa_receipt_queue_idx",
                condition=Q(unallocated_amount__gt=0, payment__isnull=True),
            ),
            models.Index(
                fields=["trans_time"],
                name="mpesa_receipt_suspense_idx",
                condition=Q(unallocated_amount__gt=0),
            ),
        ]

    def __str__(self) -> str:
        return self.trans_id


class UnallocatedReceipt(MpesaReceipt):
    """The suspense queue: receipts (or parts of them) no one has been matched to yet."""

    class Meta:
        proxy = True
        verbose_name = "unallocated receipt"


class ReceiptConflict(models.Model):
    """A TransID delivered again with a different amount, account number or shortcode. Nothing more is
    booked; a person must look at it."""

    receipt = models.ForeignKey(MpesaReceipt, on_delete=models.PROTECT, related_name="conflicts")
    webhook_log = models.ForeignKey(WebhookLog, on_delete=models.PROTECT, related_name="+")
    differences = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    review_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.receipt.trans_id}: {self.differences[:60]}"


class DarajaAccessToken(models.Model):
    """The one OAuth token all workers share: each new token Safaricom issues invalidates the last."""

    api_base = models.CharField(max_length=200)
    consumer_key = models.CharField(max_length=200)
    token = models.CharField(max_length=500, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    fetching_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is asking Safaricom for a new token until then."
    )
    fetch_lease = models.UUIDField(null=True, blank=True, help_text="Which worker's fetch that is.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["api_base", "consumer_key"], name="mpesa_darajaaccesstoken_one_per_app"
            )
        ]

    def __str__(self) -> str:
        return f"{self.api_base} ({self.consumer_key[:6]}…)"


class StkStatus(models.TextChoices):
    # Stored before the request goes to Safaricom, while the sale is locked: a second press for the
    # same sale finds it and sends nothing, so the phone never gets two prompts for one sale.
    SENDING = "SENDING", "Being sent to Safaricom"
    REQUESTED = "REQUESTED", "Prompt sent, waiting for the customer"
    PAID = "PAID", "Paid"
    FAILED = "FAILED", "Not paid"
    NEEDS_REVIEW = "NEEDS_REVIEW", "Unclear: needs review"
    # Safaricom did not answer the request, which may still have reached it: the prompt may still
    # appear on the phone, so the sale gets no second one for a while.
    UNANSWERED = "UNANSWERED", "Safaricom did not answer: may still reach the phone"


class StkPush(models.Model):
    """One M-Pesa Express prompt for a customer's phone, stored before it is sent."""

    checkout_request_id = models.CharField(max_length=100)
    merchant_request_id = models.CharField(max_length=100, blank=True)
    sale = models.ForeignKey(Sale, null=True, blank=True, on_delete=models.PROTECT, related_name="stk_pushes")
    account_reference = models.CharField(max_length=12)
    phone = models.CharField(max_length=12)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    status = models.CharField(max_length=15, choices=StkStatus.choices, default=StkStatus.REQUESTED)
    result_code = models.CharField(max_length=20, blank=True)
    result_desc = models.CharField(max_length=300, blank=True)
    mpesa_receipt_number = models.CharField(max_length=30, blank=True)
    receipt = models.ForeignKey(
        MpesaReceipt, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # When Safaricom took it, or we stopped waiting for its answer: the phone may show it from then.
    sent_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["checkout_request_id"], name="mpesa_stkpush_one_per_checkout_request"
            ),
            models.CheckConstraint(condition=Q(amount__gte=1), name="mpesa_stkpush_amount_at_least_one"),
        ]
        indexes = [
            models.Index(
                fields=["created_at"], name="mpesa_stkpush_requested_idx", condition=Q(status="REQUESTED")
            ),
            models.Index(
                fields=["created_at"], name="mpesa_stkpush_sending_idx", condition=Q(status="SENDING")
            ),
            # A paid callback whose prompt's id was lost looks for the prompt among these.
            models.Index(
                fields=["created_at"], name="mpesa_stkpush_unanswered_idx", condition=Q(status="UNANSWERED")
            ),
        ]

    def __str__(self) -> str:
        return self.checkout_request_id


class StatementImport(models.Model):
    """An M-Pesa Org-portal statement (CSV) compared, receipt by receipt, with our books."""

    file_name = models.CharField(max_length=255)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    uploaded_at = models.DateTimeField(auto_now_add=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(default=dict)

    class Meta:
        ordering = ["-uploaded_at"]

    def __str__(self) -> str:
        return f"{self.file_name} ({self.uploaded_at:%Y-%m-%d %H:%M})"


class StatementOutcome(models.TextChoices):
    MATCHED = "MATCHED", "Matched"
    MISSING = "MISSING", "Missing from our books"
    AMOUNT_DIFFERS = "AMOUNT_DIFFERS", "Amount differs"
    NOT_ON_STATEMENT = "NOT_ON_STATEMENT", "In our books, not on the statement"
    NOT_A_PAYMENT = "NOT_A_PAYMENT", "Not a customer payment (charge, settlement, failed)"
    BOOKED = "BOOKED", "Was missing; booked by the accountant"


class StatementLine(models.Model):
    statement = models.ForeignKey(StatementImport, on_delete=models.PROTECT, related_name="lines")
    row_number = models.PositiveIntegerField(null=True, blank=True)
    receipt_no = models.CharField(max_length=30)
    completed_at = models.DateTimeField(null=True, blank=True)
    details = models.CharField(max_length=300, blank=True)
    paid_in = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    account_no = models.CharField(max_length=100, blank=True)
    payer = models.CharField(max_length=200, blank=True)
    outcome = models.CharField(max_length=20, choices=StatementOutcome.choices)
    our_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    receipt = models.ForeignKey(
        MpesaReceipt, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["statement", "row_number", "id"]

    def __str__(self) -> str:
        return f"{self.receipt_no}: {self.get_outcome_display()}"


class InitiatorRequest(models.Model):
    """What a request to an initiator API (Transaction Status, Reversal) keeps: who asked, when, the
    conversation IDs Safaricom's acknowledgement gives, and its result callback."""

    originator_conversation_id = models.CharField(max_length=100, blank=True)
    conversation_id = models.CharField(max_length=100, blank=True)
    result_code = models.CharField(max_length=20, blank=True)
    result_desc = models.CharField(max_length=300, blank=True)
    result_parameters = models.JSONField(default=dict, blank=True)
    result_log = models.ForeignKey(
        WebhookLog, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


class StatusQueryState(models.TextChoices):
    REQUESTED = "REQUESTED", "Asked, waiting for Safaricom's answer"
    ANSWERED = "ANSWERED", "Answered"
    REFUSED = "REFUSED", "Safaricom could not answer"
    TIMED_OUT = "TIMED_OUT", "Timed out in Safaricom's queue: unknown, ask again"


class TransactionStatusQuery(InitiatorRequest):
    """One Transaction Status question about one M-Pesa receipt, stored before Safaricom is asked, and
    the answer its result callback brings (only the first answer counts)."""

    receipt_number = models.CharField(max_length=30, db_index=True)
    receipt = models.ForeignKey(
        MpesaReceipt, null=True, blank=True, on_delete=models.PROTECT, related_name="status_queries",
        help_text="Our booking of this receipt, if we have one.",
    )  # fmt: skip
    state = models.CharField(
        max_length=12, choices=StatusQueryState.choices, default=StatusQueryState.REQUESTED
    )
    transaction_status = models.CharField(
        max_length=30, blank=True, help_text="Safaricom's word for the payment: Completed, Cancelled, ..."
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    debit_party_name = models.CharField(max_length=200, blank=True)
    credit_party_name = models.CharField(max_length=200, blank=True)
    finalised_time = models.CharField(max_length=30, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name_plural = "transaction status queries"
        constraints = [
            models.UniqueConstraint(
                fields=["originator_conversation_id"],
                condition=~Q(originator_conversation_id=""),
                name="mpesa_statusquery_one_per_conversation",
            )
        ]

    def __str__(self) -> str:
        return f"Status of {self.receipt_number} ({self.get_state_display()})"

    @property
    def amount_differs(self) -> bool | None:
        if self.amount is None or self.receipt is None:
            return None
        return self.amount != self.receipt.amount


class RefundState(models.TextChoices):
    REQUESTED = "REQUESTED", "Asked Safaricom to reverse, waiting for the result"
    COMPLETED = "COMPLETED", "Reversed: the money went back to the payer"
    FAILED = "FAILED", "Safaricom did not reverse it"
    TIMED_OUT = "TIMED_OUT", "Timed out in Safaricom's queue: check the receipt's status"
    NEEDS_REVIEW = "NEEDS_REVIEW", "Reversed by Safaricom but not booked: needs review"


class MpesaRefund(InitiatorRequest):
    """A refund of a whole receipt through the M-Pesa Reversal API. Stored before Safaricom is asked;
    the result callback settles it once, and only a completed reversal touches the books."""

    receipt = models.ForeignKey(MpesaReceipt, on_delete=models.PROTECT, related_name="refunds")
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    reason = models.TextField()
    state = models.CharField(max_length=12, choices=RefundState.choices, default=RefundState.REQUESTED)
    reversal_receipt_number = models.CharField(
        max_length=30, blank=True, help_text="M-Pesa's receipt for the reversal itself."
    )
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        verbose_name = "M-Pesa refund"
        constraints = [
            # One reversal in flight or done per receipt: a receipt is never refunded twice.
            models.UniqueConstraint(
                fields=["receipt"],
                condition=Q(state__in=["REQUESTED", "COMPLETED", "NEEDS_REVIEW"]),
                name="mpesa_mpesarefund_one_live_per_receipt",
            ),
            models.UniqueConstraint(
                fields=["originator_conversation_id"],
                condition=~Q(originator_conversation_id=""),
                name="mpesa_mpesarefund_one_per_conversation",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="mpesa_mpesarefund_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"Refund of {self.receipt.trans_id} ({self.get_state_display()})"
