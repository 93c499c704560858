"""The Daraja API client (requests). One OAuth token is shared by every worker through the database,
because each token Safaricom issues invalidates the one before it. Every call has a timeout, an
invalid-token answer is retried once with a fresh token, and Safaricom's error envelope becomes a
DarajaError carrying its code and message."""

from __future__ import annotations

import base64
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone
from urllib3.exceptions import NewConnectionError

from kellyos.slots import ThreadSlots, refusal_count, refusal_reason_declare
from mpesa.callbacks import NAIROBI
from mpesa.exceptions import MpesaError
from mpesa.models import DarajaAccessToken

logger = logging.getLogger(__name__)

# Error codes Safaricom uses for an expired or unknown token (not 401.003.01: that one means the app
# lacks the product, and a new token will not help).
INVALID_TOKEN_CODES = {"404.001.03", "400.003.01"}
PRODUCT_MISSING_CODE = "401.003.01"
TOKEN_MARGIN = timedelta(seconds=60)
# A token fetch's lease lasts twice the call timeout (requests' timeout bounds the connect and each
# read apart) and this much more; a worker that dies fetching holds it no longer.
TOKEN_LEASE_MARGIN = timedelta(seconds=5)
TOKEN_POLL = timedelta(seconds=0.1)  # how often a request waiting for another's token fetch looks
# Calls to Daraja this process is waiting on (kellyos.slots): a cashier's prompt waits on Safaricom
# from a server thread, and a slow Safaricom must not take the threads its own callbacks need.
call_slots = ThreadSlots("MPESA_CALLS_PER_PROCESS", reason="daraja_call_refused")
# Counted when a request gives up waiting for another's token fetch (kellyos.slots).
TOKEN_WAIT_REFUSED = refusal_reason_declare("daraja_token_wait_refused")
# Our own code for a call refused before anything was sent: this process already waits on
# Safaricom for as many calls as it may, or on another request's token fetch for too long.
BUSY = "busy"
# Our own code for a request that got no answer (or never connected: see request_sent).
NETWORK = "network"


