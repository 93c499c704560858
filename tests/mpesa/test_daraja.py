"""The Daraja client and operator commands against the fake Daraja, over real HTTP, with our app
served by pytest-django's live server so the fake can call it back."""

import threading
import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from invoices.models import InvoiceStatus
from kellyos.models import RefusalTally
from ledger.selectors import ledger_verify
from mpesa.daraja import TOKEN_LEASE_MARGIN, DarajaClient, DarajaError, call_slots
from mpesa.fake_daraja import FakeDaraja
from mpesa.models import DarajaAccessToken, MpesaReceipt
from tests.invoices.factories import InvoiceFactory
from tests.threads import run_in_threads

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fake_daraja(settings):
    fake = FakeDaraja(callback_delay=0.05).start()
    settings.MPESA_API_BASE = fake.url
    settings.MPESA_CONSUMER_KEY = "fake-key"
    settings.MPESA_CONSUMER_SECRET = "fake-secret"
    yield fake
    fake.stop()


def client_for(fake):
    return DarajaClient(api_base=fake.url, consumer_key="fake-key", consumer_secret="fake-secret", timeout=5)


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_the_token_is_shared_through_the_database_and_renewed_when_refused(fake_daraja):
    client = client_for(fake_daraja)
    first = client.access_token()
    assert client_for(fake_daraja).access_token() == first  # another worker reuses it
    assert DarajaAccessToken.objects.get().token == first
    fake_daraja.state.token = "revoked-by-someone-else"
    answer = client.c2b_register_urls(
        shortcode="600000",
        confirmation_url="https://pay.example.co.ke/c",
        validation_url="https://pay.example.co.ke/v",
    )
    assert answer["ResponseCode"] == "0"  # one retry with a fresh token
    assert DarajaAccessToken.objects.get().token not in (first, "revoked-by-someone-else")


def register(client, shortcode):
    return client.c2b_register_urls(
        shortcode=shortcode,
        confirmation_url="https://pay.example.co.ke/c",
        validation_url="https://pay.example.co.ke/v",
    )


def test_a_process_waits_on_safaricom_for_only_so_many_calls_and_refuses_the_rest_at_once(
    fake_daraja, settings
):
    assert call_slots.taken == 0  # none left held by an earlier test
    settings.MPESA_CALLS_PER_PROCESS = 1
    client_for(fake_daraja).access_token()
    fake_daraja.state.answer_delay = 1.0  # Safaricom slows down
    slow_answers = []

    def waiting_call():
        slow_answers.append(register(client_for(fake_daraja), "600000"))
        connection.close()

    waiting = threading.Thread(target=waiting_call)
    waiting.start()
    assert wait_for(lambda: call_slots.taken == 1)
    started = time.monotonic()
    with pytest.raises(DarajaError) as refused:
        register(client_for(fake_daraja), "600111")
    assert refused.value.code == "busy" and "nothing was sent" in refused.value.message
    assert time.monotonic() - started < 0.5  # refused at once, not queued behind the slow call
    assert RefusalTally.objects.get(reason="daraja_call_refused").refusals == 1  # for /metrics
    waiting.join()
    assert slow_answers[0]["ResponseCode"] == "0" and call_slots.taken == 0
    assert set(fake_daraja.state.registered) == {"600000"}
    fake_daraja.state.answer_delay = 0
    assert register(client_for(fake_daraja), "600111")["ResponseCode"] == "0"  # the slot is free again


def test_one_request_fetches_the_token_while_the_others_wait_and_no_transaction_stays_open(fake_daraja):
    fake_daraja.state.answer_delay = 0.6  # Safaricom takes its time over the token
    open_transactions = []

    def fetch(index):
        if index == 2:  # an onlooker, while the others wait on Safaricom
            time.sleep(0.3)
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%%'"
                )
                open_transactions.append(cursor.fetchone()[0])
            return None
        return client_for(fake_daraja).access_token()

    tokens, errors = run_in_threads(3, fetch)
    assert not errors
    fetched = [token for token in tokens if token is not None]
    assert len(fetched) == 2 and fetched[0] == fetched[1] == fake_daraja.state.token  # one fetch, shared
    assert open_transactions == [0]
    assert DarajaAccessToken.objects.get().fetching_until is None


