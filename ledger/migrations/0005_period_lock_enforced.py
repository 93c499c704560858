"""No journal entry, nor a reversal, may be dated inside a closed period, whoever inserts it."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION ledger_entry_outside_closed_period() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    open_from timestamptz;
    closed_through date;
BEGIN
    SELECT boundary, locked_through INTO open_from, closed_through
      FROM ledger_periodlock ORDER BY id DESC LIMIT 1;
    IF open_from IS NOT NULL AND NEW.posted_at < open_from THEN
        RAISE EXCEPTION 'the books are closed through %: nothing can be dated %', closed_through, NEW.posted_at
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ledger_entry_outside_closed_period() SET search_path = %I, pg_catalog, pg_temp',
                   current_schema());
END $$;

CREATE TRIGGER ledger_journalentry_outside_closed_period
    BEFORE INSERT ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_outside_closed_period();
ALTER TABLE ledger_journalentry ENABLE ALWAYS TRIGGER ledger_journalentry_outside_closed_period;

CREATE TRIGGER ledger_periodlock_immutable
    BEFORE UPDATE OR DELETE ON ledger_periodlock
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
ALTER TABLE ledger_periodlock ENABLE ALWAYS TRIGGER ledger_periodlock_immutable;
"""

BACKWARD = """
DROP TRIGGER ledger_periodlock_immutable ON ledger_periodlock;
DROP TRIGGER ledger_journalentry_outside_closed_period ON ledger_journalentry;
DROP FUNCTION ledger_entry_outside_closed_period();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0004_period_lock")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
