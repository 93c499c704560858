"""Customer codes come from a database sequence (sequential, never reused, whoever inserts), and the
ledger's customer sub-ledger column may only name a real customer."""

from django.db import migrations

FORWARD = """
CREATE SEQUENCE customers_customer_code_seq;

-- lpad() would cut 10000 down to "1000", so only numbers below 10000 are padded.
CREATE FUNCTION customers_customer_assign_code() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_number bigint;
BEGIN
    IF NEW.code IS NULL OR NEW.code = '' THEN
        next_number := nextval('customers_customer_code_seq');
        NEW.code := 'CUST-' || CASE WHEN next_number < 10000 THEN lpad(next_number::text, 4, '0')
                                    ELSE next_number::text END;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER customers_customer_assign_code
    BEFORE INSERT ON customers_customer
    FOR EACH ROW EXECUTE FUNCTION customers_customer_assign_code();

CREATE FUNCTION customers_customer_code_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.code <> OLD.code THEN
        RAISE EXCEPTION 'customer codes never change (% -> %): payments are matched by them', OLD.code, NEW.code
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER customers_customer_code_fixed
    BEFORE UPDATE OF code ON customers_customer
    FOR EACH ROW EXECUTE FUNCTION customers_customer_code_fixed();

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION customers_customer_assign_code() SET search_path = %I, pg_catalog, pg_temp',
                   current_schema());
    EXECUTE format('ALTER FUNCTION customers_customer_code_fixed() SET search_path = %I, pg_catalog, pg_temp',
                   current_schema());
END $$;

ALTER TABLE ledger_journalline
    ADD CONSTRAINT ledger_journalline_customer_exists
    FOREIGN KEY (customer_id) REFERENCES customers_customer (id)
    DEFERRABLE INITIALLY DEFERRED;
"""

BACKWARD = """
ALTER TABLE ledger_journalline DROP CONSTRAINT ledger_journalline_customer_exists;
DROP TRIGGER customers_customer_code_fixed ON customers_customer;
DROP FUNCTION customers_customer_code_fixed();
DROP TRIGGER customers_customer_assign_code ON customers_customer;
DROP FUNCTION customers_customer_assign_code();
DROP SEQUENCE customers_customer_code_seq;
"""


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial"), ("ledger", "0003_seed_chart_of_accounts")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
