"""Ledger benchmark: posting throughput against the plain-SQL floor, and balance reads as the ledger grows.

    python bench/ledger_post.py [--entries 2000] [--volumes 100000,1000000]

Runs on its own database (`<name>_bench` beside DATABASE_URL's, or in the embedded server), which it
migrates and empties first. Prints:
  * entries/s posting N two-line entries through journal_entry_post (one transaction each);
  * entries/s writing the same rows with plain SQL through psycopg (one transaction each, same
    triggers: this is the database floor), and the ratio between the two;
  * how long account_balance() and trial_balance() take with each volume of lines in the ledger.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def use_bench_database() -> str:
    """Point settings at a separate database so the benchmark never touches real or test data."""
    url = os.environ.get("DATABASE_URL", "")
    if url:
        parts = urlsplit(url)
        name = parts.path.lstrip("/") + "_bench"
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/" + name))
        return name
    os.environ["EMBEDDED_DATABASE_NAME"] = "kellyos_bench"
    return "kellyos_bench"


def create_database_if_missing(name: str) -> None:
    import psycopg
    from django.db import connection
    from psycopg import sql

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def raw_connection():  # type: ignore[no-untyped-def]
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    return psycopg.connect(**params)


def empty_ledger() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        # TRUNCATE is not an UPDATE or DELETE: the immutability triggers do not fire, by design of
        # PostgreSQL; only the table owner can run it.
        cursor.execute(
            "TRUNCATE ledger_journalline, ledger_journalentry, ledger_accountbalance, ledger_customerbalance "
            "CASCADE"
        )


def post_through_service(count: int) -> float:
    from django.db import transaction

    from ledger.models import CauseKind
    from ledger.services import JournalLineInput, journal_entry_post

    started = time.perf_counter()
    for n in range(count):
        amount = Decimal(100 + n % 900) + Decimal("0.50")
        with transaction.atomic():
            journal_entry_post(
                memo=f"Bench M-Pesa receipt {n}",
                lines=[
                    JournalLineInput(account="1010", debit=amount),
                    JournalLineInput(account="4000", credit=amount),
                ],
                cause_kind=CauseKind.RECEIPT,
                cause_id=f"BENCH{n}",
            )
    return time.perf_counter() - started


def post_with_plain_sql(count: int) -> float:
    from ledger.models import Account

    cash, sales = (Account.objects.get(code=c).pk for c in ("1010", "4000"))
    with raw_connection() as conn:
        started = time.perf_counter()
        for n in range(count):
            amount = Decimal(100 + n % 900) + Decimal("0.50")
            with conn.transaction():
                entry_id = conn.execute(
                    "INSERT INTO ledger_journalentry (posted_at, memo, cause_kind, cause_id, reversal_reason,"
                    " recorded_at) VALUES (now(), %s, 'receipt', %s, '', now()) RETURNING id",
                    [f"Bench SQL receipt {n}", f"SQL{n}"],
                ).fetchone()[0]
                conn.execute(
                    "INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, posted_at)"
                    " VALUES (%s, %s, %s, 0, now()), (%s, %s, 0, %s, now())",
                    [entry_id, cash, amount, entry_id, sales, amount],
                )
        return time.perf_counter() - started


def fill_lines_to(target_lines: int) -> float:
    """Bulk-load two-line entries spread over the past year until the ledger holds target_lines lines."""
    from ledger.models import Account, JournalLine

    # Accounts of the ledger's own: receivables and suspense are checked against invoices and
    # receipts by ledger_verify, so bare postings to them would (rightly) be reported.
    accounts = list(Account.objects.filter(code__in=["1010", "4000", "5000"]).values_list("pk", flat=True))
    missing_entries = max(0, target_lines - JournalLine.objects.count()) // 2
    batch = 50_000
    started = time.perf_counter()
    with raw_connection() as conn:
        while missing_entries > 0:
            size = min(batch, missing_entries)
            with conn.transaction():
                conn.execute(
                    """
                    WITH entries AS (
                        INSERT INTO ledger_journalentry
                               (posted_at, memo, cause_kind, cause_id, reversal_reason, recorded_at)
                        SELECT now() - random() * interval '365 days', 'Bench volume', 'manual', '', '', now()
                          FROM generate_series(1, %(size)s)
                        RETURNING id
                    ), priced AS (
                        SELECT id, (100 + floor(random() * 50000))::numeric(14, 2) AS amount,
                               %(accounts)s::bigint[] AS accounts,
                               1 + floor(random() * %(n)s)::int AS dr,
                               1 + floor(random() * (%(n)s - 1))::int AS cr_offset
                          FROM entries
                    )
                    INSERT INTO ledger_journalline (entry_id, account_id, debit, credit, posted_at)
                    SELECT id, accounts[dr], amount, 0, now() FROM priced
                    UNION ALL
                    SELECT id, accounts[1 + (dr - 1 + cr_offset) %% %(n)s], 0, amount, now() FROM priced
                    """,
                    {"size": size, "accounts": accounts, "n": len(accounts)},
                )
            missing_entries -= size
    with raw_connection() as conn:
        conn.autocommit = True
        conn.execute("ANALYZE ledger_journalline")
        conn.execute("ANALYZE ledger_accountbalance")
    return time.perf_counter() - started


def timed_ms(work: Callable[[], object], repeat: int = 20) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=2000, help="entries to post in each throughput run")
    parser.add_argument("--volumes", default="100000,1000000", help="ledger sizes (lines) to time reads at")
    args = parser.parse_args()

    database = use_bench_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kellyos.settings.test")
    import django

    django.setup()
    from django.core.management import call_command
    from django.utils import timezone

    create_database_if_missing(database)
    call_command("migrate", verbosity=0)
    empty_ledger()

    from ledger.models import JournalLine
    from ledger.selectors import account_balance, ledger_verify, trial_balance

    print(f"database: {database}; cpu cores: {os.cpu_count()}")
    post_through_service(50)  # warm connections and caches
    empty_ledger()
    service_seconds = post_through_service(args.entries)
    sql_seconds = post_with_plain_sql(args.entries)
    service_rate, sql_rate = args.entries / service_seconds, args.entries / sql_seconds
    print(f"journal_entry_post: {args.entries} entries in {service_seconds:.2f} s = {service_rate:,.0f}/s")
    print(f"plain SQL (psycopg): {args.entries} entries in {sql_seconds:.2f} s = {sql_rate:,.0f}/s")
    print(f"ratio service/SQL: {service_rate / sql_rate:.2f}")

    for volume in (int(v) for v in args.volumes.split(",") if v):
        load_seconds = fill_lines_to(volume)
        lines = JournalLine.objects.count()
        yesterday = timezone.now() - timedelta(days=1)
        balance_ms, balance_max = timed_ms(lambda: account_balance("1010"))
        trial_ms, trial_max = timed_ms(lambda: trial_balance())
        asof_ms, asof_max = timed_ms(lambda at=yesterday: account_balance("1010", as_of=at), repeat=5)
        print(f"ledger of {lines:,} lines (loaded in {load_seconds:.1f} s):")
        print(f"  account_balance('1010'): median {balance_ms:.2f} ms, max {balance_max:.2f} ms")
        print(f"  trial_balance(): median {trial_ms:.2f} ms, max {trial_max:.2f} ms")
        print(f"  account_balance('1010', as_of=24 h ago): median {asof_ms:.2f} ms, max {asof_max:.2f} ms")

    verify_started = time.perf_counter()
    result = ledger_verify()
    print(f"ledger_verify: is_valid={result['is_valid']} in {time.perf_counter() - verify_started:.1f} s")
    if not result["is_valid"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
