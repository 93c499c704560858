"""C2B confirmation load: the app as it runs in production (gunicorn, several workers, persistent
database connections) on a fresh database, hit over HTTP.

    python bench/c2b_load.py [--confirmations 3000] [--concurrency 16] [--workers 4]

Fires N confirmations (10% repeats of earlier TransIDs; account numbers mixed: invoice numbers,
customer codes, typed loosely, and some unknown) at concurrency C, and prints callbacks/s and p50/p99
latency. Then checks that receipts = distinct TransIDs, every callback was answered Success, nothing
failed, and ledger_verify is valid; prints the server workers' resident memory.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TOKEN = "bench0123456789abcdef0123456789abcdef"  # noqa: S105 - a throwaway secret for this run


def bench_database_env() -> tuple[dict[str, str], str]:
    """Settings for a fresh database of its own, next to DATABASE_URL's or in the embedded server."""
    env = dict(os.environ)
    url = env.get("DATABASE_URL", "")
    if url:
        parts = urlsplit(url)
        name = parts.path.lstrip("/") + "_c2bbench"
        env["DATABASE_URL"] = urlunsplit(parts._replace(path="/" + name))
    else:
        name = "kellyos_c2bbench"
        env["EMBEDDED_DATABASE_NAME"] = name
    env.update(
        DJANGO_SETTINGS_MODULE="kellyos.settings.base",
        DEBUG="false",
        SECRET_KEY="bench-only-secret-key-that-is-long-enough-for-django-checks",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        CONN_MAX_AGE="600",
        LOG_LEVEL="WARNING",
        MPESA_WEBHOOK_TOKEN=TOKEN,
        MPESA_ALLOWED_IPS="127.0.0.1",
        MPESA_SHORTCODE="600000",
    )
    return env, name


def recreate_database(env: dict[str, str], name: str) -> None:
    os.environ.update(env)
    import django

    django.setup()
    import psycopg
    from django.db import connection
    from psycopg import sql

    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)


def seed(customers: int) -> list[str]:
    """Customers with open invoices; returns the account numbers payers will type."""
    from datetime import timedelta

    from django.utils import timezone

    from customers.services import customer_create
    from invoices.services import InvoiceLineInput, invoice_create

    references = []
    for n in range(customers):
        customer = customer_create(name=f"Bench customer {n}", phone=f"07{n:08d}")
        invoice = invoice_create(
            customer=customer,
            lines=[InvoiceLineInput(description="Water bill", quantity=1, unit_price="5000.00")],
            due_date=timezone.localdate() + timedelta(days=30),
            by=None,
        )
        references += [invoice.number, customer.code, invoice.number.lower(), f" {customer.code.lower()} "]
    return references


def payloads(count: int, references: list[str], rng: random.Random) -> list[dict[str, str]]:
    from tests.mpesa.payloads import c2b

    bodies: list[dict[str, str]] = []
    for n in range(count):
        if bodies and rng.random() < 0.10:
            bodies.append(rng.choice(bodies))  # Safaricom delivering the same receipt again
            continue
        account = rng.choice(references) if rng.random() < 0.92 else f"UNKNOWN{n}"
        amount = str(rng.choice([50, 100, 250, 500, 1000, 2500]))
        bodies.append(c2b(trans_id=f"BN{n:08d}", amount=amount, account=account))
    return bodies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(base: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("gunicorn exited before it answered")
        try:
            if requests.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit("gunicorn did not answer /health within 60 s")


def worker_rss_mib(master_pid: int) -> list[float]:
    children = subprocess.run(["pgrep", "-P", str(master_pid)], capture_output=True, text=True).stdout.split()
    sizes = []
    for pid in children:
        status = Path(f"/proc/{pid}/status")
        if status.exists():
            for line in status.read_text().splitlines():
                if line.startswith("VmRSS:"):
                    sizes.append(int(line.split()[1]) / 1024)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--confirmations", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--customers", type=int, default=200)
    args = parser.parse_args()

    env, database = bench_database_env()
    recreate_database(env, database)
    references = seed(args.customers)
    bodies = payloads(args.confirmations, references, random.Random(2026))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(
        [
            gunicorn,
            "kellyos.wsgi:application",
            "--workers",
            str(args.workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    try:
        wait_until_up(base, server)
        url = f"{base}/api/webhooks/c2b/{TOKEN}/confirmation"
        local = threading.local()

        def send(body: dict[str, str]) -> tuple[float, int, object]:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            started = time.perf_counter()
            response = session.post(url, json=body, timeout=30)
            return time.perf_counter() - started, response.status_code, response.json()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            results = list(pool.map(send, bodies))
        elapsed = time.perf_counter() - started
        rss = worker_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)

    latencies = sorted(result[0] * 1000 for result in results)
    ok = sum(
        1
        for _, status, answer in results
        if status == 200 and answer == {"ResultCode": 0, "ResultDesc": "Success"}
    )
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    print(f"server: gunicorn, {args.workers} sync workers, CONN_MAX_AGE=600; cpu cores: {os.cpu_count()}")
    print(
        f"{len(bodies)} confirmations ({len(bodies) - len({b['TransID'] for b in bodies})} repeats) "
        f"at concurrency {args.concurrency} in {elapsed:.2f} s = {len(bodies) / elapsed:,.0f} callbacks/s"
    )
    print(f"latency p50 {statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms, max {latencies[-1]:.1f} ms")
    print(f"answered Success: {ok} of {len(bodies)}")
    print(f"worker resident memory after the run: {', '.join(f'{size:.0f} MiB' for size in rss)}")

    from django.db.models import Count

    from ledger.selectors import ledger_verify
    from mpesa.models import MpesaReceipt, WebhookLog

    receipts = MpesaReceipt.objects.count()
    distinct = len({body["TransID"] for body in bodies})
    statuses = dict(WebhookLog.objects.values_list("status").annotate(n=Count("id")))
    verdict = ledger_verify()
    print(
        f"receipts {receipts} = distinct TransIDs {distinct}: {receipts == distinct}; webhook log: {statuses}"
    )
    print(f"ledger_verify: is_valid={verdict['is_valid']} {verdict['errors'][:3]}")
    if receipts != distinct or ok != len(bodies) or not verdict["is_valid"] or statuses.get("FAILED"):
        sys.exit(1)


if __name__ == "__main__":
    main()
