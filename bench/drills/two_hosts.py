"""Drill: one storm of confirmations split across two separate servers ("hosts") on one database.

    python bench/drills/two_hosts.py [--confirmations 2000] [--concurrency 16] [--workers 2]

Two gunicorn processes on two ports share the database, as two machines behind a load balancer
would. Confirmations alternate between them, and every repeated TransID is delivered to both hosts
at the same moment. A browser on each host reads the live updates (`GET /events`, Server-Sent
Events fed by PostgreSQL LISTEN/NOTIFY) as a signed-in accountant.

Checked: every TransID answered Success and booked exactly once, no receipt in part, ledger_verify
valid, and each host's event stream showed every booked receipt exactly once, whichever host booked
it. Exits 1 on any violation. Uses its own database, `<DATABASE_URL's name>_drill_two_hosts`.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--confirmations", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per host")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait for the last events")
    args = parser.parse_args()

    url = harness.shared_server_url()
    env = harness.drill_env(url, urlsplit(url).path.lstrip("/") + "_drill_two_hosts")
    references = harness.prepare(env, customers=args.customers)
    bodies = _with_simultaneous_repeats(harness.storm_bodies(args.confirmations, references))
    by_id = {body["TransID"]: body for body in bodies}
    cookie = harness.session_cookie_for_accountant()

    hosts = [harness.Server(env, workers=args.workers, threads=args.threads) for _ in range(2)]
    readers = [harness.EventReader(host.base, cookie) for host in hosts]
    try:
        for reader in readers:
            reader.start()
            if not reader.connected.wait(30):
                raise SystemExit(f"no event stream from {reader.base}/events")
        storm = harness.Storm([host.confirmation_url for host in hosts], args.concurrency)
        started = time.monotonic()
        answers = storm.run(bodies, host_of=lambda n: n % 2)
        elapsed = time.monotonic() - started
        booked = _booked()
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline and any(set(r.trans_ids) != booked for r in readers):
            time.sleep(0.2)
        streams_complete_after = time.monotonic() - started - elapsed
    finally:
        for reader in readers:
            reader.stopping.set()
        for host in hosts:
            host.stop()

    acknowledged = {a.trans_id for a in answers if a.acknowledged}
    check = harness.books_check(
        acknowledged=acknowledged, delivered=set(by_id), amounts=harness.amounts_of(bodies)
    )
    violations = list(check.violations)
    if acknowledged != set(by_id):
        violations.append(f"{len(set(by_id) - acknowledged)} TransIDs never answered Success")
    per_host = Counter(a.host for a in answers)
    figures: dict[str, object] = {
        "hosts": f"2 gunicorn processes (deploy/gunicorn.conf.py), {args.workers} x {args.threads} threads, "
        "one database",
        "callbacks sent": f"{len(answers)} ({len(answers) - len(by_id)} repeats, each to both hosts at "
        f"once) at concurrency {args.concurrency} in {elapsed:.1f} s; "
        f"host 1 {per_host[0]}, host 2 {per_host[1]}",
        "answers": harness.answers_summary(answers),
        **check.figures,
    }
    for number, reader in enumerate(readers, start=1):
        seen = Counter(reader.trans_ids)
        missing = booked - seen.keys()
        twice = [t for t, n in seen.items() if n > 1]
        foreign = seen.keys() - booked
        figures[f"host {number} /events"] = (
            f"{len(seen)} of {len(booked)} booked receipts seen, {len(twice)} twice, "
            f"{len(foreign)} unknown, {reader.reconnects} reconnects"
        )
        if missing:
            violations.append(f"host {number}'s stream missed {len(missing)}: {sorted(missing)[:10]}")
        if twice:
            violations.append(f"host {number}'s stream showed receipts twice: {twice[:10]}")
        if foreign:
            violations.append(f"host {number}'s stream showed receipts not booked: {sorted(foreign)[:10]}")
    figures["both streams complete after the storm"] = f"{max(0.0, streams_complete_after):.1f} s"
    return harness.report("two hosts drill", figures, violations)


def _with_simultaneous_repeats(bodies: list[dict[str, str]]) -> list[dict[str, str]]:
    """Each repeat right after its original: alternating hosts, the two deliveries race each other."""
    deliveries = Counter(body["TransID"] for body in bodies)
    first: dict[str, dict[str, str]] = {}
    for body in bodies:
        first.setdefault(body["TransID"], body)
    result: list[dict[str, str]] = []
    for trans_id, body in first.items():
        result += [body] * min(deliveries[trans_id], 2)
    return result


def _booked() -> set[str]:
    from mpesa.models import MpesaReceipt

    return set(MpesaReceipt.objects.values_list("trans_id", flat=True))


if __name__ == "__main__":
    sys.exit(main())
