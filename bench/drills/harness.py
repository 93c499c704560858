"""What the fault drills share: a fresh database (on DATABASE_URL's server, or on a private
PostgreSQL cluster the drill may stop and start), gunicorn as in production, a storm of confirmations
that records every answer, a Server-Sent Events reader, and the checks of the books.

The database, seed data and payloads are bench/c2b_load.py's, so a drill and the benchmark load the
same thing."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from c2b_load import SERVER_SETTINGS, TOKEN, free_port, payloads, recreate_database, seed, wait_until_up  # noqa: E402

PG_BIN_DIRS = [Path("/usr/lib/postgresql/15/bin"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"))]
SUCCESS = {"ResultCode": 0, "ResultDesc": "Success"}


def drill_env(database_url: str, name: str, **extra: str) -> dict[str, str]:
    """The production settings of bench/c2b_load.py, on database `name` of `database_url`'s server."""
    parts = urlsplit(database_url)
    env = dict(os.environ)
    for limit in ("EVENTS_STREAMS_PER_PROCESS", "MPESA_CALLS_PER_PROCESS"):
        env.pop(limit, None)  # a drill measures the defaults unless it sets its own (extra)
    env.update(
        SERVER_SETTINGS,
        DATABASE_URL=urlunsplit(parts._replace(path="/" + name)),
        LOG_LEVEL="ERROR",
        **extra,
    )
    env.pop("EMBEDDED_DATABASE_NAME", None)
    return env


def shared_server_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        raise SystemExit("Set DATABASE_URL (e.g. postgres://postgres@127.0.0.1:5432/kellyos) for this drill.")
    return url


def prepare(env: dict[str, str], *, customers: int) -> list[str]:
    """A fresh, migrated database seeded with customers and open invoices; Django is set up on it in
    this process. Returns the account numbers payers type."""
    name = urlsplit(env["DATABASE_URL"]).path.lstrip("/")
    recreate_database(env, name)
    return seed(customers)


def storm_bodies(count: int, references: list[str], *, seed_value: int = 2026) -> list[dict[str, str]]:
    return payloads(count, references, random.Random(seed_value))


def amounts_of(bodies: list[dict[str, str]]) -> dict[str, str]:
    return {body["TransID"]: body["TransAmount"] for body in bodies}


def pg_binaries() -> tuple[str, str] | None:
    for directory in [*(Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p), *PG_BIN_DIRS]:
        initdb, pg_ctl = directory / "initdb", directory / "pg_ctl"
        if initdb.exists() and pg_ctl.exists():
            return str(initdb), str(pg_ctl)
    return None


