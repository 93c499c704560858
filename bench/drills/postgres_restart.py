"""Drill: PostgreSQL restarted under a storm of confirmations.

    python bench/drills/postgres_restart.py [--confirmations 1500] [--rate 40] [--outage 4] [--stop-mode fast]

Runs on a private PostgreSQL cluster of its own (initdb + pg_ctl under /tmp, a free port, as `nobody`
when run as root), never the shared server. Confirmations are sent at a steady rate; a third of the
way in, the database is stopped (`pg_ctl stop -m fast`: sessions killed, transactions rolled back, or
`-m immediate`: a crash), kept down for --outage seconds, and started again. gunicorn is not touched.

Checked: every callback answered Success was stored (its raw log exists) and, after
`mpesa_retry_failed`, booked; callbacks during the outage got an error, not Success; the server
answers Success again by itself once the database is back (the recovery time is printed); after
Safaricom delivers again what got an error, every TransID is booked exactly once, nothing in part,
and ledger_verify is valid. Exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--confirmations", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=40.0, help="callbacks per second, at most")
    parser.add_argument("--outage", type=float, default=4.0, help="seconds the database stays down")
    parser.add_argument("--stop-mode", choices=["fast", "immediate"], default="fast")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--customers", type=int, default=100)
    args = parser.parse_args()

    cluster = harness.PrivateCluster()
    try:
        cluster.start()
        return drill(cluster, args)
    finally:
        cluster.destroy()


def drill(cluster: harness.PrivateCluster, args: argparse.Namespace) -> int:
    env = harness.drill_env(cluster.url, "kellyos_drill")
    references = harness.prepare(env, customers=args.customers)
    bodies = harness.storm_bodies(args.confirmations, references)
    by_id = {body["TransID"]: body for body in bodies}

    server = harness.Server(env, workers=args.workers, threads=args.threads)
    health: list[tuple[float, int]] = []
    watching = threading.Event()
    watcher = threading.Thread(target=_watch_health, args=(server.base, health, watching), daemon=True)
    try:
        storm = harness.Storm([server.confirmation_url], args.concurrency, rate=args.rate)
        watcher.start()
        running = storm.run_in_background(bodies)
        storm.wait_for(len(bodies) // 3, running)
        down = time.monotonic()
        cluster.stop(args.stop_mode)
        stopped = time.monotonic()
        time.sleep(args.outage)
        # Down for certain until the start begins: PostgreSQL accepts connections a little before
        # pg_ctl's polling notices, so answers finishing during the start may rightly be Success.
        restarting = time.monotonic()
        cluster.start()
        back = time.monotonic()
        running.join()
        watching.set()
        workers_after = len(server.worker_pids())
    except BaseException:
        server.stop()
        raise

    from django.db import connection

    connection.close()  # this process's own connection did not survive the restart either
    answers = storm.answers
    acknowledged = {a.trans_id for a in answers if a.acknowledged}
    stored = harness.logged_trans_ids()
    during = [a for a in answers if stopped <= a.started and a.finished <= restarting]
    after = sorted((a for a in answers if a.started >= back), key=lambda a: a.started)
    first_ok = next((a for a in after if a.acknowledged), None)
    errors_after = [a for a in after if not a.acknowledged]
    healthy_again = next((t for t, status in health if t >= back and status == 200), None)
    stranded = harness.logs_by_status()
    retried, retry_seconds = harness.retry_failed(env)
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

    violations = [f"after the retry: {v}" for v in first.violations] + final.violations
    unstored = acknowledged - stored
    if unstored:
        violations.append(f"answered Success but no raw log stored: {sorted(unstored)[:10]}")
    acknowledged_during = [a.trans_id for a in during if a.acknowledged]
    if acknowledged_during:
        violations.append(f"answered Success while the database was down: {acknowledged_during[:10]}")
    if first_ok is None:
        violations.append("no callback was answered Success after the database came back")
    if workers_after < args.workers:
        violations.append(f"gunicorn has {workers_after} workers, not {args.workers}")
    figures: dict[str, object] = {
        "database": f"private cluster on 127.0.0.1:{cluster.port}, pg_ctl stop -m {args.stop_mode}",
        "server": f"deploy/gunicorn.conf.py (gthread), {args.workers} workers x {args.threads} threads",
        "callbacks sent": f"{len(answers)} ({len(answers) - len(by_id)} repeats) at {args.rate:.0f}/s",
        "database down": f"{back - down:.1f} s (stopping {stopped - down:.1f} s, outage {args.outage:.1f} s, "
        f"starting {back - restarting:.1f} s)",
        "answers": harness.answers_summary(answers),
        "answers while down": harness.answers_summary(during),
        "first Success after the database was back": _since(first_ok.finished if first_ok else None, back),
        "/health 200 again after the database was back": _since(healthy_again, back),
        "errors for callbacks sent after it was back": len(errors_after),
        "confirmation logs before the retry": stranded,
        "mpesa_retry_failed --stuck-after 0": f"{retried} ({retry_seconds:.1f} s)",
        "after the retry": first.figures,
        "redelivered (never answered Success)": again,
        **final.figures,
    }
    return harness.report("PostgreSQL restart drill", figures, violations)


def _watch_health(base: str, seen: list[tuple[float, int]], done: threading.Event) -> None:
    while not done.is_set():
        try:
            status = requests.get(f"{base}/health", timeout=2).status_code
        except requests.RequestException:
            status = 0
        seen.append((time.monotonic(), status))
        time.sleep(0.05)


def _since(moment: float | None, back: float) -> str:
    return "never" if moment is None else f"{moment - back:.2f} s"


if __name__ == "__main__":
    sys.exit(main())
