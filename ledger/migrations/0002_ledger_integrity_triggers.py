"""PostgreSQL keeps the ledger honest, whatever Python (or a psql session) tries.

- An entry's debits equal its credits, and it has at least two lines, when its transaction commits
  (deferred constraint triggers; the line trigger does the full check once per entry, on its last line).
- Lines can only be added to an entry inside the transaction that created it.
- Posted entries and lines are never updated or deleted; a correction is a new reversal entry.
- A reversal cancels an existing, earlier entry (a lower id, so reversals never form cycles), is dated
  no earlier than it, and nets it to zero per account and customer. Nothing is dated in the future.
- Account balances are maintained by a statement-level trigger on line inserts, in striped rows that
  nothing else may write. Each posting transaction claims a stripe of its own (an advisory lock), so
  concurrent postings update different rows: no waiting, and no deadlock between them.

Every function pins its search_path (temp tables must never stand in for ledger tables), and every
trigger fires ALWAYS, also under session_replication_role = replica. Table owners and superusers can
still switch triggers off; the application should connect as a role without those rights
(`manage.py db_grant_app_role`).
"""

from django.db import migrations

BALANCE_STRIPES = 16
# First key of the two-key advisory locks by which a transaction claims its balance stripe.
STRIPE_LOCK_SPACE = 1010

FUNCTIONS = [
    "ledger_entry_stamp()",
    "ledger_line_prepare()",
    "ledger_assert_entry_valid(bigint)",
    "ledger_entry_check_at_commit()",
    "ledger_line_check_at_commit()",
    "ledger_refuse_change()",
    "ledger_lines_apply_to_balances()",
    "ledger_balance_guard()",
]

TRIGGERS = [
    ("ledger_journalentry", "ledger_journalentry_stamp"),
    ("ledger_journalline", "ledger_journalline_prepare"),
    ("ledger_journalentry", "ledger_journalentry_balanced"),
    ("ledger_journalline", "ledger_journalline_balanced"),
    ("ledger_journalentry", "ledger_journalentry_immutable"),
    ("ledger_journalline", "ledger_journalline_immutable"),
    ("ledger_journalline", "ledger_journalline_apply_to_balances"),
    ("ledger_accountbalance", "ledger_accountbalance_guard"),
]

