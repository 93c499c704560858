"""C2B confirmations end to end over HTTP against the production server configuration (gunicorn,
deploy/gunicorn.conf.py, persistent database connections) on a fresh database, beside its two floors.

    python bench/c2b_load.py [--duration 60] [--concurrency 16] [--workers N] [--threads N]

wrk (Debian package `wrk`) sends for `--duration` seconds from C connections, in three runs:
1. the framework floor: a bare endpoint on the same server that only inserts the raw body;
2. Kelly OS: confirmations (10% repeats of earlier TransIDs; account numbers mixed: invoice numbers,
   customer codes, typed loosely, and some unknown) booked exactly once;
3. the database floor: pgbench running the same writes, locks and checks as one booking in plain SQL
   (bench/c2b_floor.sql), C clients.
It prints callbacks/s and latency for each, both ratios, the CPU each callback costs the machine
(server and database, apart from the load generator's), the ceiling that doing both floors' work per
confirmation puts on this machine, the share of the target's CPU budget (2 cores at 500/s) each
uses, and the workers' resident memory; then checks
that receipts = distinct TransIDs sent, nothing failed or was left unbooked, and ledger_verify is valid.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# Issue 7's target: 500 confirmations/s on a 2-core machine, its sender included.
TARGET_RATE, TARGET_CORES = 500, 2
TOKEN = "bench0123456789abcdef0123456789abcdef"  # noqa: S105 - a throwaway secret for this run


# The production settings the benchmarks and drills serve with (DEBUG off, persistent connections).
SERVER_SETTINGS = {
    "DJANGO_SETTINGS_MODULE": "kellyos.settings.base",
    "DEBUG": "false",
    "SECRET_KEY": "bench-only-secret-key-that-is-long-enough-for-django-checks",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "SECURE_SSL_REDIRECT": "false",
    "CONN_MAX_AGE": "600",
    "LOG_LEVEL": "WARNING",
    "MPESA_WEBHOOK_TOKEN": TOKEN,
    "MPESA_ALLOWED_IPS": "127.0.0.1",
    "MPESA_SHORTCODE": "600000",
}


def bench_database_env(suffix: str = "_c2bbench") -> tuple[dict[str, str], str]:
    """Settings for a fresh database of its own, next to DATABASE_URL's or in the embedded server."""
    env = dict(os.environ)
    url = env.get("DATABASE_URL", "")
    if url:
        parts = urlsplit(url)
        name = parts.path.lstrip("/") + suffix
        env["DATABASE_URL"] = urlunsplit(parts._replace(path="/" + name))
    else:
        name = "kellyos" + suffix
        env["EMBEDDED_DATABASE_NAME"] = name
    env.update(SERVER_SETTINGS)
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


