"""The threads' budget: what may hold a server thread for seconds leaves a quarter for callbacks."""

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from kellyos.slots import thread_budget_check


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
