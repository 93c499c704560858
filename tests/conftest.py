import pytest

from tests.ledger.factories import chart_of_accounts_ensure


@pytest.fixture(autouse=True)
def chart_of_accounts(request: pytest.FixtureRequest) -> None:
    """The migration seeds the chart, but transactional tests truncate every table after they run;
    put it back for any test that uses the database."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    chart_of_accounts_ensure()
