"""The application's own database role cannot rewrite the books, even with raw SQL."""

import uuid
from decimal import Decimal

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from ledger.selectors import account_balance, customer_subledger_totals, ledger_verify
from tests.customers.factories import CustomerFactory
from tests.ledger.factories import PostedEntryFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def app_role():
    role = f"kellyos_app_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {role} LOGIN")
    yield role
    with connection.cursor() as cursor:
        cursor.execute(f"DROP OWNED BY {role}")
        cursor.execute(f"DROP ROLE {role}")


def connect_as(role):
    params = connection.get_connection_params()
    return psycopg.connect(
        dbname=params["dbname"], host=params.get("host"), port=params.get("port"), user=role, autocommit=True
    )


def test_the_app_role_can_post_but_cannot_rewrite_or_truncate_the_ledger(app_role):
    entry = PostedEntryFactory(amount=Decimal("100.00"))
    customer = CustomerFactory()
    call_command("db_grant_app_role", app_role)
    with connect_as(app_role) as conn:
        # Posting works: the balance triggers write the balance rows with their owner's rights.
        with conn.transaction():
            entry_id = conn.execute(
                "INSERT INTO ledger_journalentry (posted_at, memo, cause_kind, cause_id, reversal_reason,"
                " recorded_at) VALUES (now(), 'Till sale', 'sale', '', '', now()) RETURNING id"
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, customer_id, posted_at)"
                " SELECT %s, id, CASE code WHEN '1010' THEN 50 ELSE 0 END,"
                " CASE code WHEN '4000' THEN 50 ELSE 0 END, %s, now()"
                " FROM ledger_account WHERE code IN ('1010', '4000')",
                [entry_id, customer.pk],
            )
        for statement in [
            "UPDATE ledger_journalline SET debit = 1 WHERE false",
            "DELETE FROM ledger_journalentry WHERE false",
            "UPDATE ledger_accountbalance SET debit_total = 0 WHERE false",
            "UPDATE ledger_customerbalance SET credit_total = 0 WHERE false",
            "TRUNCATE ledger_journalline",
            "ALTER TABLE ledger_journalline DISABLE TRIGGER ledger_journalline_immutable",
            "SET session_replication_role = replica",
        ]:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
    assert account_balance("1010") == Decimal("150.00")
    assert customer_subledger_totals(customer_ids=[customer.pk], account_codes=["4000"]) == {
        (customer.pk, "4000"): (Decimal("0.00"), Decimal("50.00"))
    }
    assert entry.lines.count() == 2
    assert ledger_verify()["is_valid"]


def test_a_superuser_or_unknown_role_is_refused():
    with pytest.raises(CommandError, match="No database role"):
        call_command("db_grant_app_role", "no_such_role_here")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        me = cursor.fetchone()[0]
    with pytest.raises(CommandError, match="superuser"):
        call_command("db_grant_app_role", me)
