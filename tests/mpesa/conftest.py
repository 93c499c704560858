"""Fixtures shared by the M-Pesa tests."""

import pytest
from django.core.management import call_command

from mpesa.fake_daraja import FakeDaraja


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
