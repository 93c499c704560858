import pytest

from ledger.models import Account, AccountType

# A liability of the ledger's own for these tests. The chart's business accounts (receivables,
# customer credit, M-Pesa suspense) are checked against invoices and receipts by ledger_verify,
# so bare postings to them would rightly be reported.
ACCRUED_EXPENSES = "2900"


@pytest.fixture(autouse=True)
def accrued_expenses_account(request: pytest.FixtureRequest, chart_of_accounts: None) -> None:
    if request.node.get_closest_marker("django_db") is None:
        return
    Account.objects.get_or_create(
        code=ACCRUED_EXPENSES, defaults={"name": "Accrued Expenses", "type": AccountType.LIABILITY}
    )
