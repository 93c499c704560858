"""The double-entry ledger.

PostgreSQL keeps these tables honest (see migrations 0002): an entry's debits equal its credits at
commit, every entry has at least two lines, posted rows are never updated or deleted, lines can only
be added in the transaction that created their entry, and a reversal exactly cancels its original.
Account balances are kept in striped rows by a trigger, so reading one costs a handful of rows and
concurrent postings to the same account rarely wait for each other.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class AccountType(models.TextChoices):
    ASSET = "ASSET", "Asset"
    LIABILITY = "LIABILITY", "Liability"
    EQUITY = "EQUITY", "Equity"
    REVENUE = "REVENUE", "Revenue"
    EXPENSE = "EXPENSE", "Expense"


DEBIT_NORMAL_TYPES = frozenset({AccountType.ASSET, AccountType.EXPENSE})


class Account(models.Model):
    code = models.CharField(max_length=10, unique=True)
    name = models.CharField(max_length=100)
    type = models.CharField(max_length=10, choices=AccountType.choices)
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=Q(type__in=AccountType.values), name="ledger_account_type_known"
            ),
            models.CheckConstraint(
                condition=Q(code__regex=r"^[0-9]{4,10}$"), name="ledger_account_code_digits"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.name}"

    @property
    def is_debit_normal(self) -> bool:
        """Assets and expenses grow with debits; liabilities, equity and revenue with credits."""
        return self.type in DEBIT_NORMAL_TYPES

    def signed(self, *, debit: Decimal, credit: Decimal) -> Decimal:
        """Debits and credits expressed on this account's normal side."""
        return debit - credit if self.is_debit_normal else credit - debit


class CauseKind(models.TextChoices):
    """What business event a journal entry books."""

    INVOICE = "invoice", "Invoice"
    RECEIPT = "receipt", "Receipt"
    SALE = "sale", "Sale"
    ALLOCATION = "allocation", "Allocation"
    REVERSAL = "reversal", "Reversal"
    VOID = "void", "Void"
    MANUAL = "manual", "Manual journal"
    DEMO = "demo", "Demo data"


class JournalEntry(models.Model):
    posted_at = models.DateTimeField(default=timezone.now, db_index=True)
    memo = models.CharField(max_length=255)
    cause_kind = models.CharField(max_length=20, choices=CauseKind.choices)
    cause_id = models.CharField(max_length=64, blank=True)
    posted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reverses = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversals"
    )
    reversal_reason = models.TextField(blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)
    # Set by a database trigger to the creating transaction's id: lines may only join an entry
    # inside that transaction, so a committed entry can never grow.
    created_txid = models.BigIntegerField(null=True, editable=False)

    class Meta:
        verbose_name_plural = "journal entries"
        permissions = [("reverse_journalentry", "Can reverse a posted journal entry")]
        ordering = ["-posted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["reverses"], name="ledger_journalentry_one_reversal_per_entry"),
            models.CheckConstraint(
                condition=Q(reverses__isnull=True) | Q(reverses__lt=models.F("id")),
                name="ledger_journalentry_reverses_an_earlier_entry",
            ),
            models.CheckConstraint(
                condition=Q(reverses__isnull=True) | ~Q(reversal_reason=""),
                name="ledger_journalentry_reversal_has_reason",
            ),
        ]
        indexes = [models.Index(fields=["cause_kind", "cause_id"], name="ledger_entry_cause_idx")]

    def __str__(self) -> str:
        return f"JE-{self.pk} {self.memo}"


class JournalLine(models.Model):
    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines", db_index=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="lines")
    debit = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    credit = models.DecimalField(max_digits=14, decimal_places=2, default=Decimal("0.00"))
    # Sub-ledger key for receivables and customer credit. A plain column rather than a foreign key
    # because the ledger depends on no other app; the customers app owns the customer table.
    customer_id = models.BigIntegerField(null=True, blank=True)
    # Copied from the entry by a trigger, so as-of balances read one index per account.
    posted_at = models.DateTimeField(editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(debit__gt=0) & Q(credit=0)) | (Q(debit=0) & Q(credit__gt=0)),
                name="ledger_journalline_one_side_positive",
            ),
        ]
        indexes = [
            # (entry, id): an entry's lines, and its last line for the commit-time balance check.
            models.Index(fields=["entry", "id"], name="ledger_line_entry_idx"),
            models.Index(fields=["account", "posted_at"], name="ledger_line_account_time_idx"),
            models.Index(
                fields=["customer_id", "account", "posted_at"],
                name="ledger_line_customer_idx",
                condition=Q(customer_id__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        side = f"DR {self.debit}" if self.debit else f"CR {self.credit}"
        return f"{self.account_id} {side}"


class AccountBalance(models.Model):
    """Running totals of one account, split across stripes.

    Written only by the journal-line trigger; each database session adds to the stripe chosen by
    its backend pid, so concurrent payments to M-Pesa Cash update different rows. An account's
    balance is the sum of its stripes.
    """

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="balance_stripes")
    stripe = models.SmallIntegerField()
    debit_total = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0.00"))
    credit_total = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0.00"))

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "stripe"], name="ledger_accountbalance_one_row_per_stripe"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}#{self.stripe}"


class CustomerBalance(models.Model):
    """Running totals of one customer's sub-ledger in one account (receivables, customer credit).

    Written only by the journal-line trigger, so a customer's position is a row per account however
    long their history, and every payment reads it. Postings to one customer already wait for each
    other on the customer's row lock, so this row adds no waiting of its own.
    """

    customer_id = models.BigIntegerField()  # plain column, as on JournalLine
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, related_name="customer_balances", db_index=False
    )
    debit_total = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0.00"))
    credit_total = models.DecimalField(max_digits=18, decimal_places=2, default=Decimal("0.00"))

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer_id", "account"], name="ledger_customerbalance_one_row_per_account"
            ),
        ]

    def __str__(self) -> str:
        return f"customer {self.customer_id} in {self.account_id}"


class PeriodLock(models.Model):
    """The books are closed up to and including `locked_through` (a business day): nothing may be
    posted or reversed with a date before `boundary`. Each change is a new row, kept as history."""

    locked_through = models.DateField()
    boundary = models.DateTimeField(
        help_text="The first moment still open: midnight after locked_through, Nairobi."
    )
    reason = models.TextField()
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    set_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"Closed through {self.locked_through}"
