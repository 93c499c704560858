"""Drill: gunicorn workers killed with SIGKILL in the middle of a storm of confirmations.

    python bench/drills/worker_sigkill.py [--confirmations 2000] [--kills 4] [--concurrency 16]

A worker killed mid-booking leaves its raw log RECEIVED and nothing else (its transaction dies with
its connection); its callers get no answer. gunicorn starts a new worker. Then, as in production:
once the storm is over, `mpesa_retry_failed` books the abandoned logs, and Safaricom delivers again
what was never answered Success. Checked: every confirmation answered Success is booked after the
retry, every TransID exactly once, no receipt booked in part, ledger_verify valid. Exits 1 on any
violation. Uses its own database, `<DATABASE_URL's name>_drill_sigkill`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--confirmations", type=int, default=2000)
    parser.add_argument("--kills", type=int, default=4, help="workers killed, spread over the storm")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--customers", type=int, default=100)
    args = parser.parse_args()

    url = harness.shared_server_url()
    env = harness.drill_env(url, urlsplit(url).path.lstrip("/") + "_drill_sigkill")
    references = harness.prepare(env, customers=args.customers)
    bodies = harness.storm_bodies(args.confirmations, references)
    by_id = {body["TransID"]: body for body in bodies}

    server = harness.Server(env, workers=args.workers, threads=args.threads)
    killed: list[int] = []
    try:
        storm = harness.Storm([server.confirmation_url], args.concurrency)
        started = time.monotonic()
        running = storm.run_in_background(bodies)
        for n in range(1, args.kills + 1):
            storm.wait_for(len(bodies) * n // (args.kills + 1), running)
            busy = server.worker_pids()
            if busy:
                victim = busy[n % len(busy)]
                os.kill(victim, signal.SIGKILL)
                killed.append(victim)
        running.join()
        elapsed = time.monotonic() - started
        workers_after = len(server.worker_pids())
    except BaseException:
        server.stop()
        raise

    answers = storm.answers
    stranded = harness.logs_by_status()
    retried, retry_seconds = harness.retry_failed(env)
    acknowledged = {a.trans_id for a in answers if a.acknowledged}
    # Checked before anyone delivers again: the retry alone must have booked every acknowledged one.
    first = harness.books_check(
        acknowledged=acknowledged, delivered=acknowledged, amounts=harness.amounts_of(bodies)
    )

    try:
        again = harness.redeliver(lambda host: server.confirmation_url, answers, by_id)
    finally:
        server.stop()
    final = harness.books_check(
        acknowledged=acknowledged, delivered=set(by_id), amounts=harness.amounts_of(bodies)
    )

    figures: dict[str, object] = {
        "server": f"deploy/gunicorn.conf.py (gthread), {args.workers} workers x {args.threads} threads",
        "callbacks sent": f"{len(answers)} ({len(answers) - len(by_id)} repeats) at concurrency "
        f"{args.concurrency} in {elapsed:.1f} s",
        "workers SIGKILLed": f"{len(killed)}; workers alive after: {workers_after} of {args.workers}",
        "answers": harness.answers_summary(answers),
        "confirmation logs before the retry": stranded,
        "mpesa_retry_failed --stuck-after 0": f"{retried} ({retry_seconds:.1f} s)",
        "after the retry": first.figures,
        "redelivered (never answered Success)": again,
        **final.figures,
    }
    violations = [f"after the retry: {v}" for v in first.violations] + final.violations
    if workers_after < args.workers:
        violations.append(f"gunicorn has {workers_after} workers, not {args.workers}, after the kills")
    return harness.report("worker SIGKILL drill", figures, violations)


if __name__ == "__main__":
    sys.exit(main())
