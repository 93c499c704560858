"""Upkeep of the callback counts /metrics reads (mpesa_callbacktally, kept by PostgreSQL)."""

from __future__ import annotations

from django.db import connection, transaction

# Key of the advisory lock that lets one fold run at a time.
TALLY_FOLD_LOCK = 2201


def callback_tally_fold() -> int:
    """Fold the count rows of database backends that have gone into backend 0's, so the table stays
    as small as the set of live backends whatever the history. Only rows no live backend can write
    are touched, and none a live backend holds, so neither waits for the other. Returns how many rows
    went."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [TALLY_FOLD_LOCK])
        cursor.execute(
            """
            WITH gone AS (
                DELETE FROM mpesa_callbacktally
                 WHERE id IN (
                       SELECT id FROM mpesa_callbacktally
                        WHERE backend_pid <> 0
                          AND backend_pid NOT IN (SELECT pid FROM pg_stat_activity WHERE pid IS NOT NULL)
                          FOR UPDATE SKIP LOCKED)  -- a new backend that took a gone one's pid: next time
             RETURNING kind, status, callbacks, lock_conflict_retries
            ), folded AS (
                INSERT INTO mpesa_callbacktally AS tally
                       (backend_pid, kind, status, callbacks, lock_conflict_retries)
                SELECT 0, kind, status, sum(callbacks), sum(lock_conflict_retries)
                  FROM gone
                 GROUP BY kind, status
                HAVING sum(callbacks) <> 0 OR sum(lock_conflict_retries) <> 0
                 ORDER BY kind, status
                    ON CONFLICT (backend_pid, kind, status) DO UPDATE
                   SET callbacks = tally.callbacks + EXCLUDED.callbacks,
                       lock_conflict_retries = tally.lock_conflict_retries + EXCLUDED.lock_conflict_retries
            )
            SELECT count(*) FROM gone
            """
        )
        (folded,) = cursor.fetchone()
    return int(folded)
