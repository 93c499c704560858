"""Customer sub-ledger balances kept by PostgreSQL, as account balances are (0002): a payment reads its
customer's position from one row per account instead of summing every line of their history.

The existing lines are summed into the table while line inserts wait (SHARE lock), so no line is
counted twice or missed; from then on a statement-level trigger on line inserts adds each statement's
lines, and nothing else may write the table.
"""

from decimal import Decimal

import django.db.models.deletion
from django.db import migrations, models


FORWARD = """
LOCK TABLE ledger_journalline IN SHARE MODE;

INSERT INTO ledger_customerbalance (customer_id, account_id, debit_total, credit_total)
SELECT customer_id, account_id, sum(debit), sum(credit)
  FROM ledger_journalline
 WHERE customer_id IS NOT NULL
 GROUP BY customer_id, account_id;

-- SECURITY DEFINER: the application role needs no write access to the balance table at all. Rows in
-- (customer, account) order, so two statements touching the same customers never deadlock here.
CREATE FUNCTION ledger_lines_apply_to_customer_balances() RETURNS trigger LANGUAGE plpgsql
SECURITY DEFINER AS $$
BEGIN
    INSERT INTO ledger_customerbalance (customer_id, account_id, debit_total, credit_total)
    SELECT customer_id, account_id, sum(debit), sum(credit)
      FROM new_lines
     WHERE customer_id IS NOT NULL
     GROUP BY customer_id, account_id
     ORDER BY customer_id, account_id
    ON CONFLICT (customer_id, account_id) DO UPDATE
       SET debit_total = ledger_customerbalance.debit_total + EXCLUDED.debit_total,
           credit_total = ledger_customerbalance.credit_total + EXCLUDED.credit_total;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_journalline_apply_to_customer_balances
    AFTER INSERT ON ledger_journalline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_lines_apply_to_customer_balances();

-- Direct writes are refused by the guard the account balances have (0002): it lets through only
-- writes made one trigger level down, by the line trigger's upsert.
CREATE TRIGGER ledger_customerbalance_guard
    BEFORE INSERT OR UPDATE OR DELETE ON ledger_customerbalance
    FOR EACH ROW EXECUTE FUNCTION ledger_balance_guard();

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ledger_lines_apply_to_customer_balances() SET search_path = %I, '
                   'pg_catalog, pg_temp', current_schema());
END $$;

ALTER TABLE ledger_journalline ENABLE ALWAYS TRIGGER ledger_journalline_apply_to_customer_balances;
ALTER TABLE ledger_customerbalance ENABLE ALWAYS TRIGGER ledger_customerbalance_guard;
"""

BACKWARD = """
DROP TRIGGER ledger_customerbalance_guard ON ledger_customerbalance;
DROP TRIGGER ledger_journalline_apply_to_customer_balances ON ledger_journalline;
DROP FUNCTION ledger_lines_apply_to_customer_balances();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0006_contains_search_indexes")]

    operations = [
        migrations.CreateModel(
            name="CustomerBalance",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("customer_id", models.BigIntegerField()),
                (
                    "debit_total",
                    models.DecimalField(decimal_places=2, default=Decimal("0.00"), max_digits=18),
                ),
                (
                    "credit_total",
                    models.DecimalField(decimal_places=2, default=Decimal("0.00"), max_digits=18),
                ),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="customer_balances",
                        to="ledger.account",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("customer_id", "account"), name="ledger_customerbalance_one_row_per_account"
                    )
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
