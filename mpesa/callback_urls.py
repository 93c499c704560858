"""The callback URLs we give Safaricom, and the rules its Register URL enforces on them."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.urls import reverse

from mpesa.exceptions import CallbackUrlError

# Refused anywhere in a callback URL, in any case (../shared/daraja.md §3.1).
BANNED_WORDS = ("m-pesa", "mpesa", "safaricom", "exec", "exe", "cmd", "sql", "query")


def callback_url_problems(url: str, *, production: bool) -> list[str]:
    problems = [f"contains the word {word!r}" for word in BANNED_WORDS if word in url.lower()]
    if url != url.strip() or " " in url:
        problems.append("contains whitespace")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        problems.append("is not an http(s) URL")
    elif production:
        if parts.scheme != "https":
            problems.append("is not HTTPS (production requires it)")
        if parts.hostname in {"localhost", "127.0.0.1", "::1"}:
            problems.append("is not publicly reachable")
        if parts.hostname != parts.hostname.lower() or any(c.isupper() for c in (parts.netloc or "")):
            problems.append("has capitals in the host name")
    return problems


def c2b_callback_urls(base_url: str | None = None) -> dict[str, str]:
    """Our validation and confirmation URLs under MPESA_CALLBACK_BASE_URL, checked before use."""
    base = (base_url or settings.MPESA_CALLBACK_BASE_URL).rstrip("/")
    if not base:
        raise CallbackUrlError("MPESA_CALLBACK_BASE_URL is not set.")
    if not settings.MPESA_WEBHOOK_TOKEN:
        raise CallbackUrlError("MPESA_WEBHOOK_TOKEN is not set; the webhooks are switched off without it.")
    token = settings.MPESA_WEBHOOK_TOKEN
    urls = {
        "validation": base + reverse("c2b-validation", args=[token]),
        "confirmation": base + reverse("c2b-confirmation", args=[token]),
    }
    production = settings.MPESA_ENV == "production"
    problems = [
        f"{name} URL {problem}"
        for name, url in urls.items()
        for problem in callback_url_problems(url, production=production)
    ]
    if problems:
        raise CallbackUrlError("Safaricom would refuse these callback URLs: " + "; ".join(problems))
    return urls
