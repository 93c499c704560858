"""The Content-Security-Policy header. Django 5.2 has none built in, and the policy is one line, so a
small middleware rather than another dependency."""

from __future__ import annotations

import secrets
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    """Every response gets `settings.CONTENT_SECURITY_POLICY`, with `{nonce}` replaced by a fresh value
    per request. Templates put `nonce="{{ request.csp_nonce }}"` on their inline scripts (the name
    django-csp uses, so third-party templates that know it work too); an injected script has no nonce
    and does not run."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(18)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy.replace("{nonce}", nonce)
        return response