class PrivateCluster:
    """A throwaway PostgreSQL under /tmp on a free port, ours to stop and start (never the shared
    server). As root it runs as `nobody`, since PostgreSQL refuses to run as root."""

    def __init__(self) -> None:
        binaries = pg_binaries()
        if binaries is None:
            raise SystemExit("initdb and pg_ctl not found (apt-get install postgresql-15)")
        self.initdb, self.pg_ctl = binaries
        self.run_as = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        self.dir = Path(tempfile.mkdtemp(prefix="kellyos-drill-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        if self.run_as:
            shutil.chown(self.dir, user="nobody")
        self._run([self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8"])

    def _run(self, command: list[str]) -> None:
        subprocess.run([*self.run_as, *command], check=True, capture_output=True, cwd=self.dir)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c max_connections=200 -c fsync=off"
        )
        self._run(
            [self.pg_ctl, "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start"]
        )

    def stop(self, mode: str = "fast") -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop"])

    def destroy(self) -> None:
        subprocess.run([*self.run_as, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(self.dir, ignore_errors=True)


# Kept for a drill that finds a violation, removed otherwise (see `report`).
SERVER_LOGS: list[Path] = []


class Server:
    """gunicorn with the production configuration (deploy/gunicorn.conf.py: gthread workers), on a
    free port, with persistent database connections."""

    def __init__(self, env: dict[str, str], *, workers: int, threads: int) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workers, self.threads = workers, threads
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        # The errors a fault provokes are expected: kept in a file, not across the drill's figures.
        self.log = Path(tempfile.mkstemp(prefix="kellyos-drill-gunicorn-", suffix=".log")[1])
        SERVER_LOGS.append(self.log)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [gunicorn, "-c", str(ROOT / "deploy" / "gunicorn.conf.py"), "kellyos.wsgi:application",
                 "--bind", f"127.0.0.1:{self.port}", "--workers", str(workers), "--threads", str(threads),
                 # An open event stream would hold a graceful stop for the configured 30 s.
                 "--graceful-timeout", "3", "--log-level", "error", "--access-logfile", "/dev/null"],
                cwd=ROOT, env=env, stdout=log, stderr=log,
            )  # fmt: skip
        wait_until_up(self.base, self.process)

    @property
    def confirmation_url(self) -> str:
        return f"{self.base}/api/webhooks/c2b/{TOKEN}/confirmation"

    def worker_pids(self) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in found.stdout.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Answer:
    trans_id: str
    host: int
    started: float
    finished: float
    status: int | None  # None: no HTTP answer at all (connection reset or refused)
    body: object
    error: str = ""

    @property
    def acknowledged(self) -> bool:
        return self.status == 200 and self.body == SUCCESS


@dataclass
class Storm:
    """Fires confirmations at servers from `concurrency` threads, recording every answer; `progress`
    lets the drill inject its fault while the storm runs."""

    urls: list[str]
    concurrency: int
    rate: float | None = None  # callbacks/s; paced, so a fault lands mid-storm whatever the answers
    timeout: float = 30.0  # seconds a caller waits for an answer
    answers: list[Answer] = field(default_factory=list)
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, bodies: list[dict[str, str]], host_of: Callable[[int], int] = lambda n: 0) -> list[Answer]:
        next_slot = [time.monotonic()]

        def send(item: tuple[int, dict[str, str]]) -> Answer:
            n, body = item
            if self.rate:
                # No catching up: fast error answers during a fault do not use the storm up sooner.
                with self._lock:
                    slot = next_slot[0] = max(next_slot[0], time.monotonic()) + 1 / self.rate
                time.sleep(max(0.0, slot - time.monotonic()))
            host = host_of(n)
            with self._lock:
                self.sent += 1
            started = time.monotonic()
            try:
                # A connection per callback, as Safaricom calls: a kept-alive one that the server
                # closes as it idles would fail a request that never reached it.
                response = requests.post(
                    self.urls[host], json=body, headers={"Connection": "close"}, timeout=self.timeout
                )
            except requests.RequestException as exc:
                answer = Answer(
                    body["TransID"], host, started, time.monotonic(), None, None, type(exc).__name__
                )
            else:
                try:
                    parsed: object = response.json()
                except ValueError:
                    parsed = response.text[:200]
                answer = Answer(
                    body["TransID"], host, started, time.monotonic(), response.status_code, parsed
                )
            with self._lock:
                self.answers.append(answer)
            return answer

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(send, enumerate(bodies)))

    def run_in_background(
        self, bodies: list[dict[str, str]], host_of: Callable[[int], int] = lambda n: 0
    ) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(bodies, host_of), daemon=True)
        thread.start()
        return thread

    def wait_for(self, count: int, thread: threading.Thread) -> None:
        while self.sent < count and thread.is_alive():
            time.sleep(0.01)


def answers_summary(answers: list[Answer]) -> dict[str, int]:
    summary: dict[str, int] = {}
    for answer in answers:
        key = (
            "Success" if answer.acknowledged else (f"HTTP {answer.status}" if answer.status else answer.error)
        )
        summary[key] = summary.get(key, 0) + 1
    return summary


def redeliver(
    url_of: Callable[[int], str], answers: list[Answer], bodies_by_id: dict[str, dict[str, str]]
) -> int:
    """Safaricom's part after an error answer: deliver again, until acknowledged. Returns how many
    were sent again."""
    pending = sorted({a.trans_id: a.host for a in answers if not a.acknowledged}.items())
    acknowledged_later = {a.trans_id for a in answers if a.acknowledged}
    pending = [(trans_id, host) for trans_id, host in pending if trans_id not in acknowledged_later]
    for trans_id, host in pending:
        for _ in range(20):
            try:
                response = requests.post(url_of(host), json=bodies_by_id[trans_id], timeout=30)
                if response.status_code == 200 and response.json() == SUCCESS:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise SystemExit(f"{trans_id} was never acknowledged on redelivery")
    return len(pending)


def retry_failed(env: dict[str, str]) -> tuple[str, float]:
    """The retry path as an operator runs it, taking abandoned logs at once: the storm is over, so
    nothing is being booked."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "manage.py", "mpesa_retry_failed", "--stuck-after", "0"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout.strip().splitlines()[-1], time.monotonic() - started


def logs_by_status() -> dict[str, int]:
    from django.db.models import Count

    from mpesa.models import WebhookKind, WebhookLog

    rows = WebhookLog.objects.filter(kind=WebhookKind.C2B_CONFIRMATION).values_list("status")
    return dict(rows.annotate(n=Count("id")))


@dataclass
class BooksCheck:
    """What the database holds after a drill, against what the callers were told."""

    violations: list[str]
    figures: dict[str, object]


def books_check(*, acknowledged: set[str], delivered: set[str], amounts: dict[str, str]) -> BooksCheck:
    """Exactly once, nothing partial, nothing acknowledged that is not booked, and valid books.

    `acknowledged`: TransIDs answered Success at least once; `delivered`: every TransID that must by
    now be booked (after redelivery, all of them)."""
    from decimal import Decimal

    from django.db import connection
    from django.db.models import Count, Sum

    from invoices.models import Payment
    from ledger.chart import MPESA_CASH
    from ledger.selectors import account_balance, ledger_verify
    from mpesa.models import MpesaReceipt, WebhookKind, WebhookLog, WebhookStatus

    connection.close()  # the drill may have restarted the database under this process's connection
    violations = []
    receipts = dict(MpesaReceipt.objects.values_list("trans_id", "amount"))
    missing_acknowledged = acknowledged - receipts.keys()
    if missing_acknowledged:
        violations.append(f"acknowledged but not booked: {sorted(missing_acknowledged)[:10]}")
    missing = delivered - receipts.keys()
    if missing:
        violations.append(f"delivered but not booked: {sorted(missing)[:10]}")
    unknown = receipts.keys() - amounts.keys()
    if unknown:
        violations.append(f"receipts nobody sent: {sorted(unknown)[:10]}")
    wrong_amount = [t for t, amount in receipts.items() if t in amounts and amount != Decimal(amounts[t])]
    if wrong_amount:
        violations.append(f"receipts with another amount than sent: {wrong_amount[:10]}")
    doubled = list(
        Payment.objects.filter(reallocated_at__isnull=True)
        .values("source", "source_id")
        .annotate(n=Count("id"))
        .filter(n__gt=1)
        .values_list("source_id", flat=True)
    )
    if doubled:
        violations.append(f"payments booked twice: {doubled[:10]}")
    partial = []
    for receipt in MpesaReceipt.objects.select_related("payment", "sale_payment"):
        booked = receipt.unallocated_amount
        booked += receipt.payment.amount if receipt.payment else 0
        booked += receipt.sale_payment.amount if receipt.sale_payment else 0
        if booked != receipt.amount:
            partial.append(receipt.trans_id)
    if partial:
        violations.append(f"receipts booked in part (payment + suspense != amount): {partial[:10]}")
    cash = account_balance(MPESA_CASH)
    total = MpesaReceipt.objects.aggregate(total=Sum("amount"))["total"] or Decimal("0.00")
    if cash != total:
        violations.append(f"1010 M-Pesa Cash {cash} != receipts total {total} (money doubled or lost)")
    stranded = WebhookLog.objects.filter(
        kind=WebhookKind.C2B_CONFIRMATION, status__in=[WebhookStatus.RECEIVED, WebhookStatus.FAILED]
    ).count()
    if stranded:
        violations.append(f"{stranded} confirmation log(s) still RECEIVED or FAILED")
    verdict = ledger_verify()
    if not verdict["is_valid"]:
        violations.append(f"ledger_verify invalid: {verdict['errors'][:5]}")
    return BooksCheck(
        violations,
        {
            "receipts booked": len(receipts),
            "distinct TransIDs delivered": len(delivered),
            "acknowledged TransIDs": len(acknowledged),
            "duplicates booked": len(doubled),
            "M-Pesa Cash (1010)": str(cash),
            "receipts total": str(total),
            "ledger_verify": "valid" if verdict["is_valid"] else "INVALID",
        },
    )


def answered_in_time_check(
    bodies: list[dict[str, str]], answers: list[Answer], *, patience: float
) -> BooksCheck:
    """The books after confirmations from senders that wait `patience` seconds, as Safaricom does:
    every one booked exactly once, and answered Success within that time (Safaricom does not call
    again)."""
    delivered = {body["TransID"] for body in bodies}
    acknowledged = {answer.trans_id for answer in answers if answer.acknowledged}
    check = books_check(acknowledged=acknowledged, delivered=delivered, amounts=amounts_of(bodies))
    unanswered = delivered - acknowledged
    if unanswered:
        check.violations.append(
            f"{len(unanswered)} of {len(delivered)} confirmations not answered Success within "
            f"{patience:.0f} s: Safaricom would not call again ({sorted(unanswered)[:5]}...)"
        )
    return check


def logged_trans_ids() -> set[str]:
    """TransIDs whose raw confirmation is stored (the webhook log), whatever became of them."""
    from mpesa.models import WebhookKind, WebhookLog

    found = set()
    for body in WebhookLog.objects.filter(kind=WebhookKind.C2B_CONFIRMATION).values_list("body", flat=True):
        try:
            found.add(json.loads(body)["TransID"])
        except (ValueError, KeyError, TypeError):
            continue
    return found


def session_cookie_for_accountant() -> str:
    """A signed-in superuser's session id, as a browser on the dashboard would hold."""
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    user = User.objects.create_superuser("drill-accountant", "drill@example.com", None)
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"


class EventReader(threading.Thread):
    """A browser's EventSource on /events: reads the stream, reconnects with Last-Event-ID when it
    closes (after the `retry:` time the server set, as a browser does), and keeps the TransIDs of the
    payment events it saw. `turned_away` counts the streams the server ended at once because it
    already held all the streams it takes."""

    def __init__(self, base: str, cookie: str) -> None:
        super().__init__(daemon=True)
        self.base, self.cookie = base, cookie
        self.trans_ids: list[str] = []
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.reconnects = 0
        self.turned_away = 0
        self.retry_seconds = 0.0
        self.last_id: str | None = None

    def run(self) -> None:
        while not self.stopping.is_set():
            headers = {"Cookie": self.cookie, "Accept": "text/event-stream"}
            if self.last_id:
                headers["Last-Event-ID"] = self.last_id
            try:
                with requests.get(
                    f"{self.base}/events", headers=headers, stream=True, timeout=(5, 30)
                ) as response:
                    response.raise_for_status()
                    for event in self._events(response.iter_lines(decode_unicode=True)):
                        if "busy" in event.get("comment", ""):
                            self.turned_away += 1
                            continue
                        self.connected.set()
                        if self.stopping.is_set():
                            return
                        if event.get("event") == "payment":
                            self.trans_ids.append(json.loads(event["data"])["trans_id"])
            except requests.RequestException:
                time.sleep(0.5)
            self.reconnects += 1
            self.stopping.wait(self.retry_seconds)

    def _events(self, lines: Iterator[str]) -> Iterator[dict[str, str]]:
        event: dict[str, str] = {}
        for line in lines:
            if not line:
                if event:
                    yield event
                event = {}
                continue
            name, _, value = line.partition(":")
            if name == "id":
                self.last_id = value.strip()
            if name == "retry" and value.strip().isdigit():
                self.retry_seconds = int(value) / 1000
            if name:
                event[name] = value.strip()
            else:
                event.setdefault("comment", value)


def report(title: str, figures: dict[str, object], violations: list[str]) -> int:
    print(f"\n== {title} ==")
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"  {key:<{width}}  {value}")
    if violations:
        print("VIOLATIONS:")
        for violation in violations:
            print(f"  - {violation}")
        print(f"server logs: {', '.join(str(log) for log in SERVER_LOGS) or 'none'}")
        return 1
    print("  no violation")
    for log in SERVER_LOGS:
        log.unlink(missing_ok=True)
    return 0
