import json
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from django.http import HttpRequest, HttpResponse

# What the current request or job is about, carried onto every log line it writes.
request_id: ContextVar[str] = ContextVar("request_id", default="")
receipt_number: ContextVar[str] = ContextVar("receipt_number", default="")


class RedactWebhookToken(logging.Filter):
    """Replaces the webhook secret (it travels in the callback path) with *** in every log line."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django.conf import settings

        token = getattr(settings, "MPESA_WEBHOOK_TOKEN", "")
        if token:
            message = record.getMessage()
            if token in message:
                record.msg, record.args = message.replace(token, "***"), None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id and the M-Pesa receipt number when known."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id.get() or None,
            "receipt": receipt_number.get() or None,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


@contextmanager
def about_receipt(number: str) -> Iterator[None]:
    """Log lines written inside this block name the M-Pesa receipt."""
    token = receipt_number.set(number)
    try:
        yield
    finally:
        receipt_number.reset(token)


class RequestIdMiddleware:
    """Gives each request an id (the proxy's X-Request-ID when it sends a sane one), logs carry it and
    the response returns it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        ident = (
            given
            if 0 < len(given) <= 64 and given.isascii() and given.replace("-", "").isalnum()
            else uuid.uuid4().hex
        )
        token = request_id.set(ident)
        try:
            response = self.get_response(request)
        finally:
            request_id.reset(token)
        response["X-Request-ID"] = ident
        return response
