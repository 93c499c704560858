"""Test settings: the base settings with a throwaway secret and fast password hashing."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production")

from kellyos.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False

# The test client and the fake Daraja call from this machine.
MPESA_WEBHOOK_TOKEN = "test-webhook-token"  # noqa: S105
MPESA_ALLOWED_IPS = [*MPESA_ALLOWED_IPS, "127.0.0.1"]  # noqa: F405
MPESA_SHORTCODE = "600000"

# The test client leaves the streams a test does not read open, holding their slots for the session;
# no gunicorn thread is at stake here. The slot tests set their own limit.
EVENTS_STREAMS_PER_PROCESS = 10_000
# Tests call the fake Daraja from many threads at once; the limit's own tests set theirs.
MPESA_CALLS_PER_PROCESS = 10_000
