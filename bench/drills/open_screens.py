"""Drill: more live screens open than the server has threads, while Safaricom calls.

    python bench/drills/open_screens.py [--screens 40] [--confirmations 300] [--workers 4] [--threads 8]

Every cashier's waiting screen and accountant's dashboard holds a live-update stream (`GET /events`)
open for minutes, on one of the server's threads. A gunicorn gthread worker whose threads are all
holding streams still accepts connections and queues them, so a confirmation landing there would
wait for a stream to end: longer than Safaricom waits, and Safaricom does not call again.

The drill opens --screens streams as a signed-in accountant on one server with the production
configuration, waits until each is open or has been told to come back later, then sends
confirmations from 4 senders that wait --patience seconds for an answer, as Safaricom does.

Checked: every confirmation answered Success within the patience and booked exactly once, nothing in
part, ledger_verify valid; the screens that were let in see every booked receipt. Exits 1 on any
violation. Uses its own database, `<DATABASE_URL's name>_drill_open_screens`.
"""

from __future__ import annotations

import argparse
import statistics
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
    parser.add_argument("--screens", type=int, default=40)
    parser.add_argument("--confirmations", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--patience", type=float, default=8.0, help="seconds a sender waits for an answer")
    parser.add_argument("--settle", type=float, default=20.0, help="seconds to wait for the last events")
    args = parser.parse_args()

    url = harness.shared_server_url()
    env = harness.drill_env(url, urlsplit(url).path.lstrip("/") + "_drill_open_screens")
    references = harness.prepare(env, customers=args.customers)
    bodies = harness.storm_bodies(args.confirmations, references)
    cookie = harness.session_cookie_for_accountant()

    server = harness.Server(env, workers=args.workers, threads=args.threads)
    screens = [harness.EventReader(server.base, cookie) for _ in range(args.screens)]
    try:
        for screen in screens:
            screen.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(s.connected.is_set() or s.turned_away for s in screens):
            time.sleep(0.1)
        opened = sum(s.connected.is_set() for s in screens)
        turned_away = sum(bool(s.turned_away) and not s.connected.is_set() for s in screens)
        storm = harness.Storm([server.confirmation_url], concurrency=4, timeout=args.patience)
        started = time.monotonic()
        answers = storm.run(bodies)
        elapsed = time.monotonic() - started
        booked = _booked()
        watching = [s for s in screens if s.connected.is_set()]
        deadline = time.monotonic() + args.settle
        while time.monotonic() < deadline and any(set(s.trans_ids) != booked for s in watching):
            time.sleep(0.2)
    finally:
        for screen in screens:
            screen.stopping.set()
        server.stop()

    check = harness.answered_in_time_check(bodies, answers, patience=args.patience)
    violations = list(check.violations)
    repeats = len(answers) - len({body["TransID"] for body in bodies})
    seconds = sorted(a.finished - a.started for a in answers)
    complete = sum(set(s.trans_ids) >= booked for s in watching)
    if complete < len(watching):
        violations.append(f"{len(watching) - complete} open screens missed receipts")
    turnaways = sum(s.turned_away for s in screens)
    counted = dict(_refusals_counted()).get("live_screen_turned_away", 0)
    if counted < turnaways:
        violations.append(f"screens were turned away {turnaways} times, but /metrics counts {counted}")
    figures: dict[str, object] = {
        "server": f"gunicorn (deploy/gunicorn.conf.py), {args.workers} x {args.threads} threads",
        "screens": f"{args.screens} asked; {opened} streaming, {turned_away} told to come back later",
        "confirmations": f"{len(answers)} ({repeats} repeats) from 4 senders in "
        f"{elapsed:.1f} s, each waiting {args.patience:.0f} s",
        "answers": harness.answers_summary(answers),
        "answer time": f"median {statistics.median(seconds):.3f} s, p99 "
        f"{seconds[int(len(seconds) * 0.99) - 1]:.3f} s, max {seconds[-1]:.3f} s",
        "open screens that saw every booked receipt": f"{complete} of {len(watching)}",
        "screens turned away, in all": dict(Counter(s.turned_away for s in screens)),
        "turn-aways counted for /metrics": counted,
        **check.figures,
    }
    return harness.report("open screens drill", figures, violations)


def _booked() -> set[str]:
    from mpesa.models import MpesaReceipt

    return set(MpesaReceipt.objects.values_list("trans_id", flat=True))


def _refusals_counted() -> list[tuple[str, int]]:
    from kellyos.slots import refusal_counts

    return refusal_counts()


if __name__ == "__main__":
    sys.exit(main())
