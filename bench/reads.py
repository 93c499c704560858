"""Reads that must not grow with history, timed against the database bench/seed_volume.py builds.

    python bench/seed_volume.py                      # once: 10^6 receipts, 10^5 customers
    python bench/reads.py [--database-url URL] [--runs 20]

Every read is run twice to warm up, then --runs times; the median and the 95th percentile are
printed beside the issue's target, with PASS when the median meets it (and p95 is shown so a noisy
machine is visible). Reads:
- trial balance and each account's balance (now, through the striped balances);
- for the customers with the most ledger lines: their position (owed, credit; read on each of their
  payments, for the live screens) and their statement for last month;
- the aged-receivables and collections reports (collections has no target of its own in the issue:
  it is held to the aged-receivables report's 1 s);
- the monitoring scrape's figures (mpesa_metrics, behind /metrics; no target of its own);
- every admin changelist of the customers, invoices, pos, ledger and mpesa apps, as a superuser
  through Django's test client: plain, with a search and with a filter; the dashboard page.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ADMIN_APPS = ("customers", "invoices", "pos", "ledger", "mpesa")
TARGET_BALANCE = 0.010
TARGET_STATEMENT = 0.100
TARGET_REPORT = 1.0
TARGET_CHANGELIST = 0.300

# Searches a clerk would type on each screen: a receipt number, an invoice number, a customer's code or
# name; filled in from the data so they find something.
SEARCH_TERMS: dict[str, Callable[[dict[str, str]], str]] = {
    "customer": lambda s: s["customer_code"],
    "invoice": lambda s: s["invoice_number"],
    "payment": lambda s: s["trans_id"],
    "allocation": lambda s: s["invoice_number"],
    "mpesareceipt": lambda s: s["trans_id"],
    "unallocatedreceipt": lambda s: s["suspense_ref"],
    "webhooklog": lambda s: s["trans_id"],
    "journalentry": lambda s: s["trans_id"],
    "account": lambda s: "1010",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url", default=None, help="default: $VOLUME_DATABASE_URL or <DATABASE_URL>_volume"
    )
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--only", default="", help="run only the reads whose name contains this")
    args = parser.parse_args()
    from seed_volume import volume_database_url

    args.database_url = args.database_url or volume_database_url()
    os.environ["DATABASE_URL"] = args.database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kellyos.settings.test")
    os.environ.setdefault("CONN_MAX_AGE", "600")  # as in production: no new connection per request

    import django

    django.setup()
    from django.conf import settings

    # Not setup_test_environment(): its instrumented template rendering would be timed too.
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    results = Bench(runs=args.runs, only=args.only)
    run_all(results)
    failed = results.print_table()
    sys.exit(1 if failed else 0)


class Bench:
    def __init__(self, *, runs: int, only: str) -> None:
        self.runs = runs
        self.only = only
        self.rows: list[tuple[str, float, float, float | None, int]] = []

    def time(self, name: str, target: float | None, read: Callable[[], Any]) -> None:
        if self.only and self.only not in name:
            return
        from django.db import connection

        read()
        queries = []

        def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
            queries.append(sql)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            read()
        samples = []
        for _ in range(self.runs):
            started = time.perf_counter()
            read()
            samples.append(time.perf_counter() - started)
        median = statistics.median(samples)
        p95 = statistics.quantiles(samples, n=20, method="inclusive")[18] if len(samples) > 1 else median
        self.rows.append((name, median, p95, target, len(queries)))
        print(f"  {name:<72} {median * 1000:9.2f} ms", file=sys.stderr, flush=True)

    def print_table(self) -> bool:
        failed = False
        print(f"\n{'read':<72} {'median':>11} {'p95':>11} {'target':>9}  result  queries")
        for name, median, p95, target, queries in self.rows:
            verdict = "-" if target is None else "PASS" if median <= target else "FAIL"
            failed |= verdict == "FAIL"
            shown = "-" if target is None else f"{target * 1000:.0f} ms"
            figures = f"{median * 1000:8.2f} ms {p95 * 1000:8.2f} ms {shown:>9}"
            print(f"{name:<72} {figures}  {verdict:<6}  {queries:>7}")
        return failed


def run_all(bench: Bench) -> None:
    from django.db import connection

    from customers.models import Customer
    from customers.selectors import customer_position
    from invoices.selectors import customer_statement_get
    from kellyos.reports import report_build
    from ledger.models import Account
    from ledger.selectors import account_balance, trial_balance
    from mpesa.selectors import mpesa_metrics

    today = date.today()
    last_month_end = today.replace(day=1) - timedelta(days=1)
    last_month_start = last_month_end.replace(day=1)

    bench.time("trial_balance()", TARGET_BALANCE, trial_balance)
    for account in Account.objects.order_by("code"):
        bench.time(
            f"account_balance({account.code!r})", TARGET_BALANCE, lambda c=account.code: account_balance(c)
        )
    bench.time(
        "trial_balance(as_of=end of last month) [no target: grows with activity since]",
        None,
        lambda: trial_balance(as_of=last_month_end),
    )

    with connection.cursor() as cursor:
        # The busiest customers: most lines in the receivables sub-ledger.
        cursor.execute(
            "SELECT customer_id FROM ledger_journalline WHERE customer_id IS NOT NULL"
            " GROUP BY customer_id ORDER BY count(*) DESC LIMIT 3"
        )
        busiest = [row[0] for row in cursor.fetchall()]
    for customer in Customer.objects.filter(pk__in=busiest).order_by("pk"):
        lines = len(
            customer_statement_get(customer=customer, start=last_month_start, end=last_month_end).lines
        )
        bench.time(
            f"customer_position({customer.code!r}) [each of its payments reads it]",
            TARGET_BALANCE,
            lambda c=customer: customer_position(c.pk),
        )
        bench.time(
            f"statement {customer.code} {last_month_start:%Y-%m} ({lines} movements)",
            TARGET_STATEMENT,
            lambda c=customer: customer_statement_get(customer=c, start=last_month_start, end=last_month_end),
        )

    bench.time(
        "report aged_receivables (as of today)",
        TARGET_REPORT,
        lambda: report_build("aged_receivables", start=last_month_start, end=today, account=None),
    )
    bench.time(
        f"report collections {last_month_start:%Y-%m}",
        TARGET_REPORT,
        lambda: report_build("collections", start=last_month_start, end=last_month_end, account=None),
    )
    # No target in the issue; the monitoring system runs it every scrape (typically 15-60 s).
    bench.time("metrics scrape (mpesa_metrics) [no target]", None, mpesa_metrics)
    admin_changelists(bench, sample=sample_terms(), statement_customer=busiest[0] if busiest else None)


def sample_terms() -> dict[str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT (SELECT code FROM customers_customer ORDER BY id
                     OFFSET (SELECT count(*) / 2 FROM customers_customer) LIMIT 1),
                   (SELECT number FROM invoices_invoice ORDER BY id DESC LIMIT 1 OFFSET 1000),
                   (SELECT trans_id FROM mpesa_mpesareceipt ORDER BY id DESC LIMIT 1 OFFSET 5000),
                   (SELECT bill_ref_number FROM mpesa_mpesareceipt WHERE unallocated_amount > 0
                     ORDER BY id DESC LIMIT 1)
            """
        )
        code, number, trans_id, suspense_ref = cursor.fetchone()
    return {
        "customer_code": code,
        "invoice_number": number,
        "trans_id": trans_id,
        "suspense_ref": suspense_ref or "",
    }


