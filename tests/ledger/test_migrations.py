"""Migrations that carry the books forward: run back and forth on a database that already holds lines."""

from decimal import Decimal

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from ledger.chart import CUSTOMER_CREDIT, MPESA_CASH
from ledger.selectors import ledger_verify
from tests.customers.factories import CustomerFactory
from tests.ledger.factories import PostedEntryFactory, customer_balances

BEFORE_CUSTOMER_BALANCES = ("ledger", "0006_contains_search_indexes")


def migrate(*targets):
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_customer_balances_start_from_the_lines_already_posted():
    first, second = CustomerFactory(), CustomerFactory()
    migrate(BEFORE_CUSTOMER_BALANCES)
    try:
        for customer, amount in [(first, "100.00"), (second, "40.00"), (first, "25.50")]:
            PostedEntryFactory(
                amount=Decimal(amount), credit_account=CUSTOMER_CREDIT, customer_id=customer.pk
            )
        PostedEntryFactory(amount=Decimal("7.00"))  # no customer: no sub-ledger row
    finally:
        migrate()  # forward again, whatever happened: the rest of the suite needs the latest schema

    assert customer_balances() == {
        (first.pk, MPESA_CASH): (Decimal("125.50"), Decimal("0.00")),
        (first.pk, CUSTOMER_CREDIT): (Decimal("0.00"), Decimal("125.50")),
        (second.pk, MPESA_CASH): (Decimal("40.00"), Decimal("0.00")),
        (second.pk, CUSTOMER_CREDIT): (Decimal("0.00"), Decimal("40.00")),
    }
    PostedEntryFactory(amount=Decimal("4.50"), credit_account=CUSTOMER_CREDIT, customer_id=second.pk)
    assert customer_balances()[(second.pk, CUSTOMER_CREDIT)] == (Decimal("0.00"), Decimal("44.50"))
    assert [error for error in ledger_verify()["errors"] if "maintained balance" in error] == []
