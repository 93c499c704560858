"""Journal entries are only ever created through the posting service, so the factory posts one."""

from decimal import Decimal
from typing import Any

import factory
from django.db import connection, transaction

from ledger.chart import CHART_OF_ACCOUNTS, MPESA_CASH, SALES_REVENUE
from ledger.models import Account, CauseKind, CustomerBalance, JournalEntry
from ledger.services import JournalLineInput, journal_entry_post


class PostedEntryFactory(factory.Factory):
    """A two-line entry: `amount` debited to `debit_account` and credited to `credit_account`."""

    class Meta:
        model = JournalEntry

    memo = factory.Sequence(lambda n: f"Till sale {n}")
    amount = Decimal("100.00")
    debit_account = MPESA_CASH
    credit_account = SALES_REVENUE
    cause_kind = CauseKind.MANUAL
    cause_id = ""
    posted_at = None
    customer_id = None

    @classmethod
    def _create(cls, model_class: type[JournalEntry], **kwargs: Any) -> JournalEntry:
        amount = kwargs["amount"]
        with transaction.atomic():
            return journal_entry_post(
                memo=kwargs["memo"],
                lines=[
                    JournalLineInput(
                        account=kwargs["debit_account"], debit=amount, customer_id=kwargs["customer_id"]
                    ),
                    JournalLineInput(
                        account=kwargs["credit_account"], credit=amount, customer_id=kwargs["customer_id"]
                    ),
                ],
                cause_kind=kwargs["cause_kind"],
                cause_id=kwargs["cause_id"],
                posted_at=kwargs["posted_at"],
            )


def force_balance_drift(*, account_code: str, debit: str = "0", credit: str = "0") -> None:
    """Corrupt an account's maintained balance the only way possible: as table owner, switching the
    guard trigger off. Used to prove that ledger_verify notices."""
    with connection.cursor() as cursor:
        # ALTER TABLE refuses while deferred checks are queued; run them now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE ledger_accountbalance DISABLE TRIGGER ledger_accountbalance_guard")
        cursor.execute(
            "UPDATE ledger_accountbalance"
            " SET debit_total = debit_total + %s, credit_total = credit_total + %s"
            " WHERE id = (SELECT min(b.id) FROM ledger_accountbalance b"
            " JOIN ledger_account a ON a.id = b.account_id WHERE a.code = %s)",
            [debit, credit, account_code],
        )
        cursor.execute("ALTER TABLE ledger_accountbalance ENABLE ALWAYS TRIGGER ledger_accountbalance_guard")


def force_customer_balance_drift(*, customer_id: int, account_code: str, credit: str) -> None:
    """As force_balance_drift, for one customer's maintained sub-ledger balance."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE ledger_customerbalance DISABLE TRIGGER ledger_customerbalance_guard")
        cursor.execute(
            "UPDATE ledger_customerbalance SET credit_total = credit_total + %s"
            " WHERE customer_id = %s AND account_id = (SELECT id FROM ledger_account WHERE code = %s)",
            [credit, customer_id, account_code],
        )
        cursor.execute(
            "ALTER TABLE ledger_customerbalance ENABLE ALWAYS TRIGGER ledger_customerbalance_guard"
        )


def customer_balances() -> dict[tuple[int, str], tuple[Decimal, Decimal]]:
    """Every maintained customer balance row, as {(customer id, account code): (debit, credit)}."""
    return {
        (row.customer_id, row.account.code): (row.debit_total, row.credit_total)
        for row in CustomerBalance.objects.select_related("account")
    }


def chart_of_accounts_ensure() -> None:
    """The migration seeds the chart; transactional tests truncate it away afterwards."""
    for code, name, account_type, description in CHART_OF_ACCOUNTS:
        Account.objects.get_or_create(
            code=code, defaults={"name": name, "type": account_type, "description": description}
        )
