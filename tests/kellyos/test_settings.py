"""Settings are safe by default: checked in a fresh interpreter, since settings load once per process."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env):
    environment = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    environment.update(env, DJANGO_SETTINGS_MODULE="kellyos.settings.base")
    code = (
        "import django; from django.conf import settings; django.setup();"
        "print(settings.DEBUG, settings.SESSION_COOKIE_SECURE,"
        " settings.SECURE_HSTS_SECONDS, settings.TIME_ZONE)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_production_without_secret_key_refuses_to_start_with_a_clear_message():
    result = load_settings()
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_is_secure_by_default():
    result = load_settings(SECRET_KEY="x" * 50)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "31536000", "Africa/Nairobi"]


def test_debug_allows_a_development_key_and_plain_cookies():
    result = load_settings(DEBUG="true")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "False", "0", "Africa/Nairobi"]


def test_every_setting_read_from_the_environment_is_documented_in_env_example():
    settings_source = (ROOT / "kellyos" / "settings" / "base.py").read_text()
    read = set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', settings_source))
    documented = set(re.findall(r"^(?:# )?([A-Z_]+)=", (ROOT / ".env.example").read_text(), flags=re.M))
    assert read, "no environment variables found in settings"
    assert read - documented == set()