FORWARD = f"""
CREATE FUNCTION ledger_entry_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    original_posted_at timestamptz;
BEGIN
    NEW.created_txid := txid_current();
    IF NEW.posted_at > now() + interval '5 minutes' THEN
        RAISE EXCEPTION 'journal entries cannot be dated in the future (%)', NEW.posted_at
            USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.reverses_id IS NOT NULL THEN
        SELECT posted_at INTO original_posted_at FROM ledger_journalentry WHERE id = NEW.reverses_id;
        IF original_posted_at IS NULL THEN
            RAISE EXCEPTION 'journal entry % reverses entry %, which is not posted', NEW.id, NEW.reverses_id
                USING ERRCODE = 'foreign_key_violation';
        END IF;
        IF NEW.posted_at < original_posted_at THEN
            RAISE EXCEPTION 'a reversal cannot be dated before the entry it reverses (%)', original_posted_at
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER ledger_journalentry_stamp
    BEFORE INSERT ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_stamp();

CREATE FUNCTION ledger_line_prepare() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    entry_posted_at timestamptz;
    entry_txid bigint;
BEGIN
    SELECT posted_at, created_txid INTO entry_posted_at, entry_txid
      FROM ledger_journalentry WHERE id = NEW.entry_id;
    IF entry_txid IS DISTINCT FROM txid_current() THEN
        RAISE EXCEPTION 'journal entry % is already posted: lines cannot be added to it', NEW.entry_id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    NEW.posted_at := entry_posted_at;
    RETURN NEW;
END $$;

CREATE TRIGGER ledger_journalline_prepare
    BEFORE INSERT ON ledger_journalline
    FOR EACH ROW EXECUTE FUNCTION ledger_line_prepare();

CREATE FUNCTION ledger_assert_entry_valid(checked_entry_id bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    line_count integer;
    total_debit numeric;
    total_credit numeric;
    reversed_entry_id bigint;
BEGIN
    SELECT count(*), coalesce(sum(debit), 0), coalesce(sum(credit), 0)
      INTO line_count, total_debit, total_credit
      FROM ledger_journalline WHERE entry_id = checked_entry_id;
    IF line_count < 2 THEN
        RAISE EXCEPTION 'journal entry % has % line(s); an entry needs at least two', checked_entry_id, line_count
            USING ERRCODE = 'check_violation';
    END IF;
    IF total_debit <> total_credit THEN
        RAISE EXCEPTION 'journal entry % is unbalanced: debits % <> credits %', checked_entry_id, total_debit, total_credit
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT reverses_id INTO reversed_entry_id FROM ledger_journalentry WHERE id = checked_entry_id;
    IF reversed_entry_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM ledger_journalline
         WHERE entry_id IN (checked_entry_id, reversed_entry_id)
         GROUP BY account_id, customer_id
        HAVING sum(debit - credit) <> 0
    ) THEN
        RAISE EXCEPTION 'journal entry % does not exactly reverse entry %', checked_entry_id, reversed_entry_id
            USING ERRCODE = 'check_violation';
    END IF;
END $$;

CREATE FUNCTION ledger_entry_check_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_entry_valid(NEW.id);
    RETURN NULL;
END $$;

-- Lines may join an entry after an early check (SET CONSTRAINTS ... IMMEDIATE), so lines are checked
-- too; only the entry's highest line does the full check, keeping commits linear in the line count.
CREATE FUNCTION ledger_line_check_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id = (SELECT max(id) FROM ledger_journalline WHERE entry_id = NEW.entry_id) THEN
        PERFORM ledger_assert_entry_valid(NEW.entry_id);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER ledger_journalentry_balanced
    AFTER INSERT ON ledger_journalentry
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_entry_check_at_commit();

CREATE CONSTRAINT TRIGGER ledger_journalline_balanced
    AFTER INSERT ON ledger_journalline
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_line_check_at_commit();

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: posted ledger rows are immutable; post a reversal instead', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'integrity_constraint_violation';
END $$;

CREATE TRIGGER ledger_journalentry_immutable
    BEFORE UPDATE OR DELETE ON ledger_journalentry
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

CREATE TRIGGER ledger_journalline_immutable
    BEFORE UPDATE OR DELETE ON ledger_journalline
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();

-- SECURITY DEFINER: the application role needs no write access to the balance table at all.
CREATE FUNCTION ledger_lines_apply_to_balances() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    claimed_stripe integer := nullif(current_setting('kellyos.ledger_stripe', true), '')::integer;
    first_choice integer;
BEGIN
    IF claimed_stripe IS NULL THEN
        first_choice := (txid_current() % {BALANCE_STRIPES})::integer;
        FOR step IN 0..{BALANCE_STRIPES - 1} LOOP
            IF pg_try_advisory_xact_lock({STRIPE_LOCK_SPACE}, (first_choice + step) % {BALANCE_STRIPES}) THEN
                claimed_stripe := (first_choice + step) % {BALANCE_STRIPES};
                EXIT;
            END IF;
        END LOOP;
        IF claimed_stripe IS NULL THEN  -- more concurrent posters than stripes: queue for one
            claimed_stripe := first_choice;
            PERFORM pg_advisory_xact_lock({STRIPE_LOCK_SPACE}, claimed_stripe);
        END IF;
        PERFORM set_config('kellyos.ledger_stripe', claimed_stripe::text, true);
    END IF;
    INSERT INTO ledger_accountbalance (account_id, stripe, debit_total, credit_total)
    SELECT account_id, claimed_stripe, sum(debit), sum(credit)
      FROM new_lines
     GROUP BY account_id
     ORDER BY account_id
    ON CONFLICT (account_id, stripe) DO UPDATE
       SET debit_total = ledger_accountbalance.debit_total + EXCLUDED.debit_total,
           credit_total = ledger_accountbalance.credit_total + EXCLUDED.credit_total;
    RETURN NULL;
END $$;

CREATE TRIGGER ledger_journalline_apply_to_balances
    AFTER INSERT ON ledger_journalline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_lines_apply_to_balances();

-- Balances move only with lines: a direct write (trigger depth 1) is refused; the line trigger's
-- upsert runs one level deeper.
CREATE FUNCTION ledger_balance_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'account balances are maintained from journal lines and cannot be written directly'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER ledger_accountbalance_guard
    BEFORE INSERT OR UPDATE OR DELETE ON ledger_accountbalance
    FOR EACH ROW EXECUTE FUNCTION ledger_balance_guard();

DO $$
DECLARE
    schema_name text := current_schema();
    fn text;
BEGIN
    FOREACH fn IN ARRAY ARRAY[{", ".join(f"'{f}'" for f in FUNCTIONS)}] LOOP
        EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_catalog, pg_temp', fn, schema_name);
    END LOOP;
END $$;
""" + "".join(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER {trigger};\n" for table, trigger in TRIGGERS)

BACKWARD = "".join(f"DROP TRIGGER {trigger} ON {table};\n" for table, trigger in TRIGGERS) + "".join(
    f"DROP FUNCTION {function};\n" for function in reversed(FUNCTIONS)
)


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
