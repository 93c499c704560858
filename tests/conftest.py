import pytest
from django.contrib.auth.models import Group, Permission

from pos.roles import CASHIER_GROUP, CASHIER_PERMISSIONS
from tests.ledger.factories import chart_of_accounts_ensure


@pytest.fixture(autouse=True)
def chart_of_accounts(request: pytest.FixtureRequest) -> None:
    """Migrations seed the chart of accounts and the Cashier role, but transactional tests truncate
    every table after they run; put them back for any test that uses the database."""
    marker = request.node.get_closest_marker("django_db")
    if marker is None:
        return
    transactional = marker.kwargs.get("transaction", False)
    request.getfixturevalue("transactional_db" if transactional else "db")
    chart_of_accounts_ensure()
    finance = Permission.objects.filter(
        content_type__app_label__in=["ledger", "customers", "invoices", "pos", "mpesa"]
    )
    Group.objects.get_or_create(name="Accountant")[0].permissions.set(finance)
    Group.objects.get_or_create(name="Auditor")[0].permissions.set(
        finance.filter(codename__startswith="view_")
    )
    cashier, _ = Group.objects.get_or_create(name=CASHIER_GROUP)
    cashier.permissions.set(
        Permission.objects.filter(content_type__app_label="pos", codename__in=CASHIER_PERMISSIONS)
    )
