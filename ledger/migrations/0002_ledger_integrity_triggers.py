"""PostgreSQL keeps the ledger honest, whatever Python (or a psql session) tries.

- An entry's debits equal its credits, and it has at least two lines, when its transaction commits
  (deferred constraint triggers on entries and lines).
- A reversal cancels its original exactly: per account and customer the two entries net to zero.
- Posted entries and lines are never updated or deleted; a correction is a new reversal entry.
- Lines can only be added to an entry inside the transaction that created it.
- Account balances are maintained by a trigger on line inserts, in striped rows nothing else may write.
"""

from django.db import migrations

BALANCE_STRIPES = 16

FORWARD = f"""
CREATE FUNCTION ledger_entry_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.created_txid := txid_current();
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

CREATE FUNCTION ledger_line_check_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_assert_entry_valid(NEW.entry_id);
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

-- Each session adds to the stripe picked by its backend pid, so concurrent payments to one account
-- mostly touch different rows. One upsert per account per INSERT statement (not per line), in
-- account order, so balance rows are always locked in the same order.
CREATE FUNCTION ledger_lines_apply_to_balances() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ledger_accountbalance (account_id, stripe, debit_total, credit_total)
    SELECT account_id, pg_backend_pid() % {BALANCE_STRIPES}, sum(debit), sum(credit)
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
"""

BACKWARD = """
DROP TRIGGER ledger_accountbalance_guard ON ledger_accountbalance;
DROP TRIGGER ledger_journalline_apply_to_balances ON ledger_journalline;
DROP TRIGGER ledger_journalline_immutable ON ledger_journalline;
DROP TRIGGER ledger_journalentry_immutable ON ledger_journalentry;
DROP TRIGGER ledger_journalline_balanced ON ledger_journalline;
DROP TRIGGER ledger_journalentry_balanced ON ledger_journalentry;
DROP TRIGGER ledger_journalline_prepare ON ledger_journalline;
DROP TRIGGER ledger_journalentry_stamp ON ledger_journalentry;
DROP FUNCTION ledger_balance_guard();
DROP FUNCTION ledger_lines_apply_to_balances();
DROP FUNCTION ledger_refuse_change();
DROP FUNCTION ledger_line_check_at_commit();
DROP FUNCTION ledger_entry_check_at_commit();
DROP FUNCTION ledger_assert_entry_valid(bigint);
DROP FUNCTION ledger_line_prepare();
DROP FUNCTION ledger_entry_stamp();
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