def admin_changelists(bench: Bench, *, sample: dict[str, str], statement_customer: int | None) -> None:
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    user, _ = User.objects.get_or_create(
        username="bench-reads", defaults={"is_staff": True, "is_superuser": True, "email": ""}
    )
    client = Client()
    client.force_login(user)

    def get(url: str) -> None:
        response = client.get(url)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")

    models = sorted(
        (model for model in admin.site._registry if model._meta.app_label in ADMIN_APPS),
        key=lambda m: (m._meta.app_label, m._meta.model_name),
    )
    for model in models:
        model_admin = admin.site._registry[model]
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        label = f"{opts.app_label}.{opts.model_name}"
        bench.time(f"admin {label}", TARGET_CHANGELIST, lambda u=url: get(u))
        if model_admin.search_fields:
            term = SEARCH_TERMS.get(opts.model_name, lambda s: sample["customer_code"])(sample)
            bench.time(f"admin {label} ?q={term}", TARGET_CHANGELIST, lambda u=f"{url}?q={term}": get(u))
        query = filter_query(model_admin)
        if query:
            bench.time(f"admin {label} ?{query}", TARGET_CHANGELIST, lambda u=f"{url}?{query}": get(u))
    bench.time("dashboard page", TARGET_CHANGELIST, lambda: get(reverse("dashboard")))
    if statement_customer is not None:
        statement_url = reverse("customer-statement", args=[statement_customer])
        bench.time("statement page (HTML, this month)", TARGET_STATEMENT, lambda: get(statement_url))


def filter_query(model_admin: Any) -> str | None:
    """A query string for the changelist's first list filter that a clerk would click."""
    from django.db import models

    for spec in model_admin.list_filter:
        if not isinstance(spec, str):
            continue
        field = model_admin.model._meta.get_field(spec)
        if field.choices:
            return f"{spec}__exact={next(iter(field.choices))[0]}"
        if isinstance(field, models.BooleanField):
            return f"{spec}__exact=1"
        if isinstance(field, models.DateField):
            week_ago = date.today() - timedelta(days=7)
            return f"{spec}__gte={week_ago}&{spec}__lt={date.today() + timedelta(days=1)}"
        if isinstance(field, models.ForeignKey):
            first = field.related_model._default_manager.order_by("pk").values_list("pk", flat=True).first()
            if first is not None:
                return f"{spec}__id__exact={first}"
    return None


if __name__ == "__main__":
    main()
