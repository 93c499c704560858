import pytest

from ledger.chart import CHART_OF_ACCOUNTS
from ledger.models import Account


@pytest.fixture(autouse=True)
def chart_of_accounts(request: pytest.FixtureRequest) -> None:
    """The migration seeds the chart, but transactional tests truncate every table after they run;
    put it back for any test that uses the database."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    for code, name, account_type, description in CHART_OF_ACCOUNTS:
        Account.objects.get_or_create(
            code=code, defaults={"name": name, "type": account_type, "description": description}
        )
