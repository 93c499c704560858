"""How many of a server process's threads may wait on something slow at once.

A gunicorn gthread worker whose threads are all busy still accepts connections and queues them, so
a Safaricom callback landing there waits until one of them finishes: longer than Safaricom waits,
and Safaricom does not call again. Whatever can hold a thread for seconds (a live-update stream, a
call to Daraja) takes a slot of its kind first and is turned away at once when they are all taken,
which keeps the rest of the threads for callbacks. The open-screens and slow-Daraja drills
(bench/drills/) measured both. Every refusal is counted for /metrics, where an operator sees a slow
Safaricom (or too few slots) as it happens rather than in the logs afterwards."""

from __future__ import annotations

import logging
import threading
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register
from django.db import DatabaseError, connection, transaction
from django.db.models import Sum

from kellyos.db import backend_tally_fold
from kellyos.models import RefusalTally

logger = logging.getLogger(__name__)

# Key of the advisory lock that lets one fold of the refusal counts run at a time.
REFUSAL_FOLD_LOCK = 2202
refusal_reasons: set[str] = set()


class ThreadSlots:
    """At most `settings.<limit_setting>` holders at once in this process; each refusal counted
    under `reason`."""

    def __init__(self, limit_setting: str, *, reason: str) -> None:
        self.limit_setting = limit_setting
        self.reason = refusal_reason_declare(reason)
        self._lock = threading.Lock()
        self.taken = 0

    def take(self) -> bool:
        with self._lock:
            refused = self.taken >= getattr(settings, self.limit_setting)
            if not refused:
                self.taken += 1
        if refused:
            refusal_count(reason=self.reason)
        return not refused

    def give_back(self) -> None:
        with self._lock:
            self.taken -= 1


def refusal_reason_declare(reason: str) -> str:
    """Declare a reason refusals are counted under: /metrics shows it from the start, at 0, so a
    monitoring system's rate sees its first burst."""
    refusal_reasons.add(reason)
    return reason


def refusal_count(*, reason: str) -> None:
    """Count one refusal. A count that cannot be written is logged, not raised: it must not turn a
    refusal, which protects the server, into an error."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO kellyos_refusaltally AS tally (backend_pid, reason, refusals) "
                "VALUES (pg_backend_pid(), %s, 1) ON CONFLICT (backend_pid, reason) "
                "DO UPDATE SET refusals = tally.refusals + 1",
                [reason],
            )
    except DatabaseError as exc:
        logger.warning("Could not count a refusal (%s): %s", reason, exc)


def refusal_counts() -> list[tuple[str, int]]:
    """Every declared reason with its count, and any other reason counted."""
    counted = dict(
        RefusalTally.objects.values("reason").annotate(total=Sum("refusals")).values_list("reason", "total")
    )
    return [(reason, int(counted.get(reason, 0))) for reason in sorted(refusal_reasons | counted.keys())]


def refusal_tally_fold() -> int:
    """Fold the rows of database backends that have gone into backend 0's, as the callback counts
    are folded (kellyos.db)."""
    return backend_tally_fold(
        table="kellyos_refusaltally", keys=["reason"], counts=["refusals"], lock_key=REFUSAL_FOLD_LOCK
    )


@register("kellyos", deploy=True)
def thread_budget_check(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """The limits must leave a quarter of a process's threads (at least one) for callbacks."""
    threads = settings.SERVER_THREADS
    for_callbacks = max(1, threads // 4)
    held = settings.EVENTS_STREAMS_PER_PROCESS + settings.MPESA_CALLS_PER_PROCESS
    if held <= threads - for_callbacks:
        return []
    return [
        Warning(
            f"EVENTS_STREAMS_PER_PROCESS ({settings.EVENTS_STREAMS_PER_PROCESS}) + MPESA_CALLS_PER_PROCESS "
            f"({settings.MPESA_CALLS_PER_PROCESS}) may hold {held} of a process's {threads} threads "
            f"(GUNICORN_THREADS), leaving {max(0, threads - held)} for Safaricom's callbacks; keep "
            f"at least {for_callbacks}.",
            hint="Raise GUNICORN_THREADS, or lower the two limits (deploy/README.md).",
            id="kellyos.W001",
        )
    ]