def seed(customers: int, *, first: int = 0, unit_price: str = "5000.00") -> list[str]:
    """Customers with open invoices; returns the account numbers payers will type."""
    from datetime import timedelta

    from django.utils import timezone

    from customers.services import customer_create
    from invoices.services import InvoiceLineInput, invoice_create

    references = []
    for n in range(first, first + customers):
        customer = customer_create(name=f"Bench customer {n}", phone=f"07{n:08d}")
        invoice = invoice_create(
            customer=customer,
            lines=[InvoiceLineInput(description="Water bill", quantity=1, unit_price=unit_price)],
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


def machine_busy_seconds() -> float:
    """CPU time every core of this machine has spent working since boot (/proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq = map(int, Path("/proc/stat").read_text().split()[1:8])
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class CpuMeter:
    """The machine's CPU time over a run, and the part the load generator (a waited-for child
    process: wrk or pgbench) used itself; what is left is the server's and the database's."""

    def __enter__(self) -> CpuMeter:
        self.machine, self.generator = machine_busy_seconds(), children_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.machine = machine_busy_seconds() - self.machine
        self.generator = children_cpu_seconds() - self.generator

    def per_call_ms(self, calls: float) -> tuple[float, float]:
        """(server and database, load generator) CPU milliseconds per call."""
        return (self.machine - self.generator) / calls * 1000, self.generator / calls * 1000


def wrk_run(url: str, bodies_file: Path, *, duration: int, concurrency: int) -> dict[str, int]:
    threads = min(2, concurrency)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{duration}s", "--timeout", "10s",
         "-s", str(ROOT / "bench" / "c2b_wrk.lua"), url, "--", str(bodies_file), str(threads)],
        capture_output=True, text=True,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"wrk failed: {out.stderr or out.stdout}")
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT "))
    return {key: int(value) for key, value in (field.split("=") for field in line.split()[1:])}


def pgbench_run(env: dict[str, str], *, duration: int, concurrency: int, customers: int) -> dict[str, float]:
    """The database floor: bench/c2b_floor.sql against floor customers 1..customers."""
    from django.db import connection

    params = connection.get_connection_params()
    pg_env = {
        **env,
        "PGHOST": str(params.get("host") or "127.0.0.1"),
        "PGPORT": str(params.get("port") or 5432),
        "PGUSER": str(params.get("user") or "postgres"),
        "PGDATABASE": str(params["dbname"]),
    }
    if params.get("password"):
        pg_env["PGPASSWORD"] = str(params["password"])
    out = subprocess.run(
        ["pgbench", "-n", "-M", "prepared", f"-c{concurrency}", f"-j{min(2, concurrency)}", f"-T{duration}",
         "-D", f"customers={customers}", "-r", "-f", str(ROOT / "bench" / "c2b_floor.sql")],
        capture_output=True, text=True, env=pg_env,
    )  # fmt: skip
    if out.returncode:
        raise SystemExit(f"pgbench failed: {out.stderr or out.stdout}")
    figures: dict[str, float] = {}
    for line in out.stdout.splitlines():
        if line.startswith("number of transactions actually processed"):
            figures["transactions"] = float(line.split(":")[1].split("/")[0])
        elif line.startswith("number of failed transactions"):
            figures["failed"] = float(line.split(":")[1].split()[0])
        elif line.startswith("latency average"):
            figures["latency_ms"] = float(line.split("=")[1].split()[0])
        elif line.startswith("tps"):
            figures["tps"] = float(line.split("=")[1].split()[0])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=60, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, help="gunicorn processes (default: the deploy config's)")
    parser.add_argument("--threads", type=int, help="threads per process (default: the deploy config's)")
    parser.add_argument("--customers", type=int, default=500)
    args = parser.parse_args()
    for tool in ("wrk", "pgbench"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install wrk postgresql-client")

    env, database = bench_database_env()
    env.update(DJANGO_SETTINGS_MODULE="floor_settings", PYTHONPATH=str(ROOT / "bench"))
    sys.path.insert(0, str(ROOT / "bench"))
    recreate_database(env, database)
    from django.db import connection

    # Floor customers first (ids 1..customers, invoices too large ever to be paid), then ours.
    seed(args.customers, unit_price="900000000.00")
    references = seed(args.customers, first=args.customers)
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_raw_body (id bigserial PRIMARY KEY, received_at timestamptz NOT NULL "
            "DEFAULT now(), body text NOT NULL)"
        )
    # Enough distinct bodies for 1,500 callbacks/s; wrk would wrap around (more repeats) past that.
    bodies = payloads(1500 * args.duration, references, random.Random(2026))
    bodies_file = ROOT / "var" / "c2b_bench_bodies.jsonl"
    bodies_file.parent.mkdir(exist_ok=True)
    bodies_file.write_text("".join(json.dumps(body) + "\n" for body in bodies))

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    if args.workers:
        env["GUNICORN_WORKERS"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    env["GUNICORN_BIND"] = f"127.0.0.1:{port}"
    # The production configuration (deploy/gunicorn.conf.py); its access log goes nowhere here.
    server = subprocess.Popen(
        [gunicorn, "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "kellyos.wsgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_up(base, server)
        run = {"duration": args.duration, "concurrency": args.concurrency}
        with CpuMeter() as framework_cpu:
            framework = wrk_run(f"{base}/bench/raw-body", bodies_file, **run)
        with CpuMeter() as ours_cpu:
            ours = wrk_run(f"{base}/api/webhooks/c2b/{TOKEN}/confirmation", bodies_file, **run)
        rss = worker_rss_mib(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)
    with CpuMeter() as database_cpu:
        database_floor = pgbench_run(env, customers=args.customers, **run)

    def rate(result: dict[str, int]) -> float:
        return result["requests"] / (result["duration_us"] / 1e6)

    def latency(result: dict[str, int]) -> str:
        return (
            f"p50 {result['p50_us'] / 1000:.1f} ms, p90 {result['p90_us'] / 1000:.1f} ms, "
            f"p99 {result['p99_us'] / 1000:.1f} ms, max {result['max_us'] / 1000:.1f} ms"
        )

    def errors(result: dict[str, int]) -> int:
        return sum(result[key] for key in ("non_2xx", "connect", "read", "write", "timeout"))

    print(
        f"server: gunicorn -c deploy/gunicorn.conf.py ({len(rss)} processes, "
        f"{env.get('GUNICORN_THREADS', 'default')} threads), CONN_MAX_AGE=600; cpu cores: {os.cpu_count()}; "
        f"load: wrk, {args.concurrency} connections, {args.duration} s per run, on the same machine"
    )
    print(
        f"framework floor (bare endpoint, raw insert): {rate(framework):,.0f}/s; {latency(framework)}; "
        f"errors {errors(framework)}"
    )
    print(
        f"database floor (pgbench, same writes in plain SQL): {database_floor['tps']:,.0f}/s; "
        f"latency average {database_floor['latency_ms']:.1f} ms; failed {database_floor.get('failed', 0):.0f}"
    )
    print(
        f"Kelly OS confirmations: {rate(ours):,.0f}/s "
        f"({ours['requests']} in {ours['duration_us'] / 1e6:.1f} s); "
        f"{latency(ours)}; errors {errors(ours)}; bodies wrapped {ours['wrapped']}"
    )
    print(
        f"ratios: Kelly OS / framework floor {rate(ours) / rate(framework):.2f}; "
        f"Kelly OS / database floor {rate(ours) / database_floor['tps']:.2f}"
    )
    framework_ms, wrk_ms = framework_cpu.per_call_ms(framework["requests"])
    database_ms, pgbench_ms = database_cpu.per_call_ms(database_floor["transactions"])
    ours_ms, ours_wrk_ms = ours_cpu.per_call_ms(ours["requests"])
    cores = os.cpu_count() or 1
    print(
        f"CPU per callback, server and database (load generator's own apart): framework floor "
        f"{framework_ms:.2f} ms (wrk {wrk_ms:.2f}); database floor {database_ms:.2f} ms (pgbench "
        f"{pgbench_ms:.2f}); Kelly OS {ours_ms:.2f} ms (wrk {ours_wrk_ms:.2f})"
    )
    # A confirmation does both floors' work (an HTTP request into Django, then the writes), on the
    # same cores as its sender: that bounds what any booking code could reach on this machine.
    both = framework_ms + database_ms + ours_wrk_ms
    print(
        f"ceiling with both floors' work per confirmation ({both:.2f} ms CPU with wrk's) on {cores} cores: "
        f"about {cores * 1000 / both:,.0f}/s; Kelly OS / ceiling {rate(ours) / (cores * 1000 / both):.2f}"
    )
    # The target's CPU budget per confirmation, whatever this machine has: 2 cores at 500/s.
    budget = TARGET_CORES * 1000 / TARGET_RATE
    shares = ", ".join(
        f"{name} {spent / budget:.0%}"
        for name, spent in (
            ("framework floor", framework_ms + wrk_ms),
            ("database floor", database_ms + pgbench_ms),
            ("Kelly OS", ours_ms + ours_wrk_ms),
        )
    )
    print(
        f"CPU budget at the target ({TARGET_RATE}/s on {TARGET_CORES} cores): {budget:.2f} ms per "
        f"confirmation, sender included; used: {shares}"
    )
    print(f"worker resident memory after the run: {', '.join(f'{size:.0f} MiB' for size in rss)}")

    from django.db.models import Count

    from ledger.selectors import ledger_verify
    from mpesa.models import MpesaReceipt, WebhookKind, WebhookLog

    logs = WebhookLog.objects.filter(kind=WebhookKind.C2B_CONFIRMATION, trans_id__startswith="BN")
    sent = logs.count()
    distinct = logs.values("trans_id").distinct().count()
    receipts = MpesaReceipt.objects.filter(trans_id__startswith="BN").count()
    statuses = dict(
        WebhookLog.objects.filter(kind=WebhookKind.C2B_CONFIRMATION)
        .values_list("status")
        .annotate(n=Count("id"))
    )
    verdict = ledger_verify()
    print(
        f"confirmations logged {sent}; receipts {receipts} = distinct TransIDs {distinct}: "
        f"{receipts == distinct}; webhook log: {statuses}"
    )
    print(f"ledger_verify: is_valid={verdict['is_valid']} {verdict['errors'][:3]}")
    unbooked = statuses.get("FAILED", 0) + statuses.get("RECEIVED", 0)
    if receipts != distinct or errors(ours) or not verdict["is_valid"] or unbooked:
        sys.exit(1)


if __name__ == "__main__":
    main()
