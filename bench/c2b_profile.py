"""Where one C2B confirmation's work goes: the profile behind bench/c2b_load.py's figures.

    python bench/c2b_profile.py [--confirmations 600] [--segments 6] [--pstats FILE]

Builds a fresh database of its own (`<name>_c2bprofile`, production settings, DEBUG off), seeds
customers with open invoices, then posts confirmations one at a time through Django's test client:
the whole middleware stack, view and booking, without a server or a load generator around them. It
prints, per confirmation:
- Python CPU of this process (min and median over --segments equal runs: the machine's other work
  shows in the median, not much in the min);
- PostgreSQL CPU of the backend serving it (from /proc, so only for a server on this machine);
- statements sent (Django's cursor, so without BEGIN/COMMIT) and Python function calls, which do
  not depend on the machine's load;
- with pg_stat_statements loaded in the server: PostgreSQL's planning and execution time.
The account numbers are the load bench's mix (invoice numbers, customer codes, typed loosely, some
unknown); no repeats, so every one is a booking.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from c2b_load import TOKEN, bench_database_env, recreate_database, seed  # noqa: E402


def backend_cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None  # the server is on another machine (or another container)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--confirmations", type=int, default=600)
    parser.add_argument("--segments", type=int, default=6)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--pstats", type=Path, help="write the counted confirmations' cProfile stats here")
    args = parser.parse_args()

    env, name = bench_database_env("_c2bprofile")
    env["ALLOWED_HOSTS"] += ",testserver"
    recreate_database(env, name)
    from django.db import connection
    from django.test import Client

    from tests.mpesa.payloads import c2b

    references = seed(args.customers)
    rng = random.Random(2026)

    def confirmation(n: int) -> str:
        account = rng.choice(references) if rng.random() < 0.92 else f"UNKNOWN{n}"
        amount = str(rng.choice([50, 100, 250, 500, 1000, 2500]))
        return json.dumps(c2b(trans_id=f"PF{n:08d}", amount=amount, account=account))

    client = Client(REMOTE_ADDR="127.0.0.1")
    url = f"/api/webhooks/c2b/{TOKEN}/confirmation"
    sent = 0

    def post(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            answer = client.post(url, confirmation(sent), content_type="application/json")
            assert answer.status_code == 200 and answer.json()["ResultCode"] == 0, answer.content
            sent += 1

    post(50)  # warm: imports, caches, prepared statements
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (backend,) = cursor.fetchone()
        # Planning and execution times need the server to load pg_stat_statements at start
        # (shared_preload_libraries); then the extension is created in this throwaway database.
        cursor.execute("SELECT current_setting('shared_preload_libraries') LIKE '%%pg_stat_statements%%'")
        (has_statements_extension,) = cursor.fetchone()
        if has_statements_extension:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    if has_statements_extension:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_statements_reset()")

    size = args.confirmations // args.segments
    python_ms, database_ms = [], []
    for _ in range(args.segments):
        started, database_started = time.process_time(), backend_cpu_seconds(backend)
        post(size)
        python_ms.append((time.process_time() - started) / size * 1000)
        database_now = backend_cpu_seconds(backend)
        if database_started is not None and database_now is not None:
            database_ms.append((database_now - database_started) / size * 1000)
    timed = size * args.segments

    planning = None
    if has_statements_extension:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT sum(total_plan_time), sum(total_exec_time) FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND query NOT LIKE %s",
                ["%pg_stat_statements%"],
            )
            plan_total, exec_total = cursor.fetchone()
        planning = (plan_total / timed, exec_total / timed)

    statements = 0

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    counted = 100
    profile = cProfile.Profile()
    with connection.execute_wrapper(count):
        profile.enable()
        post(counted)
        profile.disable()
    import pstats

    calls = pstats.Stats(profile).total_calls / counted  # type: ignore[attr-defined]
    if args.pstats:
        profile.dump_stats(args.pstats)

    def spread(values: list[float]) -> str:
        return f"min {min(values):.2f} ms, median {statistics.median(values):.2f} ms"

    print(f"{timed} confirmations booked one at a time in-process ({args.segments} runs of {size}), then "
          f"{counted} counted; database {name}")  # fmt: skip
    print(f"Python CPU per confirmation: {spread(python_ms)}")
    print(
        "PostgreSQL backend CPU per confirmation: "
        + (spread(database_ms) if database_ms else "n/a (server not on this machine)")
    )
    if planning is None:
        print("PostgreSQL planning and execution: n/a (pg_stat_statements not in shared_preload_libraries)")
    else:
        print(f"PostgreSQL planning {planning[0]:.2f} ms and execution {planning[1]:.2f} ms per confirmation "
              "(pg_stat_statements, nested statements included)")  # fmt: skip
    print(f"statements per confirmation (without BEGIN/COMMIT): {statements / counted:.1f}; "
          f"Python function calls: {calls:,.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
