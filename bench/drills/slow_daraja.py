"""Drill: Safaricom slow to answer while cashiers send prompts and Safaricom calls back.

    python bench/drills/slow_daraja.py [--cashiers 40] [--confirmations 300] [--workers 4] [--threads 8]

A cashier's "send prompt" (M-Pesa Express) asks Daraja from the request's own server thread and
waits for the answer, up to MPESA_HTTP_TIMEOUT (10 s). When Daraja slows down or hangs while many
cashiers press at once, those waits hold threads; a gunicorn gthread worker whose threads are all
waiting still accepts connections and queues them, so a confirmation landing there would wait longer
than Safaricom waits, and Safaricom does not call again.

The drill starts a fake Daraja and one server with the production configuration, shares a token
for the day, then makes the fake take --answer-delay seconds over every answer (with --token-hangs,
the token is not fetched first, so the OAuth call hangs too). --cashiers signed-in cashiers each press
"send prompt" on a sale of their own, again a second after every answer, while confirmations arrive
from 4 senders that wait --patience seconds for an answer, as Safaricom does.

Checked: every confirmation answered Success within the patience and booked exactly once, nothing in
part, ledger_verify valid; prompts reached the fake Daraja; every press answered with a refusal and
its reason, none after more than three Daraja timeouts; no prompt recorded as sent (one that went
out unanswered is kept as UNANSWERED, and its sale gets no second prompt for 90 s). Exits 1 on any
violation. Uses its own database, `<DATABASE_URL's name>_drill_slow_daraja`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness


class Cashier(threading.Thread):
    """Presses "send prompt" for one sale over and over, keeping every answer and how long it took."""

    def __init__(self, url: str, cookie: str, csrf_token: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.headers = {"Cookie": f"{cookie}; csrftoken={csrf_token}", "X-CSRFToken": csrf_token}
        self.stopping = threading.Event()
        self.presses: list[tuple[float, str]] = []

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                response = requests.post(
                    self.url, data={"phone": "0712345678"}, headers=self.headers, timeout=120
                )
                outcome = f"HTTP {response.status_code}: {response.json().get('error', 'sent')}"
            except (requests.RequestException, ValueError) as exc:
                outcome = type(exc).__name__
            self.presses.append((time.monotonic() - started, outcome))
            self.stopping.wait(1.0)  # reads the answer before pressing again


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cashiers", type=int, default=40)
    parser.add_argument("--confirmations", type=int, default=300)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--patience", type=float, default=8.0, help="seconds a sender waits for an answer")
    parser.add_argument(
        "--rate", type=float, default=20.0, help="confirmations/s: the storm outlasts Daraja's timeout"
    )
    parser.add_argument(
        "--answer-delay", type=float, default=30.0, help="seconds the fake Daraja takes over every answer"
    )
    parser.add_argument("--daraja-timeout", type=float, default=10.0, help="MPESA_HTTP_TIMEOUT")
    parser.add_argument("--token-hangs", action="store_true", help="no token shared before the slowdown")
    args = parser.parse_args()

    from mpesa.fake_daraja import SANDBOX_PASSKEY, FakeDaraja

    daraja = FakeDaraja().start()
    url = harness.shared_server_url()
    env = harness.drill_env(
        url,
        urlsplit(url).path.lstrip("/") + "_drill_slow_daraja",
        MPESA_API_BASE=daraja.url,
        MPESA_CONSUMER_KEY=daraja.state.consumer_key,
        MPESA_CONSUMER_SECRET=daraja.state.consumer_secret,
        MPESA_PASSKEY=SANDBOX_PASSKEY,
        MPESA_CALLBACK_BASE_URL="http://127.0.0.1:9",  # never called back: the prompts are never taken
        MPESA_HTTP_TIMEOUT=str(args.daraja_timeout),
    )
    references = harness.prepare(env, customers=args.customers)
    bodies = harness.storm_bodies(args.confirmations, references)
    cookie, sales = _cashier_with_sales(args.cashiers)
    if not args.token_hangs:
        from mpesa.daraja import DarajaClient

        DarajaClient.from_settings().access_token()  # the workers share it through the database
    daraja.state.answer_delay = args.answer_delay

    server = harness.Server(env, workers=args.workers, threads=args.threads)
    try:
        home = requests.get(f"{server.base}/pos/", headers={"Cookie": cookie}, timeout=10)
        csrf_token = home.cookies["csrftoken"]
        cashiers = [Cashier(f"{server.base}/pos/sales/{sale}/prompt", cookie, csrf_token) for sale in sales]
        for cashier in cashiers:
            cashier.start()
        time.sleep(1.0)  # the first presses are waiting on Daraja
        storm = harness.Storm([server.confirmation_url], concurrency=4, rate=args.rate, timeout=args.patience)
        started = time.monotonic()
        answers = storm.run(bodies)
        elapsed = time.monotonic() - started
        for cashier in cashiers:
            cashier.stopping.set()
        for cashier in cashiers:
            cashier.join(timeout=180)
    finally:
        server.stop()
        daraja.stop()

    check = harness.answered_in_time_check(bodies, answers, patience=args.patience)
    violations = list(check.violations)
    repeats = len(answers) - len({body["TransID"] for body in bodies})
    presses = [press for cashier in cashiers for press in cashier.presses]
    outcomes = Counter(outcome for _, outcome in presses)
    press_seconds = sorted(seconds for seconds, _ in presses)
    if any(not outcome.startswith("HTTP 400") for outcome in outcomes):
        violations.append(f"presses not refused with a reason: {dict(outcomes)}")
    if press_seconds and press_seconds[-1] > 3 * args.daraja_timeout:
        violations.append(f"a cashier waited {press_seconds[-1]:.0f} s for an answer")
    prompts_asked = daraja.state.requests_received["/mpesa/stkpush/v1/processrequest"]
    if not args.token_hangs and not prompts_asked:
        violations.append("no prompt reached the fake Daraja: the drill tested nothing")
    prompts = _prompts_recorded()
    if prompts.get("REQUESTED"):
        violations.append(f"{prompts['REQUESTED']} prompts recorded as sent, though Safaricom never answered")
    if prompts.get("SENDING"):
        violations.append(f"{prompts['SENDING']} prompts left as being sent after every press was answered")
    refused_at_once = sum(count for outcome, count in outcomes.items() if "already waiting on it" in outcome)
    counted = _refusals_counted()
    if counted.get("daraja_call_refused", 0) < refused_at_once:
        violations.append(f"{refused_at_once} presses refused at once, but /metrics counts {counted}")
    seconds = sorted(a.finished - a.started for a in answers)
    figures: dict[str, object] = {
        "server": f"gunicorn (deploy/gunicorn.conf.py), {args.workers} x {args.threads} threads",
        "Daraja": f"fake, {args.answer_delay:g} s over every answer; our timeout {args.daraja_timeout:g} s; "
        + ("no token shared before" if args.token_hangs else "a token shared before"),
        "requests Daraja received": dict(daraja.state.requests_received),
        "cashiers pressing": f"{args.cashiers}, {len(presses)} presses",
        "press answers": dict(outcomes),
        "prompts recorded": prompts,
        "refusals counted for /metrics": counted,
        "press answer time": f"median {statistics.median(press_seconds):.2f} s, max {press_seconds[-1]:.2f} s"
        if press_seconds
        else "none answered",
        "confirmations": f"{len(answers)} ({repeats} repeats) from 4 senders in "
        f"{elapsed:.1f} s, each waiting {args.patience:.0f} s",
        "answers": harness.answers_summary(answers),
        "answer time": f"median {statistics.median(seconds):.3f} s, p99 "
        f"{seconds[int(len(seconds) * 0.99) - 1]:.3f} s, max {seconds[-1]:.3f} s",
        **check.figures,
    }
    return harness.report("slow Daraja drill", figures, violations)


def _cashier_with_sales(count: int) -> tuple[str, list[str]]:
    """A signed-in cashier's session cookie and `count` sales of theirs waiting for payment."""
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.test import Client

    from pos.roles import CASHIER_GROUP
    from pos.services import SaleLineInput, sale_create

    cashier = User.objects.create_user("drill-cashier", "cashier@example.com", None)
    cashier.groups.add(Group.objects.get(name=CASHIER_GROUP))
    flour = SaleLineInput(quantity=1, description="Maize flour 2kg", unit_price="230")
    sales = [sale_create(lines=[flour], cashier=cashier) for _ in range(count)]
    client = Client()
    client.force_login(cashier)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}", [
        sale.reference for sale in sales
    ]


def _prompts_recorded() -> dict[str, int]:
    from django.db.models import Count

    from mpesa.models import StkPush

    return dict(StkPush.objects.values_list("status").annotate(n=Count("id")).order_by())


def _refusals_counted() -> dict[str, int]:
    from kellyos.slots import refusal_counts

    return dict(refusal_counts())


if __name__ == "__main__":
    sys.exit(main())
