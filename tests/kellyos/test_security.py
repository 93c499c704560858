"""Who may reach what, and what every response tells the browser: authentication on every URL but the
few meant to be public, permission refusals on every API endpoint, CSRF on forms, login throttling,
security headers, and no secret in the code."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.admindocs.views import simplify_regex
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]

# Public on purpose: Safaricom's callbacks (secret token and address checks instead), the health
# check, the metrics (bearer token) and the login pages. A new URL must be refused to strangers or
# be added here knowingly.
PUBLIC = {
    "/health",
    "/healthz",
    "/metrics",
    "/accounts/login/",
    "/accounts/logout/",  # signing out needs nobody signed in
    "/accounts/password_reset/",
    "/accounts/password_reset/done/",
    "/accounts/reset/<uidb64>/<token>/",
    "/accounts/reset/done/",
    "/admin/login/",
    "/admin/logout/",
}


def _routes(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield simplify_regex(prefix + str(pattern.pattern))


ROUTES = sorted(set(_routes(get_resolver().url_patterns)))


def _concrete(route: str) -> str:
    return re.sub(r"<(\w+:)?(\w+)>", lambda m: "1" if m.group(2).endswith("id") else "x", route)


def _refused(response) -> bool:
    if response.status_code in (401, 403):
        return True
    return response.status_code == 302 and "login" in response["Location"]


@pytest.mark.parametrize("route", [r for r in ROUTES if r not in PUBLIC and "/webhooks/" not in r])
def test_strangers_are_refused_everywhere_but_the_public_urls(route):
    client = Client()
    for method in (client.get, client.post):
        response = method(_concrete(route))
        assert _refused(response), (route, response.status_code)


def test_the_public_list_names_only_urls_that_exist():
    assert set(ROUTES) >= PUBLIC
    assert sum("/webhooks/" in r for r in ROUTES) == 7


@pytest.mark.parametrize("route", [r for r in ROUTES if r.startswith("/api/") and "/webhooks/" not in r])
@pytest.mark.parametrize("method", ["get", "post", "head", "options"])
def test_a_user_without_permissions_is_refused_by_every_api_endpoint(route, method):
    client = Client()
    client.force_login(UserFactory())
    response = getattr(client, method)(_concrete(route))
    assert response.status_code == 403, (route, method, response.status_code)


@pytest.mark.parametrize("route", ["/pos/", "/pos/sales/new", "/events", "/pos/sales/x/prompt"])
def test_a_user_without_permissions_is_refused_the_till(route):
    client = Client()
    client.force_login(UserFactory())
    assert client.get(route).status_code == 403


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/", "/pos/sales/new"])
def test_a_form_posted_without_its_csrf_token_is_refused(path):
    client = Client(enforce_csrf_checks=True)
    if path.startswith("/pos/"):
        client.force_login(UserFactory(is_superuser=True))
    assert client.post(path, {"username": "a", "password": "b"}).status_code == 403


def test_the_login_forms_carry_a_csrf_token():
    for path in ("/accounts/login/", "/admin/login/"):
        assert b"csrfmiddlewaretoken" in Client().get(path).content


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_repeated_failed_logins_lock_the_name_out_of_both_login_pages(path, settings):
    user = UserFactory(is_staff=True)
    client = Client()
    statuses = [
        client.post(path, {"username": user.username, "password": "wrong"}).status_code
        for _ in range(settings.AXES_FAILURE_LIMIT)
    ]
    assert statuses == [200] * (settings.AXES_FAILURE_LIMIT - 1) + [429]  # the last failure locks
    locked = client.post(path, {"username": user.username, "password": "correct-horse-battery"})
    assert locked.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_good_login_still_works_below_the_limit():
    user = UserFactory()
    client = Client()
    client.post("/accounts/login/", {"username": user.username, "password": "wrong"})
    response = client.post(
        "/accounts/login/", {"username": user.username, "password": "correct-horse-battery"}
    )
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(user.pk)


def test_every_page_carries_the_security_headers():
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    for path in ("/accounts/login/", "/admin/", "/pos/", "/api/customers", "/health"):
        response = client.get(path)
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
        assert response["Cross-Origin-Opener-Policy"] == "same-origin"
        policy = response["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
        assert re.search(r"script-src 'self' 'nonce-[\w-]+';", policy)


def test_inline_scripts_carry_the_requests_nonce():
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get("/dashboard/")
    nonce = re.search(r"'nonce-([\w-]+)'", response["Content-Security-Policy"]).group(1)
    scripts = re.findall(rb"<script([^>]*)>", response.content)
    inline = [attrs for attrs in scripts if b"src=" not in attrs]
    assert inline and all(f'nonce="{nonce}"'.encode() in attrs for attrs in inline)
    assert b" onclick=" not in response.content


def test_no_template_uses_inline_event_handlers_or_unnonced_scripts():
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        assert not re.search(r"\son\w+=", text), template
        for attrs in re.findall(r"<script([^>]*)>", text):
            assert "src=" in attrs or "csp_nonce" in attrs, template


def test_production_settings_hold_no_secret_of_their_own():
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SECRET_KEY", "MPESA_", "METRICS_", "DEBUG"))
    }
    secret_key = "from-the-environment-" + "x" * 40
    environment.update(SECRET_KEY=secret_key, DJANGO_SETTINGS_MODULE="kellyos.settings.base")
    code = (
        "import django; from django.conf import settings as s; django.setup();"
        "print(repr([s.SECRET_KEY, s.MPESA_WEBHOOK_TOKEN, s.METRICS_TOKEN, s.MPESA_CONSUMER_SECRET,"
        " s.MPESA_PASSKEY, s.MPESA_INITIATOR_PASSWORD, s.DEBUG]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    secret, *others, debug = eval(result.stdout)  # noqa: S307 - our own repr
    assert secret == secret_key
    assert others == ["", "", "", "", ""] and debug is False
