"""Safaricom's C2B callbacks. No session, no CSRF (only here), no DRF parsing: the raw body is logged
first, in its own committed transaction, then judged."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from mpesa.api.security import caller_allowed, caller_ip, logger, webhook_token_matches
from mpesa.callbacks import MalformedCallbackError, c2b_payment_parse
from mpesa.models import WebhookKind, WebhookLog, WebhookStatus
from mpesa.services.c2b import c2b_confirmation_book, c2b_validate, webhook_log_close, webhook_log_record
from mpesa.services.refund import refund_result_process
from mpesa.services.stk import stk_callback_process
from mpesa.services.transaction_status import transaction_status_result_process

# Headers worth keeping beside the body; cookies and authorisation never come from Safaricom.
KEPT_HEADERS = ("CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_USER_AGENT", "HTTP_X_FORWARDED_FOR", "HTTP_HOST")


class JsonWhateverTheCallerAccepts(BaseContentNegotiation):
    """Safaricom's Accept header must never stop a payment being logged: always answer JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


# What Safaricom is answered; ResultCode is "0" or a C2B000xx code for validation, a number otherwise.
_ANSWER = {
    "type": "object",
    "properties": {
        "ResultCode": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "ResultDesc": {"type": "string"},
    },
    "required": ["ResultCode", "ResultDesc"],
}


class WebhookApi(APIView):
    authentication_classes: list[Any] = []
    permission_classes: list[Any] = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonWhateverTheCallerAccepts
    kind = ""

    @extend_schema(
        tags=["webhooks"],
        description="Called by Safaricom, from its addresses, with the secret token in the path.",
        request={"application/json": {"type": "object", "additionalProperties": True}},
        responses={
            200: OpenApiResponse(_ANSWER, description="Taken (or, for validation, the answer)."),
            400: OpenApiResponse(_ANSWER, description="Not a callback of this kind; logged as rejected."),
            403: OpenApiResponse(_ANSWER, description="The caller's address is not allowed; logged."),
            404: OpenApiResponse(description="Wrong token, or webhooks are off (no token set)."),
            411: OpenApiResponse(_ANSWER, description="No Content-Length."),
            413: OpenApiResponse(_ANSWER, description="Body over MPESA_WEBHOOK_MAX_BODY."),
        },
    )
    def post(self, request: Request, token: str) -> Response:
        if not webhook_token_matches(token):
            raise Http404
        length = request.META.get("CONTENT_LENGTH") or ""
        if not length.isdigit():
            # Without a length (a chunked body) the server hands us nothing to log: ask for one.
            return Response({"ResultCode": 1, "ResultDesc": "Content-Length required"}, status=411)
        if int(length) > settings.MPESA_WEBHOOK_MAX_BODY:
            return Response({"ResultCode": 1, "ResultDesc": "Request body too large"}, status=413)
        body = request.body
        if len(body) > settings.MPESA_WEBHOOK_MAX_BODY:  # sent without a length, or lying about it
            return Response({"ResultCode": 1, "ResultDesc": "Request body too large"}, status=413)
        source_ip = caller_ip(request)
        headers = {key: str(request.META[key]) for key in KEPT_HEADERS if key in request.META}
        log = webhook_log_record(kind=self.kind, body=body, headers=headers, source_ip=source_ip)
        if not caller_allowed(source_ip):
            logger.warning("Refused %s callback #%s from %s", self.kind, log.pk, source_ip)
            webhook_log_close(
                log=log, status=WebhookStatus.REFUSED, detail=f"Caller {source_ip} is not allowed."
            )
            return Response({"ResultCode": 1, "ResultDesc": "Forbidden"}, status=403)
        return self.handle(log, body)

    def handle(self, log: WebhookLog, body: bytes) -> Response:
        raise NotImplementedError


class C2BValidationApi(WebhookApi):
    """POST /api/webhooks/c2b/<token>/validation: accept or reject before M-Pesa completes a payment."""

    kind = WebhookKind.C2B_VALIDATION

    def handle(self, log: WebhookLog, body: bytes) -> Response:
        code, description = c2b_validate(log=log)
        return Response({"ResultCode": code, "ResultDesc": description})


class C2BConfirmationApi(WebhookApi):
    """POST /api/webhooks/c2b/<token>/confirmation: the money has moved; book it exactly once."""

    kind = WebhookKind.C2B_CONFIRMATION

    def handle(self, log: WebhookLog, body: bytes) -> Response:
        try:
            payment = c2b_payment_parse(log.body.encode())  # the logged text, as a retry would read it
        except MalformedCallbackError as exc:
            webhook_log_close(log=log, status=WebhookStatus.REJECTED, detail=str(exc))
            return Response({"ResultCode": 1, "ResultDesc": f"Rejected: {exc}"}, status=400)
        # The raw body is committed: even if booking fails now, the retry books it, so Safaricom
        # is told the receipt is ours either way.
        c2b_confirmation_book(log=log, payment=payment)
        return Response({"ResultCode": 0, "ResultDesc": "Success"})


class StkCallbackApi(WebhookApi):
    """POST /api/webhooks/stk/<token>/callback: how an M-Pesa Express prompt ended."""

    kind = WebhookKind.STK_CALLBACK

    def handle(self, log: WebhookLog, body: bytes) -> Response:
        stk_callback_process(log=log)
        log.refresh_from_db(fields=["status", "detail"])
        if log.status == WebhookStatus.REJECTED and log.detail.startswith("Not an STK callback"):
            return Response({"ResultCode": 1, "ResultDesc": f"Rejected: {log.detail}"}, status=400)
        return Response({"ResultCode": 0, "ResultDesc": "Success"})


class InitiatorResultApi(WebhookApi):
    """The result (or queue-timeout) callback of an initiator request; `process` settles it."""

    process: Callable[..., None]

    def handle(self, log: WebhookLog, body: bytes) -> Response:
        type(self).process(log=log)
        log.refresh_from_db(fields=["status", "detail"])
        if log.status == WebhookStatus.REJECTED:
            return Response({"ResultCode": 1, "ResultDesc": f"Rejected: {log.detail}"}, status=400)
        return Response({"ResultCode": 0, "ResultDesc": "Success"})


class TransactionStatusResultApi(InitiatorResultApi):
    """POST /api/webhooks/status/<token>/result: Safaricom's answer to a Transaction Status question."""

    kind = WebhookKind.STATUS_RESULT
    process = staticmethod(transaction_status_result_process)


class TransactionStatusTimeoutApi(TransactionStatusResultApi):
    """POST /api/webhooks/status/<token>/timeout: the question expired in M-Pesa's queue."""

    kind = WebhookKind.STATUS_TIMEOUT


class RefundResultApi(InitiatorResultApi):
    """POST /api/webhooks/refund/<token>/result: how a reversal we asked for ended."""

    kind = WebhookKind.REFUND_RESULT
    process = staticmethod(refund_result_process)


class RefundTimeoutApi(RefundResultApi):
    """POST /api/webhooks/refund/<token>/timeout: the reversal expired in M-Pesa's queue."""

    kind = WebhookKind.REFUND_TIMEOUT