def test_a_fetch_whose_lease_ran_out_leaves_the_row_to_the_worker_that_took_it_over(fake_daraja):
    fake_daraja.state.answer_delay = 0.6
    tokens = {}

    def fetch(worker):
        tokens[worker] = client_for(fake_daraja).access_token()
        connection.close()

    first = threading.Thread(target=fetch, args=("first",))
    first.start()
    assert wait_for(lambda: fake_daraja.state.requests_received["/oauth/v1/generate"] == 1)
    DarajaAccessToken.objects.update(fetching_until=timezone.now() - timedelta(seconds=1))  # ran out
    fake_daraja.state.answer_delay = 1.2
    second = threading.Thread(target=fetch, args=("second",))
    second.start()
    first.join()
    row = DarajaAccessToken.objects.get()
    # The first worker's token served its own call; it neither stored it nor ended the second's lease.
    assert tokens["first"] and row.token == "" and row.fetching_until is not None
    second.join()
    row.refresh_from_db()
    assert row.token == tokens["second"] != tokens["first"]
    assert row.fetching_until is None and row.fetch_lease is None


def test_a_request_waits_for_another_s_token_fetch_no_longer_than_a_call_may_take(fake_daraja):
    DarajaAccessToken.objects.create(
        api_base=fake_daraja.url, consumer_key="fake-key", token="old", expires_at=timezone.now(),
        fetching_until=timezone.now() + timedelta(minutes=1),  # another worker is asking Safaricom
    )  # fmt: skip
    client = DarajaClient(
        api_base=fake_daraja.url, consumer_key="fake-key", consumer_secret="fake-secret", timeout=0.5
    )
    started = time.monotonic()
    with pytest.raises(DarajaError) as gave_up:
        client.access_token()
    assert gave_up.value.code == "busy" and "nothing was sent" in gave_up.value.message
    assert 0.4 < time.monotonic() - started < 3
    assert fake_daraja.state.token == ""  # Safaricom was not asked
    assert RefusalTally.objects.get(reason="daraja_token_wait_refused").refusals == 1
    # A worker that died holding the lease holds it only until it ends.
    DarajaAccessToken.objects.update(fetching_until=timezone.now() - timedelta(seconds=1))
    assert client.access_token() == fake_daraja.state.token != ""
    row = DarajaAccessToken.objects.get()
    assert row.fetching_until is None and row.expires_at > timezone.now() + timedelta(minutes=50)


def test_a_failed_token_fetch_gives_the_lease_back(fake_daraja):
    client = DarajaClient(api_base=fake_daraja.url, consumer_key="fake-key", consumer_secret="wrong")
    with pytest.raises(DarajaError):
        client.access_token()
    assert DarajaAccessToken.objects.get().fetching_until is None
    assert client_for(fake_daraja).access_token()  # the next request is not kept waiting


def test_wrong_credentials_and_banned_words_come_back_as_typed_errors(fake_daraja):
    with pytest.raises(DarajaError) as bad_login:
        DarajaClient(api_base=fake_daraja.url, consumer_key="x", consumer_secret="y").access_token()
    assert bad_login.value.code == "400.008.01"
    with pytest.raises(DarajaError) as banned:
        client_for(fake_daraja).c2b_register_urls(
            shortcode="600000",
            confirmation_url="https://pay.example.co.ke/mpesa/confirm",
            validation_url="https://pay.example.co.ke/v",
        )
    assert banned.value.code == "400.003.02" and "MPESA" in banned.value.message


def test_an_unreachable_daraja_is_a_typed_error_not_a_hang():
    client = DarajaClient(api_base="http://127.0.0.1:9", consumer_key="k", consumer_secret="s", timeout=2)
    with pytest.raises(DarajaError) as error:
        client.access_token()
    assert error.value.code == "network"


