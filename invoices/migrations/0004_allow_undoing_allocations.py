"""What was paid on an invoice may go down only when a payment is reallocated (the reallocation
service says so for its own transaction); at any other time the guard still refuses it."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION invoices_invoice_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'VOID' THEN
        RAISE EXCEPTION 'invoice % is void and can no longer change', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.number <> OLD.number OR NEW.customer_id <> OLD.customer_id OR NEW.issue_date <> OLD.issue_date THEN
        RAISE EXCEPTION 'invoice % keeps its number, customer and issue date', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.amount_paid < OLD.amount_paid
       AND coalesce(current_setting('kellyos.reallocating', true), '') <> 'on' THEN
        RAISE EXCEPTION 'the amount paid on invoice % cannot go down (% -> %)', OLD.number, OLD.amount_paid, NEW.amount_paid
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.total <> OLD.total OR NEW.journal_entry_id <> OLD.journal_entry_id) AND OLD.amount_paid <> 0 THEN
        RAISE EXCEPTION 'invoice % has payments: its total can no longer change', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("invoices", "0003_payment_reallocation")]

    operations = [migrations.RunSQL(FORWARD, migrations.RunSQL.noop)]
