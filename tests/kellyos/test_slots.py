"""The threads' budget: what may hold a server thread for seconds leaves a quarter for callbacks."""

import threading
import time

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection, transaction
from django.db.models import Sum
from django.test import Client

from kellyos.models import RefusalTally
from kellyos.slots import ThreadSlots, refusal_tally_fold, thread_budget_check
from tests.threads import run_in_threads


@pytest.mark.parametrize(
    ("threads", "streams", "calls", "warned"),
    [(8, 4, 2, False), (4, 2, 1, False), (2, 1, 1, True), (8, 6, 2, True), (32, 16, 8, False)],
)
def test_the_deploy_check_warns_when_the_limits_leave_too_few_threads_for_callbacks(
    settings, threads, streams, calls, warned
):
    settings.SERVER_THREADS = threads
    settings.EVENTS_STREAMS_PER_PROCESS, settings.MPESA_CALLS_PER_PROCESS = streams, calls
    found = thread_budget_check(None)
    assert [message.id for message in found] == (["kellyos.W001"] if warned else [])
    if warned:
        assert f"of a process's {threads} threads" in found[0].msg


def test_the_check_runs_with_check_deploy(settings):
    settings.SERVER_THREADS, settings.EVENTS_STREAMS_PER_PROCESS, settings.MPESA_CALLS_PER_PROCESS = 2, 1, 1
    with pytest.raises(SystemCheckError, match=r"kellyos\.W001"):
        call_command("check", "--deploy", "--tag", "kellyos", "--fail-level", "WARNING")


@pytest.mark.django_db
def test_every_refusal_is_counted_for_the_monitoring_scrape(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    settings.EVENTS_STREAMS_PER_PROCESS = 1
    slots = ThreadSlots("EVENTS_STREAMS_PER_PROCESS", reason="test_screen_turned_away")
    assert slots.take()
    assert not slots.take() and not slots.take()
    slots.give_back()
    assert slots.take()  # a slot given back is taken again, and nothing more is counted
    scrape = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").content.decode()
    assert 'kellyos_refusals_total{reason="test_screen_turned_away"} 2\n' in scrape
    # Reasons declared but never refused yet are shown at 0, so the first burst is a rise.
    assert 'kellyos_refusals_total{reason="daraja_token_wait_refused"} 0\n' in scrape


@pytest.mark.django_db(transaction=True)
def test_a_refusal_whose_count_cannot_be_written_is_still_a_refusal_not_an_error(settings, caplog):
    settings.EVENTS_STREAMS_PER_PROCESS = 0
    slots = ThreadSlots("EVENTS_STREAMS_PER_PROCESS", reason="test_uncounted")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE kellyos_refusaltally RENAME TO kellyos_refusaltally_away")
    try:
        with transaction.atomic():  # a caller's transaction survives the failed count
            assert not slots.take()
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE kellyos_refusaltally_away RENAME TO kellyos_refusaltally")
    assert "Could not count a refusal (test_uncounted)" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_no_refusal_waits_on_another_connections_count(settings):
    # A refusal counted inside a caller's long transaction keeps its row locked until that commits;
    # every other connection counts in a row of its own.
    settings.EVENTS_STREAMS_PER_PROCESS = 0
    slots = ThreadSlots("EVENTS_STREAMS_PER_PROCESS", reason="test_busy")
    counted, release = threading.Event(), threading.Event()

    def long_transaction():
        with transaction.atomic():
            slots.take()
            counted.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=long_transaction)
    holder.start()
    assert counted.wait(10)
    waited = []

    def another_refusal(_):
        started = time.monotonic()
        slots.take()
        waited.append(time.monotonic() - started)

    _, errors = run_in_threads(3, another_refusal)
    release.set()
    holder.join()
    assert not errors and max(waited) < 1.0
    assert RefusalTally.objects.filter(reason="test_busy").aggregate(Sum("refusals"))["refusals__sum"] == 4


@pytest.mark.django_db(transaction=True)
def test_the_counts_of_backends_that_have_gone_are_folded_keeping_the_total():
    RefusalTally.objects.create(
        backend_pid=2_000_000_000, reason="test_folded", refusals=5
    )  # no such backend
    RefusalTally.objects.create(backend_pid=0, reason="test_folded", refusals=2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (live,) = cursor.fetchone()
    RefusalTally.objects.create(backend_pid=live, reason="test_folded", refusals=1)
    assert refusal_tally_fold() == 1
    rows = sorted(RefusalTally.objects.filter(reason="test_folded").values_list("backend_pid", "refusals"))
    assert rows == sorted([(0, 7), (live, 1)])
