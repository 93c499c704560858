"""Callback counts kept by PostgreSQL for /metrics, which counted the whole webhook log on every
scrape (379 ms at a million callbacks, and growing with history).

Each insert into the webhook log adds one to its (kind, status) row, each change of status moves one
from the old status's row to the new one's, and a deletion takes one away; the lock-conflict retries
go alongside. The rows are keyed by the backend that wrote them, so concurrent callbacks never queue
on a shared counter. The existing log is counted into backend 0's rows while its writes wait (SHARE
lock), so nothing is counted twice or missed.
"""

from django.db import migrations, models

FORWARD = """
LOCK TABLE mpesa_webhooklog IN SHARE MODE;

INSERT INTO mpesa_callbacktally (backend_pid, kind, status, callbacks, lock_conflict_retries)
SELECT 0, kind, status, count(*), sum(lock_conflict_retries)
  FROM mpesa_webhooklog
 GROUP BY kind, status;

CREATE FUNCTION mpesa_webhooklog_tally() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO mpesa_callbacktally AS tally (backend_pid, kind, status, callbacks, lock_conflict_retries)
        VALUES (pg_backend_pid(), NEW.kind, NEW.status, 1, NEW.lock_conflict_retries)
        ON CONFLICT (backend_pid, kind, status) DO UPDATE
           SET callbacks = tally.callbacks + 1,
               lock_conflict_retries = tally.lock_conflict_retries + EXCLUDED.lock_conflict_retries;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO mpesa_callbacktally AS tally (backend_pid, kind, status, callbacks, lock_conflict_retries)
        VALUES (pg_backend_pid(), OLD.kind, OLD.status, -1, -OLD.lock_conflict_retries)
        ON CONFLICT (backend_pid, kind, status) DO UPDATE
           SET callbacks = tally.callbacks - 1,
               lock_conflict_retries = tally.lock_conflict_retries + EXCLUDED.lock_conflict_retries;
    ELSE
        INSERT INTO mpesa_callbacktally AS tally (backend_pid, kind, status, callbacks, lock_conflict_retries)
        SELECT pg_backend_pid(), change.kind, change.status, sum(change.callbacks),
               sum(change.lock_conflict_retries)
          FROM (VALUES (OLD.kind, OLD.status, -1, -OLD.lock_conflict_retries),
                       (NEW.kind, NEW.status, 1, NEW.lock_conflict_retries))
               AS change (kind, status, callbacks, lock_conflict_retries)
         GROUP BY change.kind, change.status
         ORDER BY change.kind, change.status
        ON CONFLICT (backend_pid, kind, status) DO UPDATE
           SET callbacks = tally.callbacks + EXCLUDED.callbacks,
               lock_conflict_retries = tally.lock_conflict_retries + EXCLUDED.lock_conflict_retries;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER mpesa_webhooklog_tally_insert
    AFTER INSERT ON mpesa_webhooklog
    FOR EACH ROW EXECUTE FUNCTION mpesa_webhooklog_tally();

CREATE TRIGGER mpesa_webhooklog_tally_update
    AFTER UPDATE OF kind, status, lock_conflict_retries ON mpesa_webhooklog
    FOR EACH ROW
    WHEN (OLD.kind IS DISTINCT FROM NEW.kind OR OLD.status IS DISTINCT FROM NEW.status
          OR OLD.lock_conflict_retries IS DISTINCT FROM NEW.lock_conflict_retries)
    EXECUTE FUNCTION mpesa_webhooklog_tally();

CREATE TRIGGER mpesa_webhooklog_tally_delete
    AFTER DELETE ON mpesa_webhooklog
    FOR EACH ROW EXECUTE FUNCTION mpesa_webhooklog_tally();
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
