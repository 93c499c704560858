"""Fixtures shared by the M-Pesa tests."""

import socket
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from mpesa.fake_daraja import FakeDaraja
from mpesa.models import DarajaAccessToken


@pytest.fixture
def initiator_daraja(settings, live_server, tmp_path):
    """The fake Daraja with our C2B URLs registered and the initiator APIs configured against it."""
    fake = FakeDaraja(callback_delay=0.05).start()
    certificate = tmp_path / "fake-daraja.cer"
    certificate.write_bytes(fake.certificate_pem)
    settings.MPESA_API_BASE = fake.url
    settings.MPESA_CONSUMER_KEY, settings.MPESA_CONSUMER_SECRET = "fake-key", "fake-secret"
    settings.MPESA_CALLBACK_BASE_URL = live_server.url
    settings.MPESA_INITIATOR_NAME = fake.state.initiator_name
    settings.MPESA_INITIATOR_PASSWORD = fake.state.initiator_password
    settings.MPESA_CERTIFICATE_PATH = str(certificate)
    call_command("mpesa_register_urls")
    yield fake
    fake.stop()


@pytest.fixture
def safaricom_hanging(settings):
    """Call it to point the Daraja client at an address that takes requests and never answers, with a
    token already shared for it: the request itself goes out and no answer comes. It returns how to
    count the connections made to that address so far."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # connections complete in the backlog; nothing ever reads or answers them

    def connections_made():
        made = 0
        listener.setblocking(False)
        while True:
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                return made
            connection.close()
            made += 1

    def hang():
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        DarajaAccessToken.objects.create(
            api_base=url, consumer_key=settings.MPESA_CONSUMER_KEY, token="shared-token",
            expires_at=timezone.now() + timedelta(hours=1),
        )  # fmt: skip
        settings.MPESA_API_BASE = url
        settings.MPESA_HTTP_TIMEOUT = 0.5
        return connections_made

    yield hang
    listener.close()