def test_register_then_simulate_round_trip_ends_in_a_booked_payment(
    fake_daraja, live_server, settings, capsys
):
    settings.MPESA_CALLBACK_BASE_URL = live_server.url
    invoice = InvoiceFactory(amount=Decimal("1500.00"))

    call_command("mpesa_register_urls")
    assert "Safaricom answered" in capsys.readouterr().out
    assert fake_daraja.state.registered["600000"]["confirmation"].startswith(live_server.url)
    call_command("mpesa_simulate", "--amount", "1500", "--account", invoice.number.lower())

    # The receipt commits a moment before the answer reaches the fake Daraja's record of callbacks.
    assert wait_for(lambda: MpesaReceipt.objects.exists() and len(fake_daraja.callbacks) == 2)
    receipt = MpesaReceipt.objects.get()
    assert receipt.amount == Decimal("1500.00") and receipt.msisdn == "2547 ***** 149"
    invoice.refresh_from_db()
    assert invoice.status == InvoiceStatus.PAID
    kinds = [(c.kind, c.status, c.answer) for c in fake_daraja.callbacks]
    assert kinds == [
        ("validation", 200, {"ResultCode": "0", "ResultDesc": "Accepted"}),
        ("confirmation", 200, {"ResultCode": 0, "ResultDesc": "Success"}),
    ]
    assert ledger_verify()["is_valid"]


def test_a_payment_validation_rejects_is_never_confirmed(fake_daraja, live_server, settings):
    settings.MPESA_CALLBACK_BASE_URL = live_server.url
    call_command("mpesa_register_urls")
    call_command("mpesa_simulate", "--amount", "100", "--account", "NOBODY")
    assert wait_for(lambda: len(fake_daraja.callbacks) == 1)
    time.sleep(0.3)
    assert [(c.kind, c.answer["ResultCode"]) for c in fake_daraja.callbacks] == [("validation", "C2B00012")]
    assert not MpesaReceipt.objects.exists()


def test_simulate_direct_needs_no_safaricom(live_server, settings, capsys):
    settings.MPESA_CALLBACK_BASE_URL = live_server.url
    invoice = InvoiceFactory(amount=Decimal("800.00"))
    call_command("mpesa_simulate", "--amount", "800", "--account", invoice.number, "--direct")
    assert "Answer 200" in capsys.readouterr().out
    assert MpesaReceipt.objects.get().payment.allocations.get().invoice == invoice


@pytest.mark.parametrize(
    ("base_url", "env", "problem"),
    [
        ("https://pay.example.co.ke/mpesa", "sandbox", "contains the word 'mpesa'"),
        ("http://pay.example.co.ke", "production", "is not HTTPS"),
        ("https://localhost:8000", "production", "not publicly reachable"),
        ("https://pay.example.co.ke/sql", "sandbox", "contains the word 'sql'"),
    ],
)
def test_register_urls_refuses_urls_safaricom_would_refuse_before_calling_it(
    base_url, env, problem, settings
):
    settings.MPESA_ENV = env
    with pytest.raises(CommandError, match=problem):
        call_command("mpesa_register_urls", "--base-url", base_url)


def test_simulate_refuses_fractions_and_production(settings):
    with pytest.raises(CommandError, match="whole shillings"):
        call_command("mpesa_simulate", "--amount", "10.50", "--account", "CUST-0001")
    settings.MPESA_ENV = "production"
    with pytest.raises(CommandError, match="No simulated payments in production"):
        call_command("mpesa_simulate", "--amount", "10", "--account", "CUST-0001")


def test_the_token_lease_counts_from_the_fetch_not_from_when_the_callers_transaction_began(
    fake_daraja, monkeypatch
):
    client = client_for(fake_daraja)
    fetch = DarajaClient._fetch_token
    lease_left = []

    def watched_fetch(self):
        lease_left.append(DarajaAccessToken.objects.get().fetching_until - timezone.now())
        return fetch(self)

    monkeypatch.setattr(DarajaClient, "_fetch_token", watched_fetch)
    # Django's Now() is PostgreSQL's statement_timestamp(), not now(), which a transaction fixes.
    with transaction.atomic():
        DarajaAccessToken.objects.create(api_base=client.api_base, consumer_key=client.consumer_key)
        time.sleep(1.5)  # the transaction began well before the token is asked for
        client.access_token()
    [left] = lease_left
    assert left > timedelta(seconds=2 * client.timeout) + TOKEN_LEASE_MARGIN - timedelta(seconds=0.5)
