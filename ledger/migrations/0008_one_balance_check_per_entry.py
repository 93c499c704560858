"""One full balance check per journal entry at commit instead of two.

Both deferred checks used to run the full check: the entry's, and the one on the entry's highest line.
The line's check alone proves an entry that has lines (also lines added after an early check, under
SET CONSTRAINTS ... IMMEDIATE), so the entry's check now only refuses an entry with no line at all,
which no line check would ever see.
"""

from django.db import migrations


def check_at_commit(body: str) -> str:
    # CREATE OR REPLACE drops the search_path 0002 pinned: pin it again.
    return f"""
CREATE OR REPLACE FUNCTION ledger_entry_check_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
{body}
    RETURN NULL;
END $$;

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION ledger_entry_check_at_commit() SET search_path = %I, pg_catalog, pg_temp',
                   current_schema());
END $$;
"""


FORWARD = check_at_commit("""\
    IF NOT EXISTS (SELECT 1 FROM ledger_journalline WHERE entry_id = NEW.id) THEN
        RAISE EXCEPTION 'journal entry % has 0 line(s); an entry needs at least two', NEW.id
            USING ERRCODE = 'check_violation';
    END IF;""")

BACKWARD = check_at_commit("    PERFORM ledger_assert_entry_valid(NEW.id);")


class Migration(migrations.Migration):
    dependencies = [("ledger", "0007_customer_balances")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
