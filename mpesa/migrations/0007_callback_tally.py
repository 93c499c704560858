"""Callback counts kept by PostgreSQL for /metrics, which counted the whole webhook log on every
scrape (379 ms at a million callbacks, and growing with history).

Each statement that writes the webhook log adds what it changed to the (kind, status) rows: inserted
logs are added, a change of status moves logs from the old status's row to the new one's, deleted
logs are taken away, and the lock-conflict retries go alongside. Statement-level with transition
tables, so a bulk statement makes one upsert per group (a row trigger updating the same row once per
log made a 100,000-log insert quadratic). The rows are keyed by the backend that wrote them, so
concurrent callbacks never queue on a shared counter. The existing log is counted into backend 0's
rows while its writes wait (SHARE lock), so nothing is counted twice or missed.
"""

from django.db import migrations, models

FORWARD = """
LOCK TABLE mpesa_webhooklog IN SHARE MODE;

INSERT INTO mpesa_callbacktally (backend_pid, kind, status, callbacks, lock_conflict_retries)
SELECT 0, kind, status, count(*), sum(lock_conflict_retries)
  FROM mpesa_webhooklog
 GROUP BY kind, status;

-- SECURITY DEFINER, as the balance triggers: a callback's log must be written even before the
-- application role has been granted this new table (db_grant_app_role runs after migrate).
CREATE FUNCTION mpesa_webhooklog_tally() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
    -- One upsert per (kind, status) a statement touched, in that order in every backend: a bulk
    -- statement costs one row per group, not one update of the same row per log.
    IF TG_OP = 'INSERT' THEN
        INSERT INTO mpesa_callbacktally AS tally (backend_pid, kind, status, callbacks, lock_conflict_retries)
        SELECT pg_backend_pid(), kind, status, count(*), sum(lock_conflict_retries)
          FROM new_logs
         GROUP BY kind, status
         ORDER BY kind, status
        ON CONFLICT (backend_pid, kind, status) DO UPDATE
           SET callbacks = tally.callbacks + EXCLUDED.callbacks,
               lock_conflict_retries = tally.lock_conflict_retries + EXCLUDED.lock_conflict_retries;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO mpesa_callbacktally AS tally (backend_pid, kind, status, callbacks, lock_conflict_retries)
        SELECT pg_backend_pid(), kind, status, -count(*), -sum(lock_conflict_retries)
          FROM old_logs
         GROUP BY kind, status
         ORDER BY kind, status
        ON CONFLICT (backend_pid, kind, status) DO UPDATE
           SET callbacks = tally.callbacks + EXCLUDED.callbacks,
               lock_conflict_retries = tally.lock_conflict_retries + EXCLUDED.lock_conflict_retries;
    ELSE
        INSERT INTO mpesa_callbacktally AS tally (backend_pid, kind, status, callbacks, lock_conflict_retries)
        SELECT pg_backend_pid(), kind, status, sum(callbacks), sum(lock_conflict_retries)
          FROM (SELECT kind, status, 1 AS callbacks, lock_conflict_retries FROM new_logs
                UNION ALL
                SELECT kind, status, -1, -lock_conflict_retries FROM old_logs) AS change
         GROUP BY kind, status
        HAVING sum(callbacks) <> 0 OR sum(lock_conflict_retries) <> 0  -- status and retries as they were
         ORDER BY kind, status
        ON CONFLICT (backend_pid, kind, status) DO UPDATE
           SET callbacks = tally.callbacks + EXCLUDED.callbacks,
               lock_conflict_retries = tally.lock_conflict_retries + EXCLUDED.lock_conflict_retries;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER mpesa_webhooklog_tally_insert
    AFTER INSERT ON mpesa_webhooklog
    REFERENCING NEW TABLE AS new_logs
    FOR EACH STATEMENT EXECUTE FUNCTION mpesa_webhooklog_tally();

CREATE TRIGGER mpesa_webhooklog_tally_update
    AFTER UPDATE ON mpesa_webhooklog
    REFERENCING OLD TABLE AS old_logs NEW TABLE AS new_logs
    FOR EACH STATEMENT EXECUTE FUNCTION mpesa_webhooklog_tally();

CREATE TRIGGER mpesa_webhooklog_tally_delete
    AFTER DELETE ON mpesa_webhooklog
    REFERENCING OLD TABLE AS old_logs
    FOR EACH STATEMENT EXECUTE FUNCTION mpesa_webhooklog_tally();

DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION mpesa_webhooklog_tally() SET search_path = %I, pg_catalog, pg_temp',
                   current_schema());
END $$;
"""

BACKWARD = """
DROP TRIGGER mpesa_webhooklog_tally_delete ON mpesa_webhooklog;
DROP TRIGGER mpesa_webhooklog_tally_update ON mpesa_webhooklog;
DROP TRIGGER mpesa_webhooklog_tally_insert ON mpesa_webhooklog;
DROP FUNCTION mpesa_webhooklog_tally();
"""


class Migration(migrations.Migration):
    dependencies = [("mpesa", "0006_webhook_lock_conflict_retries")]

    operations = [
        migrations.CreateModel(
            name="CallbackTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("backend_pid", models.IntegerField()),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("c2b_validation", "C2B validation"),
                            ("c2b_confirmation", "C2B confirmation"),
                            ("stk_callback", "STK Push callback"),
                            ("pull", "Pull Transactions item"),
                            ("statement", "Org-portal statement row"),
                            ("status_result", "Transaction Status result"),
                            ("status_timeout", "Transaction Status queue timeout"),
                            ("refund_result", "Reversal result"),
                            ("refund_timeout", "Reversal queue timeout"),
                        ],
                        max_length=30,
                    ),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("RECEIVED", "Received, not yet processed"),
                            ("PROCESSED", "Processed"),
                            ("DUPLICATE", "Duplicate of a booked receipt"),
                            ("CONFLICT", "Repeated receipt with different details"),
                            ("REJECTED", "Rejected: not a payment"),
                            ("REFUSED", "Refused: caller not allowed"),
                            ("FAILED", "Failed: to be retried"),
                        ],
                        max_length=12,
                    ),
                ),
                ("callbacks", models.BigIntegerField(default=0)),
                ("lock_conflict_retries", models.BigIntegerField(default=0)),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("backend_pid", "kind", "status"),
                        name="mpesa_callbacktally_one_row_per_backend",
                    )
                ],
            },
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
