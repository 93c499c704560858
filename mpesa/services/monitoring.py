"""Upkeep of the callback counts /metrics reads (mpesa_callbacktally, kept by PostgreSQL)."""

from __future__ import annotations

from kellyos.db import backend_tally_fold

# Key of the advisory lock that lets one fold run at a time.
TALLY_FOLD_LOCK = 2201


def callback_tally_fold() -> int:
    """Fold the count rows of database backends that have gone into backend 0's (kellyos.db)."""
    return backend_tally_fold(
        table="mpesa_callbacktally",
        keys=["kind", "status"],
        counts=["callbacks", "lock_conflict_retries"],
        lock_key=TALLY_FOLD_LOCK,
    )