class DarajaError(MpesaError):
    def __init__(
        self, code: str, message: str, *, http_status: int | None = None, request_sent: bool = True
    ) -> None:
        super().__init__(f"Daraja {code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.request_sent = request_sent

    @property
    def may_have_arrived(self) -> bool:
        """Whether the request may still have reached Safaricom: anything but a failure before it was
        sent or a clear refusal (a 4xx error, an error code in the answer, our own configuration)."""
        if not self.request_sent:
            return False
        if self.code == NETWORK:
            return True
        status = self.http_status or 0
        # A server error, or a success status with a body we could not read.
        return status >= 500 or (self.code.startswith("HTTP") and 200 <= status < 400)

    @property
    def what_safaricom_did(self) -> str:
        """For a request that may have arrived: what the person who sent it is told happened."""
        if self.code == NETWORK:
            return "Safaricom did not answer in time"
        return f"Safaricom answered with an error ({self.message})"


@dataclass
class DarajaClient:
    api_base: str
    consumer_key: str
    consumer_secret: str
    timeout: float = 10.0
    session: requests.Session | None = None

    @classmethod
    def from_settings(cls) -> DarajaClient:
        return cls(
            api_base=settings.MPESA_API_BASE.rstrip("/"),
            consumer_key=settings.MPESA_CONSUMER_KEY,
            consumer_secret=settings.MPESA_CONSUMER_SECRET,
            timeout=settings.MPESA_HTTP_TIMEOUT,
        )

    # --- C2B -----------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self.session = self.session or requests.Session()  # keep-alive across calls

    def c2b_register_urls(
        self,
        *,
        shortcode: str,
        confirmation_url: str,
        validation_url: str,
        response_type: str = "Completed",
        version: str = "v2",
    ) -> dict[str, Any]:
        return self._accepted(
            self._call(
                f"/mpesa/c2b/{_version(version)}/registerurl",
                {
                    "ShortCode": shortcode,
                    "ResponseType": response_type,
                    "ConfirmationURL": confirmation_url,
                    "ValidationURL": validation_url,
                },
            )
        )

    def c2b_simulate(
        self,
        *,
        shortcode: str,
        amount: Decimal,
        msisdn: str,
        bill_ref_number: str,
        version: str = "v2",
        command_id: str = "CustomerPayBillOnline",
    ) -> dict[str, Any]:
        if amount != amount.to_integral_value():
            raise DarajaError("amount", "M-Pesa takes whole shillings only.")
        return self._accepted(
            self._call(
                f"/mpesa/c2b/{_version(version)}/simulate",
                {
                    "ShortCode": int(shortcode),
                    "CommandID": command_id,
                    "Amount": int(amount),
                    "Msisdn": int(msisdn),
                    "BillRefNumber": bill_ref_number,
                },
            )
        )

    # --- M-Pesa Express (STK Push) ----------------------------------------------------------------
    def stk_push(
        self,
        *,
        shortcode: str,
        passkey: str,
        phone: str,
        amount: Decimal,
        account_reference: str,
        description: str,
        callback_url: str,
    ) -> dict[str, Any]:
        """Send the PIN prompt. ResponseCode "0" means only that Safaricom accepted the request."""
        if amount != amount.to_integral_value() or amount < 1:
            raise DarajaError("amount", "M-Pesa Express takes whole shillings of at least 1.")
        if len(account_reference) > 12:
            raise DarajaError("reference", "AccountReference takes at most 12 characters.")
        timestamp = stk_timestamp()
        return self._accepted(
            self._call(
                "/mpesa/stkpush/v1/processrequest",
                {
                    "BusinessShortCode": shortcode,
                    "Password": stk_password(shortcode, passkey, timestamp),
                    "Timestamp": timestamp,
                    "TransactionType": "CustomerPayBillOnline",
                    "Amount": int(amount),
                    "PartyA": phone,
                    "PartyB": shortcode,
                    "PhoneNumber": phone,
                    "CallBackURL": callback_url,
                    "AccountReference": account_reference,
                    "TransactionDesc": description[:13],
                },
            )
        )

    def stk_query(self, *, shortcode: str, passkey: str, checkout_request_id: str) -> dict[str, Any]:
        """Where a prompt stands. While it is still open Safaricom answers 500.001.1001 (a DarajaError)."""
        timestamp = stk_timestamp()
        return self._call(
            "/mpesa/stkpushquery/v1/query",
            {
                "BusinessShortCode": shortcode,
                "Password": stk_password(shortcode, passkey, timestamp),
                "Timestamp": timestamp,
                "CheckoutRequestID": checkout_request_id,
            },
        )

    # --- Pull Transactions (reconciliation) ---------------------------------------------------------
    def pull_transactions(self, *, shortcode: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every C2B payment on the shortcode between two moments (Safaricom keeps 48 hours), page by
        page (OffSetValue is a row offset)."""
        items: list[dict[str, Any]] = []
        while True:
            body = self._call(
                "/pulltransactions/v1/query",
                {
                    "ShortCode": shortcode,
                    "StartDate": start.astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S"),
                    "EndDate": end.astimezone(NAIROBI).strftime("%Y-%m-%d %H:%M:%S"),
                    "OffSetValue": str(len(items)),
                },
            )
            if str(body.get("ResponseCode")) == "1001":
                return items  # no (more) transactions
            if str(body.get("ResponseCode")) != "1000":
                raise DarajaError(str(body.get("ResponseCode")), str(body.get("ResponseMessage", "")))
            page = [
                item
                for group in body.get("Response") or []
                for item in (group or [])
                if isinstance(item, dict)
            ]
            if not page:
                return items
            items += page

    # --- Transaction Status (asynchronous: the answer comes to result_url) -----------------------
    def transaction_status(
        self,
        *,
        initiator: str,
        security_credential: str,
        receipt_number: str,
        shortcode: str,
        result_url: str,
        timeout_url: str,
        remarks: str,
    ) -> dict[str, Any]:
        """Ask what became of one M-Pesa receipt; returns the acknowledgement with ConversationID and
        OriginatorConversationID, which the result callback quotes."""
        return self._accepted(
            self._call(
                "/mpesa/transactionstatus/v1/query",
                {
                    # The docs' sample spells these "Command ID" and "Transaction ID"; the parameter
                    # table (and Safaricom) want them without spaces.
                    "Initiator": initiator,
                    "SecurityCredential": security_credential,
                    "CommandID": "TransactionStatusQuery",
                    "TransactionID": receipt_number,
                    "PartyA": shortcode,
                    "IdentifierType": "4",
                    "ResultURL": result_url,
                    "QueueTimeOutURL": timeout_url,
                    "Remarks": remarks[:100],
                    "Occasion": "",
                },
            )
        )

    # --- Reversal (asynchronous: the outcome comes to result_url) --------------------------------
    def reversal(
        self,
        *,
        initiator: str,
        security_credential: str,
        receipt_number: str,
        amount: Decimal,
        shortcode: str,
        result_url: str,
        timeout_url: str,
        remarks: str,
    ) -> dict[str, Any]:
        """Ask Safaricom to give a C2B payment back to its payer; returns the acknowledgement."""
        return self._accepted(
            self._call(
                "/mpesa/reversal/v1/request",
                {
                    "Initiator": initiator,
                    "SecurityCredential": security_credential,
                    "CommandID": "TransactionReversal",
                    "TransactionID": receipt_number,
                    "Amount": str(int(amount)),  # M-Pesa moves whole shillings
                    "ReceiverParty": shortcode,
                    "RecieverIdentifierType": "11",  # sic: Safaricom's spelling (daraja.md §3.5)
                    "ResultURL": result_url,
                    "QueueTimeOutURL": timeout_url,
                    "Remarks": (remarks or "Refund")[:100].ljust(2, "."),
                    "Occasion": "",
                },
            )
        )

    # --- plumbing ------------------------------------------------------------------------------
    def access_token(self, *, stale: str | None = None) -> str:
        """The shared token; a new one only when it is (nearly) expired or `stale` was refused.

        One worker asks Safaricom at a time (each new token kills the last), under a lease on the
        row taken and given back in statements of their own: no transaction stays open while
        Safaricom answers (behind PgBouncer it would hold a server connection, and a hanging
        Safaricom would hold them all). The others look again every TOKEN_POLL until the token
        comes, for no longer than a call may take."""
        gives_up_at = time.monotonic() + self.timeout
        while True:
            row, _ = DarajaAccessToken.objects.get_or_create(
                api_base=self.api_base, consumer_key=self.consumer_key
            )
            if self._usable(row, stale):
                return row.token
            if time.monotonic() >= gives_up_at:
                refusal_count(reason=TOKEN_WAIT_REFUSED)
                raise DarajaError(
                    BUSY,
                    f"Safaricom has not given a token to another request for {self.timeout:g} s; "
                    "nothing was sent. Try again in a moment.",
                    request_sent=False,
                )
            lease = uuid.uuid4()
            # The database's clock, one for every host.
            leased = (
                DarajaAccessToken.objects.filter(pk=row.pk, token=row.token)
                .filter(Q(fetching_until__isnull=True) | Q(fetching_until__lte=Now()))
                .update(
                    fetching_until=Now() + timedelta(seconds=2 * self.timeout) + TOKEN_LEASE_MARGIN,
                    fetch_lease=lease,
                )
            )
            if leased:
                return self._token_fetch_and_store(row, lease)
            time.sleep(TOKEN_POLL.total_seconds())

    def _token_fetch_and_store(self, row: DarajaAccessToken, lease: uuid.UUID) -> str:
        """Fetch a token under `lease` and store it, unless the lease ran out meanwhile and another
        worker took it: then its fetch decides the row, and this token serves this call only (if it
        has been killed by the other, the call's invalid-token retry reads the row again)."""
        ours = DarajaAccessToken.objects.filter(pk=row.pk, fetch_lease=lease)
        try:
            token, lifetime = self._fetch_token()
            ours.update(
                token=token,
                expires_at=timezone.now() + timedelta(seconds=lifetime),
                fetching_until=None,
                fetch_lease=None,
            )
        except BaseException:
            ours.update(fetching_until=None, fetch_lease=None)
            raise
        return token

    def _usable(self, row: DarajaAccessToken, stale: str | None) -> bool:
        fresh = (
            bool(row.token) and row.expires_at is not None and row.expires_at > timezone.now() + TOKEN_MARGIN
        )
        return fresh and row.token != stale

    def _fetch_token(self) -> tuple[str, int]:
        if not (self.consumer_key and self.consumer_secret):
            raise DarajaError("config", "MPESA_CONSUMER_KEY and MPESA_CONSUMER_SECRET are not set.")
        credentials = base64.b64encode(f"{self.consumer_key}:{self.consumer_secret}".encode()).decode()
        response = self._http(
            "GET",
            "/oauth/v1/generate",
            params={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {credentials}"},
        )
        body = self._result(response)
        try:
            return str(body["access_token"]), int(Decimal(str(body.get("expires_in", "3599"))))
        except (KeyError, ArithmeticError) as exc:
            raise DarajaError("oauth", f"Unexpected token answer: {body}") from exc

    def _call(self, path: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not call_slots.take():
            logger.warning("Daraja call to %s refused: this process already waits on all it may", path)
            raise DarajaError(
                BUSY,
                "Safaricom is slow to answer and this server is already waiting on it for as many "
                "requests as it allows; nothing was sent. Try again in a moment.",
                request_sent=False,
            )
        try:
            token = self._call_token()
            headers = {"Authorization": f"Bearer {token}"}
            response = self._http("POST", path, json=payload, headers=headers)
            if _is_invalid_token(response):
                token = self._call_token(stale=token)
                headers = {"Authorization": f"Bearer {token}"}
                response = self._http("POST", path, json=payload, headers=headers)
            return self._result(response)
        finally:
            call_slots.give_back()

    def _call_token(self, *, stale: str | None = None) -> str:
        """The token for a call: without one, the call itself was never sent."""
        try:
            return self.access_token(stale=stale)
        except DarajaError as exc:
            exc.request_sent = False
            raise

    @staticmethod
    def _accepted(body: dict[str, Any]) -> dict[str, Any]:
        """Daraja's synchronous answers say ResponseCode "0" when the request was accepted."""
        if str(body.get("ResponseCode", "0")) != "0":
            raise DarajaError(str(body["ResponseCode"]), str(body.get("ResponseDescription", "")))
        return body

    def _http(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        assert self.session is not None
        try:
            return self.session.request(method, f"{self.api_base}{path}", timeout=self.timeout, **kwargs)
        except requests.ConnectTimeout as exc:  # a Timeout too, but nothing was sent
            unreachable = f"Could not reach Safaricom within {self.timeout:g} s ({path})."
            raise DarajaError(NETWORK, unreachable, request_sent=False) from exc
        except requests.Timeout as exc:
            late = f"Safaricom did not answer within {self.timeout:g} s ({path})."
            raise DarajaError(NETWORK, late) from exc
        except requests.RequestException as exc:
            refused = isinstance(
                getattr(exc.args[0] if exc.args else None, "reason", None), NewConnectionError
            )
            raise DarajaError(NETWORK, f"{method} {path} failed: {exc}", request_sent=not refused) from exc

    @staticmethod
    def _result(response: requests.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and "errorCode" in body:
            raise DarajaError(
                str(body["errorCode"]), str(body.get("errorMessage", "")), http_status=response.status_code
            )
        if response.status_code >= 400 or not isinstance(body, dict):
            raise DarajaError(
                f"HTTP {response.status_code}", response.text[:300], http_status=response.status_code
            )
        return body


def _is_invalid_token(response: requests.Response) -> bool:
    try:
        body = response.json()
    except ValueError:
        body = None
    code = str(body.get("errorCode", "")) if isinstance(body, dict) else ""
    return code in INVALID_TOKEN_CODES or (response.status_code == 401 and code != PRODUCT_MISSING_CODE)


def _version(version: str) -> str:
    if version not in {"v1", "v2"}:
        raise DarajaError("config", f"MPESA_C2B_VERSION must be v1 or v2, not {version!r}.")
    return version


def stk_timestamp() -> str:
    return timezone.now().astimezone(NAIROBI).strftime("%Y%m%d%H%M%S")


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """base64(shortcode + passkey + timestamp), the three as plain strings (daraja.md §4.1)."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()
