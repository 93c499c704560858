import re
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import DecimalField, F, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from customers.exceptions import CustomerNotFoundError
from customers.models import CODE_PREFIX, Customer
from kellyos.db import row_first, rows_fetch
from kellyos.money import ZERO
from ledger.chart import ACCOUNTS_RECEIVABLE, CUSTOMER_CREDIT
from ledger.models import CustomerBalance
from ledger.selectors import customer_subledger_totals

# What a customer may type for CUST-0042: "cust-0042", "CUST 42", "cust42".
_CODE_TEXT = re.compile(r"^CUST-?0*([0-9]+)$", re.ASCII)


@dataclass(frozen=True)
class CustomerPosition:
    """What a customer owes on open invoices, the credit they hold, and the difference."""

    owed: Decimal
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        return self.owed - self.credit


def customer_code_normalize(reference: str) -> str | None:
    """The customer code a typed reference means, or None if it is not a customer code."""
    match = _CODE_TEXT.match("".join(reference.split()).upper())
    if not match:
        return None
    return f"{CODE_PREFIX}{int(match.group(1)):04d}"


def customer_get_by_code(code: str) -> Customer:
    normalised = customer_code_normalize(code)
    customer = Customer.objects.filter(code=normalised).first() if normalised else None
    if customer is None:
        raise CustomerNotFoundError(f"No customer with code {code!r}.")
    return customer


def customer_id_by_code(code: str) -> int | None:
    """The id of the customer with exactly this (normalised) code: one index probe, on every payment."""
    rows = rows_fetch("SELECT id FROM customers_customer WHERE code = %s", [code])
    return rows[0][0] if rows else None


def customer_get_for_update(customer_id: int) -> Customer:
    """Lock the customer row: every change to a customer's receivables or credit starts here."""
    customer = row_first(Customer, "id = %s", [customer_id], tail="FOR UPDATE")
    if customer is None:
        raise Customer.DoesNotExist(f"No customer with id {customer_id}.")
    return customer


def customer_positions(customer_ids: list[int]) -> dict[int, CustomerPosition]:
    """Owed and credit per customer, read from the ledger's sub-ledgers in one query."""
    totals = customer_subledger_totals(
        customer_ids=customer_ids, account_codes=[ACCOUNTS_RECEIVABLE, CUSTOMER_CREDIT]
    )
    positions = {}
    for customer_id in customer_ids:
        receivable_debit, receivable_credit = totals.get((customer_id, ACCOUNTS_RECEIVABLE), (ZERO, ZERO))
        credit_debit, credit_credit = totals.get((customer_id, CUSTOMER_CREDIT), (ZERO, ZERO))
        positions[customer_id] = CustomerPosition(
            owed=receivable_debit - receivable_credit, credit=credit_credit - credit_debit
        )
    return positions


def customer_position(customer_id: int) -> CustomerPosition:
    return customer_positions([customer_id])[customer_id]


def customer_list_with_positions() -> QuerySet[Customer]:
    """Customers annotated with `owed` and `credit` from the ledger's sub-ledgers (for lists and admin)."""

    def subledger(code: str, sign: int) -> Coalesce:
        balance = CustomerBalance.objects.filter(customer_id=OuterRef("pk"), account__code=code).values(
            net=sign * (F("debit_total") - F("credit_total"))
        )
        return Coalesce(Subquery(balance, output_field=DecimalField(max_digits=18, decimal_places=2)), ZERO)

    return Customer.objects.annotate(
        owed=subledger(ACCOUNTS_RECEIVABLE, 1), credit=subledger(CUSTOMER_CREDIT, -1)
    )
