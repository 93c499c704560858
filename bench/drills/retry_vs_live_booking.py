"""Drill: `c2b_retry_failed` taking a confirmation whose booking is still running must not deadlock
with it, and the receipt is booked once.

    python bench/drills/retry_vs_live_booking.py

Before commit 6003268 (on branch base 306cf11) the two took the same two locks in opposite orders, and this
deadlocked every time (PostgreSQL aborted the live booking; its log said FAILED although the retry
had booked the receipt):
- the live booking: the TransID's advisory lock (`receipt_book`), then, at the end of the same
  transaction, the webhook log row (`UPDATE ... SET status = 'PROCESSED'`);
- the retry: the log row (`SELECT ... FOR UPDATE SKIP LOCKED`), then the TransID's advisory lock.
The booking now locks its log row first, so the retry skips it. The overlap happens when the retry
picks a log still being booked: `mpesa_retry_failed --stuck-after N` with N shorter than a booking, a
booking slower than STUCK_AFTER, or the webhook log's "Reprocess" admin action on a RECEIVED log. To
make it certain, a third session holds the TransID's advisory lock while the two queue behind it.
Exits 1 on a deadlock or a receipt not booked exactly once. Uses its own database,
`<DATABASE_URL's name>_drill_retry_race`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

TRANS_ID = "RR00000001"


def main() -> int:
    url = harness.shared_server_url()
    env = harness.drill_env(url, urlsplit(url).path.lstrip("/") + "_drill_retry_race")
    references = harness.prepare(env, customers=1)

    import psycopg
    from django.db import connection

    from mpesa.callbacks import c2b_payment_parse
    from mpesa.models import MpesaReceipt, WebhookKind, WebhookLog
    from mpesa.services.c2b import (
        TRANS_ID_LOCK_SPACE,
        c2b_confirmation_book,
        c2b_retry_failed,
        webhook_log_record,
    )
    from tests.mpesa.payloads import c2b

    failures: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.exc_info:
                failures.append(f"{record.getMessage()}: {record.exc_info[1]}")

    logging.getLogger("mpesa.services.c2b").addHandler(Keep())
    body = json.dumps(c2b(trans_id=TRANS_ID, amount="500", account=references[0])).encode()
    log = webhook_log_record(kind=WebhookKind.C2B_CONFIRMATION, body=body, headers={}, source_ip="127.0.0.1")
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    holder = psycopg.connect(**params)
    holder.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [TRANS_ID_LOCK_SPACE, TRANS_ID])

    def live_booking() -> None:
        c2b_confirmation_book(log=log, payment=c2b_payment_parse(body))
        connection.close()

    def retry() -> None:
        c2b_retry_failed(logs=WebhookLog.objects.filter(pk=log.pk))
        connection.close()

    booking = threading.Thread(target=live_booking)
    booking.start()
    time.sleep(1.0)  # the booking now waits for the TransID lock, without the log row
    retrying = threading.Thread(target=retry)
    retrying.start()
    time.sleep(1.0)  # the retry holds the log row and waits for the TransID lock too
    holder.commit()
    booking.join()
    retrying.join()
    holder.close()

    log.refresh_from_db()
    receipts = MpesaReceipt.objects.filter(trans_id=TRANS_ID).count()
    figures = {"receipts for the TransID": receipts, "log now": f"{log.status} {log.detail[:300]}"}
    violations = [
        f"deadlock between the live booking and the retry: {failure}"
        for failure in failures
        if "deadlock" in failure.lower()
    ]
    if receipts != 1:
        violations.append(f"{receipts} receipts for {TRANS_ID}")
    return harness.report("retry vs live booking", figures, violations)


if __name__ == "__main__":
    sys.exit(main())
