"""The fault drills of bench/drills/ at a small scale: each starts real servers (gunicorn) on a
database of its own, injects its fault and exits non-zero on any violation of exactly-once booking or
of the books. `make drills` runs them at full scale."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "drills"))
from harness import pg_binaries

pytestmark = pytest.mark.drill

DRILLS = Path(__file__).resolve().parents[2] / "bench" / "drills"
needs_database_url = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL"),
    reason="the drill makes its own database next to DATABASE_URL's; unset, so nothing to run it on",
)


def drill(script: str, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, str(DRILLS / script), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"{script} failed:\n{done.stdout[-6000:]}\n{done.stderr[-4000:]}"
    assert "no violation" in done.stdout


@needs_database_url
def test_killed_workers_lose_and_double_nothing():
    drill("worker_sigkill.py", "--confirmations", "300", "--kills", "2", "--customers", "20")


@pytest.mark.skipif(pg_binaries() is None, reason="initdb and pg_ctl are not installed (postgresql-15)")
def test_a_database_restart_is_answered_with_errors_and_recovered_from():
    drill("postgres_restart.py", "--confirmations", "240", "--outage", "2", "--customers", "20")


@needs_database_url
def test_two_hosts_book_once_and_both_streams_see_every_receipt():
    drill("two_hosts.py", "--confirmations", "150", "--customers", "20")


@needs_database_url
def test_payments_refunds_reallocations_and_confirmations_at_once_never_deadlock():
    drill("payments_deadlock.py", "--processes", "2", "--threads", "9", "--operations", "8")


@needs_database_url
def test_the_retry_and_a_live_booking_of_one_log_never_deadlock():
    drill("retry_vs_live_booking.py")


@needs_database_url
def test_more_open_screens_than_threads_never_keep_safaricom_waiting():
    drill("open_screens.py", "--screens", "12", "--workers", "2", "--threads", "4", "--confirmations", "60")


@needs_database_url
def test_a_slow_safaricom_never_keeps_its_own_callbacks_waiting():
    drill(
        "slow_daraja.py", "--cashiers", "12", "--workers", "2", "--threads", "4", "--confirmations", "60",
        "--rate", "10", "--answer-delay", "6", "--daraja-timeout", "3", "--patience", "4",
    )  # fmt: skip
