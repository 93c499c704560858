"""What the initiator APIs (Transaction Status, Reversal) share: the initiator and its security
credential from settings, our result and timeout URLs, and the Result envelope Safaricom calls back
with (../shared/daraja.md §5.1)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.urls import reverse

from mpesa.exceptions import MpesaError
from mpesa.security_credential import security_credential_from_file


def initiator_credentials(error: type[MpesaError]) -> tuple[str, str]:
    """(initiator name, security credential), or `error` saying which setting is missing."""
    if not settings.MPESA_CALLBACK_BASE_URL or not settings.MPESA_WEBHOOK_TOKEN:
        raise error("MPESA_CALLBACK_BASE_URL and MPESA_WEBHOOK_TOKEN must be set.")
    if not settings.MPESA_INITIATOR_NAME:
        raise error("MPESA_INITIATOR_NAME is not set.")
    credential = security_credential_from_file(
        password=settings.MPESA_INITIATOR_PASSWORD, certificate_path=settings.MPESA_CERTIFICATE_PATH
    )
    return settings.MPESA_INITIATOR_NAME, credential


def result_urls(prefix: str) -> tuple[str, str]:
    """Our result and queue-timeout URLs (named `<prefix>-result` and `<prefix>-timeout`)."""
    base, token = settings.MPESA_CALLBACK_BASE_URL.rstrip("/"), settings.MPESA_WEBHOOK_TOKEN
    return base + reverse(f"{prefix}-result", args=[token]), base + reverse(f"{prefix}-timeout", args=[token])


def result_parse(body: str) -> dict[str, Any]:
    """The `Result` object of a result or timeout callback; ValueError when there is none."""
    try:
        # Amounts arrive as JSON numbers: keep their exact text rather than a float.
        data = json.loads(body, parse_float=str)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested deeper than json reads
        raise ValueError("the body is not JSON") from exc
    # JSON can write NUL only as this escape; PostgreSQL text cannot hold it, and M-Pesa never sends it.
    if "\\u0000" in body:
        raise ValueError("the body contains a NUL character")
    result = data.get("Result") if isinstance(data, dict) else None
    if not isinstance(result, dict) or not (
        result.get("OriginatorConversationID") or result.get("ConversationID")
    ):
        raise ValueError("no Result with a conversation ID")
    return result


def result_parameters(result: dict[str, Any]) -> dict[str, Any]:
    parameters = result.get("ResultParameters")
    items = parameters.get("ResultParameter") if isinstance(parameters, dict) else None
    # A single parameter arrives as an object rather than a list of one; anything else is no parameters.
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        return {}
    return {str(item["Key"]): item.get("Value") for item in items if isinstance(item, dict) and "Key" in item}
