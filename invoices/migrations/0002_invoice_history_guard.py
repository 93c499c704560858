"""An invoice's status never moves backwards behind the services' back: a void invoice stays void,
its number and customer never change, what was paid on it never shrinks, and its total can change
only while nothing has been paid (a correction, which reverses and reposts it)."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION invoices_invoice_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'VOID' THEN
        RAISE EXCEPTION 'invoice % is void and can no longer change', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.number <> OLD.number OR NEW.customer_id <> OLD.customer_id OR NEW.issue_date <> OLD.issue_date THEN
        RAISE EXCEPTION 'invoice % keeps its number, customer and issue date', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF NEW.amount_paid < OLD.amount_paid THEN
        RAISE EXCEPTION 'the amount paid on invoice % cannot go down (% -> %)', OLD.number, OLD.amount_paid, NEW.amount_paid
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF (NEW.total <> OLD.total OR NEW.journal_entry_id <> OLD.journal_entry_id) AND OLD.amount_paid <> 0 THEN
        RAISE EXCEPTION 'invoice % has payments: its total can no longer change', OLD.number
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION invoices_invoice_guard() SET search_path = %I, pg_catalog, pg_temp', current_schema());
END $$;

CREATE TRIGGER invoices_invoice_guard
    BEFORE UPDATE ON invoices_invoice
    FOR EACH ROW EXECUTE FUNCTION invoices_invoice_guard();

CREATE FUNCTION invoices_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'DELETE on % refused: invoices, payments and allocations are kept; void instead', TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION invoices_refuse_delete() SET search_path = %I, pg_catalog, pg_temp', current_schema());
END $$;

CREATE TRIGGER invoices_invoice_kept BEFORE DELETE ON invoices_invoice
    FOR EACH ROW EXECUTE FUNCTION invoices_refuse_delete();
CREATE TRIGGER invoices_payment_kept BEFORE DELETE ON invoices_payment
    FOR EACH ROW EXECUTE FUNCTION invoices_refuse_delete();
CREATE TRIGGER invoices_allocation_kept BEFORE DELETE ON invoices_allocation
    FOR EACH ROW EXECUTE FUNCTION invoices_refuse_delete();
"""

BACKWARD = """
DROP TRIGGER invoices_allocation_kept ON invoices_allocation;
DROP TRIGGER invoices_payment_kept ON invoices_payment;
DROP TRIGGER invoices_invoice_kept ON invoices_invoice;
DROP FUNCTION invoices_refuse_delete();
DROP TRIGGER invoices_invoice_guard ON invoices_invoice;
DROP FUNCTION invoices_invoice_guard();
"""


class Migration(migrations.Migration):
    dependencies = [("invoices", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
