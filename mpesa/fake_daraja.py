"""A small stand-in for Safaricom's Daraja sandbox, for development and tests (`manage.py fake_daraja`).

It speaks the same HTTP as the real one for what Kelly OS uses: OAuth (each new token invalidates the
last), C2B Register URL (remembers the URLs, refuses banned words like the real one) and C2B simulate,
which then POSTs a realistic validation (when a validation URL is registered) and confirmation to
the registered URLs, as the sandbox does. Everything it called back is kept in `callbacks`.

For the initiator APIs it holds its own RSA key and certificate (`certificate_pem`): a
SecurityCredential is decrypted with it and compared with the initiator's password, as Safaricom does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from mpesa.callback_urls import BANNED_WORDS

NAIROBI = ZoneInfo("Africa/Nairobi")
RECEIPT_ALPHABET = string.ascii_uppercase + string.digits
# Public sandbox passkey for shortcode 174379 (daraja.md §4.2).
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
REVERSAL_FIELDS = ("Initiator", "SecurityCredential", "TransactionID", "Amount", "ReceiverParty", "ResultURL",
                   "QueueTimeOutURL", "Remarks")  # fmt: skip
STATUS_QUERY_FIELDS = (
    "Initiator",
    "SecurityCredential",
    "TransactionID",
    "PartyA",
    "ResultURL",
    "QueueTimeOutURL",
)
# How a prompt ends, by the last digit of the phone: 0-4 paid; otherwise the STK ResultCode, and 9
# sends no callback at all (a query then finds the timeout).
STK_OUTCOMES = {
    "5": ("1032", "Request cancelled by user"),
    "6": ("1037", "No response from user."),
    "7": ("2001", "The initiator information is invalid."),
    "8": ("1", "The balance is insufficient."),
    "9": ("1037", "DS timeout user cannot be reached"),
}


@dataclass
class Callback:
    kind: str
    url: str
    payload: dict[str, Any]
    status: int | None = None
    answer: Any = None


@dataclass
class FakeDarajaState:
    consumer_key: str
    consumer_secret: str
    callback_delay: float = 0.2
    # Seconds every API answer takes: a Safaricom that has slowed down or hangs.
    answer_delay: float = 0.0
    requests_received: Counter[str] = field(default_factory=Counter)  # by path, answered or not
    token: str = ""
    passkey: str = SANDBOX_PASSKEY
    # After a paid prompt, also send the C2B confirmation of the same receipt (as a PayBill with
    # URLs registered does), before or after the STK callback.
    c2b_after_stk: bool = True
    c2b_first: bool = False
    registered: dict[str, dict[str, str]] = field(default_factory=dict)  # shortcode -> URLs
    pushes: dict[str, dict[str, Any]] = field(default_factory=dict)  # CheckoutRequestID -> push
    # Every C2B payment, as Pull Transactions lists them; with drop_callbacks the simulated payment
    # is made but no callback is sent (the outage Pull exists for).
    transactions: list[dict[str, Any]] = field(default_factory=list)
    drop_callbacks: bool = False
    # The sandbox's test initiator (daraja.md §5.1); answer initiator questions at the queue timeout
    # URL instead of the result URL when status_times_out is set.
    initiator_name: str = "testapi"
    initiator_password: str = "Safaricom999!*!"  # noqa: S105 - the public sandbox test password
    status_times_out: bool = False
    reversal_times_out: bool = False
    reversed: set[str] = field(default_factory=set)  # receipts given back to their payers
    callbacks: list[Callback] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def payment(self, receipt: str) -> dict[str, Any] | None:
        """The C2B payment with this receipt number; call with the lock held."""
        return next((t for t in self.transactions if t["transactionId"] == receipt), None)


class FakeDaraja:
    """Start with `start()` (background thread) or `serve_forever()`; `url` is its API base."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        consumer_key: str = "fake-key",
        consumer_secret: str = "fake-secret",  # noqa: S107 - a fake server's own credential
        callback_delay: float = 0.2,
    ) -> None:
        self.state = FakeDarajaState(consumer_key, consumer_secret, callback_delay)
        self.private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate_pem = _self_signed_certificate(self.private_key)
        handler = type("Handler", (_Handler,), {"state": self.state, "private_key": self.private_key})
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> FakeDaraja:
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def callbacks(self) -> list[Callback]:
        with self.state.lock:
            return list(self.state.callbacks)


class _Handler(BaseHTTPRequestHandler):
    state: FakeDarajaState
    private_key: rsa.RSAPrivateKey

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet in tests; the management command prints what matters

    def do_GET(self) -> None:
        self._arrived()
        time.sleep(self.state.answer_delay)
        parts = urlsplit(self.path)
        if parts.path != "/oauth/v1/generate":
            return self._error(404, "404.003.01", "Resource not found")
        if parse_qs(parts.query).get("grant_type") != ["client_credentials"]:
            return self._error(400, "400.008.02", "Invalid grant type passed")
        expected = base64.b64encode(
            f"{self.state.consumer_key}:{self.state.consumer_secret}".encode()
        ).decode()
        if self.headers.get("Authorization") != f"Basic {expected}":
            return self._error(400, "400.008.01", "Invalid Authentication passed")
        with self.state.lock:
            self.state.token = secrets.token_urlsafe(21)[:28]  # the previous token dies here
            token = self.state.token
        self._answer(200, {"access_token": token, "expires_in": "3599"})

    def do_POST(self) -> None:
        self._arrived()
        time.sleep(self.state.answer_delay)
        if self.headers.get("Authorization") != f"Bearer {self.state.token}" or not self.state.token:
            return self._error(401, "404.001.03", "Invalid Access Token")
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self._error(400, "400.002.05", "Invalid Request Payload")
        path = urlsplit(self.path).path
        if path == "/pulltransactions/v1/query":
            return self._pull(body)
        if path == "/mpesa/stkpush/v1/processrequest":
            return self._stk_push(body)
        if path == "/mpesa/stkpushquery/v1/query":
            return self._stk_query(body)
        if path == "/mpesa/transactionstatus/v1/query":
            return self._transaction_status(body)
        if path == "/mpesa/reversal/v1/request":
            return self._reversal(body)
        for version in ("v1", "v2"):
            if path == f"/mpesa/c2b/{version}/registerurl":
                return self._register(body)
            if path == f"/mpesa/c2b/{version}/simulate":
                return self._simulate(body, version)
        return self._error(404, "404.003.01", "Resource not found")

    def _arrived(self) -> None:
        with self.state.lock:
            self.state.requests_received[urlsplit(self.path).path] += 1

    def _register(self, body: dict[str, Any]) -> None:
        if body.get("ResponseType") not in {"Completed", "Cancelled"}:
            return self._error(400, "400.002.05", "Invalid ResponseType")
        for name in ("ValidationURL", "ConfirmationURL"):
            url = str(body.get(name, ""))
            for word in BANNED_WORDS:
                if word in url.lower():
                    return self._error(
                        400, "400.003.02", f"Bad Request - Invalid {name} - URL has the word {word.upper()}"
                    )
            if not url.startswith(("http://", "https://")) or " " in url:
                return self._error(400, "400.003.02", f"Bad Request - Invalid {name}")
        with self.state.lock:
            self.state.registered[str(body.get("ShortCode"))] = {
                "validation": str(body["ValidationURL"]),
                "confirmation": str(body["ConfirmationURL"]),
                "response_type": str(body["ResponseType"]),
            }
        self._answer(
            200,
            {
                "OriginatorCoversationID": str(uuid.uuid4()),
                "ResponseCode": "0",
                "ResponseDescription": "Success",
            },
        )

    def _simulate(self, body: dict[str, Any], version: str) -> None:
        shortcode = str(body.get("ShortCode", ""))
        amount = body.get("Amount")
        if not isinstance(amount, int) or amount < 1:
            return self._error(400, "400.002.02", "Bad Request - Invalid Amount")
        with self.state.lock:
            urls = self.state.registered.get(shortcode)
        if urls is None:
            return self._error(400, "400.002.02", f"Bad Request - No URLs registered for {shortcode}")
        payload = c2b_payment_payload(
            shortcode=shortcode,
            amount=amount,
            account=str(body.get("BillRefNumber") or ""),
            msisdn=str(body.get("Msisdn", "254708374149")),
            version=version,
            buy_goods=body.get("CommandID") == "CustomerBuyGoodsOnline",
        )
        _remember(self.state, payload)
        if not self.state.drop_callbacks:
            threading.Thread(target=_call_back, args=(self.state, urls, payload), daemon=True).start()
        self._answer(
            200,
            {
                "OriginatorCoversationID": str(uuid.uuid4()),
                "ResponseCode": "0",
                "ResponseDescription": "Accept the service request successfully.",
            },
        )

    def _pull(self, body: dict[str, Any]) -> None:
        offset = int(str(body.get("OffSetValue") or "0"))
        with self.state.lock:
            page = self.state.transactions[offset : offset + 2]  # small pages, to exercise the paging
        if not page:
            return self._answer(200, {"ResponseRefID": str(uuid.uuid4()), "ResponseCode": "1001",
                                      "ResponseMessage": "No transactions", "Response": [[]]})  # fmt: skip
        self._answer(200, {"ResponseRefID": str(uuid.uuid4()), "ResponseCode": "1000",
                           "ResponseMessage": "Success", "Response": [page]})  # fmt: skip

    def _stk_push(self, body: dict[str, Any]) -> None:
        shortcode, timestamp = str(body.get("BusinessShortCode", "")), str(body.get("Timestamp", ""))
        expected = base64.b64encode(f"{shortcode}{self.state.passkey}{timestamp}".encode()).decode()
        if body.get("Password") != expected:
            return self._error(500, "500.001.1001", "Wrong credentials")
        amount, phone = body.get("Amount"), str(body.get("PhoneNumber", ""))
        if not isinstance(amount, int) or amount < 1:
            return self._error(400, "400.002.02", "Bad Request - Invalid Amount")
        if len(str(body.get("AccountReference", ""))) > 12 or not str(body.get("CallBackURL", "")).startswith(
            "http"
        ):
            return self._error(400, "400.002.02", "Bad Request - Invalid AccountReference or CallBackURL")
        checkout_id = f"ws_CO_{datetime.now(tz=NAIROBI):%d%m%Y%H%M%S}{secrets.randbelow(10**9):09d}"
        push = {
            "body": body,
            "code": STK_OUTCOMES.get(phone[-1:], ("0", "The service request is processed successfully.")),
        }
        with self.state.lock:
            self.state.pushes[checkout_id] = push
        threading.Thread(target=_stk_call_back, args=(self.state, checkout_id, push), daemon=True).start()
        self._answer(
            200,
            {
                "MerchantRequestID": str(uuid.uuid4()),
                "CheckoutRequestID": checkout_id,
                "ResponseCode": "0",
                "ResponseDescription": "Success. Request accepted for processing",
                "CustomerMessage": "Success. Request accepted for processing",
            },
        )

    def _stk_query(self, body: dict[str, Any]) -> None:
        with self.state.lock:
            push = self.state.pushes.get(str(body.get("CheckoutRequestID", "")))
        if push is None:
            return self._error(500, "500.001.1001", "The transaction does not Exist")
        code, description = push["code"]
        self._answer(
            200,
            {
                "ResponseCode": "0",
                "ResponseDescription": "The service request has been accepted successsfully",
                "MerchantRequestID": "",
                "CheckoutRequestID": body.get("CheckoutRequestID"),
                "ResultCode": code,
                "ResultDesc": description,
            },
        )

    def _transaction_status(self, body: dict[str, Any]) -> None:
        self._initiator_request(
            body, command="TransactionStatusQuery", fields=STATUS_QUERY_FIELDS, kind="status",
            times_out=self.state.status_times_out, outcome=self._status_outcome,
        )  # fmt: skip

    def _reversal(self, body: dict[str, Any]) -> None:
        if body.get("RecieverIdentifierType") != "11":
            return self._error(400, "400.002.02", "Bad Request - Invalid RecieverIdentifierType")
        self._initiator_request(
            body, command="TransactionReversal", fields=REVERSAL_FIELDS, kind="refund",
            times_out=self.state.reversal_times_out, outcome=self._reversal_outcome,
        )  # fmt: skip

    def _initiator_request(
        self,
        body: dict[str, Any],
        *,
        command: str,
        fields: tuple[str, ...],
        kind: str,
        times_out: bool,
        outcome: Callable[[dict[str, Any], dict[str, str]], dict[str, Any]],
    ) -> None:
        """Acknowledge at once; the outcome goes to the result (or timeout) URL a little later."""
        missing = [name for name in fields if not body.get(name)]
        if body.get("CommandID") != command:
            missing.insert(0, "CommandID")
        if missing:
            return self._error(400, "400.002.02", f"Bad Request - Invalid {missing[0]}")
        ids = {"OriginatorConversationID": f"{uuid.uuid4().hex[:5]}-{secrets.randbelow(10**8)}-1",
               "ConversationID": f"AG_{datetime.now(tz=NAIROBI):%Y%m%d}_{uuid.uuid4().hex[:20]}"}  # fmt: skip
        result: dict[str, Any] = {**ids, "ResultType": 0, "TransactionID": _receipt_number()}
        if self._credential_valid(body):
            result.update(outcome(body, ids))
        else:
            result.update(_refusal(2001, "The initiator information is invalid."))
        urls = {"result": str(body["ResultURL"]), "timeout": str(body["QueueTimeOutURL"])}
        threading.Thread(
            target=_initiator_call_back, args=(self.state, kind, result, urls, times_out), daemon=True
        ).start()
        self._answer(200, {**ids, "ResponseCode": "0",
                           "ResponseDescription": "Accept the service request successfully."})  # fmt: skip

    def _status_outcome(self, body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
        receipt = str(body["TransactionID"])
        with self.state.lock:
            payment = self.state.payment(receipt)
        if payment is None:  # the fake's choice of code for a receipt it never saw
            return _refusal("R000002", "The OriginalTransactionID is invalid.")
        when = datetime.strptime(payment["trxDate"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=ZoneInfo("UTC"))
        stamp = int(when.astimezone(NAIROBI).strftime("%Y%m%d%H%M%S"))
        return _success(
            {
                "DebitPartyName": f"254{payment['msisdn']} - {payment['sender']}",
                "CreditPartyName": f"{body['PartyA']} - {payment['organizationname']}",
                "OriginatorConversationID": ids["OriginatorConversationID"],
                "InitiatedTime": stamp,
                "DebitAccountType": "MMF Account For Customer",
                "DebitPartyCharges": "",
                "TransactionReason": "",
                "ReasonType": "Pay Bill Online",
                "TransactionStatus": "Completed",
                "FinalisedTime": stamp,
                "Amount": _json_number(payment["amount"]),
                "ConversationID": ids["ConversationID"],
                "ReceiptNo": receipt,
            },
            reference={"Key": "Occasion"},
        )

    def _reversal_outcome(self, body: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
        receipt = str(body["TransactionID"])
        with self.state.lock:  # held from the check to the marking: a receipt is reversed once
            payment = self.state.payment(receipt)
            if payment is None:
                return _refusal("R000002", "The OriginalTransactionID is invalid.")
            if receipt in self.state.reversed:
                return _refusal("R000001", "The transaction has already been reversed.")
            if Decimal(str(body["Amount"])) != Decimal(payment["amount"]):
                return _refusal(2006, "The amount does not match the transaction.")
            self.state.reversed.add(receipt)
        return _success(
            {
                "DebitAccountBalance": "Utility Account|KES|0.00|0.00|0.00|0.00",
                "Amount": _json_number(payment["amount"]),
                "TransCompletedTime": int(datetime.now(tz=NAIROBI).strftime("%Y%m%d%H%M%S")),
                "OriginalTransactionID": receipt,
                "Charge": _json_number("0.00"),
                "CreditPartyPublicName": f"254{payment['msisdn']} - {payment['sender']}",
                "DebitPartyPublicName": f"{body['ReceiverParty']} - {payment['organizationname']}",
            },
            reference={"Key": "QueueTimeoutURL", "Value": body["QueueTimeOutURL"]},
        )

    def _credential_valid(self, body: dict[str, Any]) -> bool:
        if body.get("Initiator") != self.state.initiator_name:
            return False
        try:
            secret = base64.b64decode(str(body["SecurityCredential"]), validate=True)
            # The real API decrypts with PKCS#1 v1.5 too; an OAEP-encrypted credential fails here.
            password = self.private_key.decrypt(secret, padding.PKCS1v15())
        except ValueError:
            return False
        return password.decode(errors="replace") == self.state.initiator_password

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller stopped waiting (answer_delay past its timeout), as it would with Safaricom

    def _error(self, status: int, code: str, message: str) -> None:
        self._answer(status, {"requestId": str(uuid.uuid4()), "errorCode": code, "errorMessage": message})


def c2b_payment_payload(
    *, shortcode: str, amount: int, account: str, msisdn: str, version: str = "v2", buy_goods: bool = False
) -> dict[str, Any]:
    """A confirmation as M-Pesa sends it: fresh receipt number, Nairobi time, string amount, and the
    payer's number masked (v2) or SHA-256 hashed (v1)."""
    return {
        "TransactionType": "Buy Goods" if buy_goods else "Pay Bill",
        "TransID": "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(10)),
        "TransTime": datetime.now(tz=NAIROBI).strftime("%Y%m%d%H%M%S"),
        "TransAmount": f"{amount}.00",
        "BusinessShortCode": shortcode,
        "BillRefNumber": account,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": hashlib.sha256(msisdn.encode()).hexdigest()
        if version == "v1"
        else f"{msisdn[:4]} ***** {msisdn[-3:]}",
        "FirstName": "JOHN",
        "MiddleName": "",
        "LastName": "DOE",
    }


def _remember(state: FakeDarajaState, payload: dict[str, Any]) -> None:
    """Keep a payment the way Pull Transactions lists it (lower-case keys, msisdn without 254)."""
    when = datetime.strptime(payload["TransTime"], "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
    with state.lock:
        state.transactions.append(
            {
                "transactionId": payload["TransID"],
                "trxDate": when.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "msisdn": 722000000,
                "sender": f"{payload['FirstName']} {payload['LastName']}".strip(),
                "transactiontype": "c2b-pay-bill-debit",
                "billreference": payload["BillRefNumber"],
                "amount": payload["TransAmount"],
                "organizationname": "Kelly OS demo",
            }
        )


def _call_back(state: FakeDarajaState, urls: dict[str, str], payload: dict[str, Any]) -> None:
    """What M-Pesa does after a simulated payment: validate (if asked to), then confirm."""
    time.sleep(state.callback_delay)
    validation = _post(state, "validation", urls["validation"], {**payload, "OrgAccountBalance": ""})
    if (
        validation.status == 200
        and isinstance(validation.answer, dict)
        and validation.answer.get("ResultCode") != "0"
    ):
        return  # rejected: M-Pesa cancels the payment and sends no confirmation
    _post(state, "confirmation", urls["confirmation"], {**payload, "OrgAccountBalance": "1000.00"})


def _post(state: FakeDarajaState, kind: str, url: str, payload: dict[str, Any]) -> Callback:
    callback = Callback(kind=kind, url=url, payload=payload)
    request = urllib.request.Request(  # noqa: S310 - only the URLs registered with this fake
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            callback.status, callback.answer = response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        callback.status, callback.answer = exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        callback.answer = f"unreachable: {exc}"
    with state.lock:
        state.callbacks.append(callback)
    return callback


def _json_number(text: str) -> float:
    """Safaricom writes these amounts as bare JSON numbers (800.0), so the fake does too; the engine
    reads them back as exact text, never as floats (mpesa/services/initiator.py)."""
    return float(Decimal(text))


def _refusal(code: int | str, description: str) -> dict[str, Any]:
    return {"ResultCode": code, "ResultDesc": description}


def _success(values: dict[str, Any], *, reference: dict[str, Any]) -> dict[str, Any]:
    return {
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "ResultParameters": {"ResultParameter": [{"Key": k, "Value": v} for k, v in values.items()]},
        "ReferenceData": {"ReferenceItem": reference},
    }


def _receipt_number() -> str:
    return "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(10))


def _initiator_call_back(
    state: FakeDarajaState, kind: str, result: dict[str, Any], urls: dict[str, str], times_out: bool
) -> None:
    """What M-Pesa does with an initiator request: the result, or a notice that it expired in the queue."""
    time.sleep(state.callback_delay)
    if times_out:
        expired = {**result, "ResultCode": 1, "ResultDesc": "The request expired in the queue."}
        _post(state, f"{kind}_timeout", urls["timeout"], {"Result": expired})
    else:
        _post(state, f"{kind}_result", urls["result"], {"Result": result})


def _self_signed_certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-daraja.invalid")])
    now = datetime.now(tz=ZoneInfo("UTC"))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now.replace(year=now.year + 1))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


def _stk_call_back(state: FakeDarajaState, checkout_id: str, push: dict[str, Any]) -> None:
    """What M-Pesa does after a prompt: the callback (and, for a paid PayBill prompt, the C2B
    confirmation of the same receipt)."""
    time.sleep(state.callback_delay)
    body, (code, description) = push["body"], push["code"]
    phone = str(body.get("PhoneNumber", ""))
    if phone.endswith("9"):
        return  # the callback that never comes
    callback: dict[str, Any] = {"MerchantRequestID": "fake", "CheckoutRequestID": checkout_id,
                                "ResultCode": int(code), "ResultDesc": description}  # fmt: skip
    confirmation = None
    if code == "0":
        receipt = "".join(secrets.choice(RECEIPT_ALPHABET) for _ in range(10))
        callback["CallbackMetadata"] = {"Item": [
            {"Name": "Amount", "Value": body["Amount"]},
            {"Name": "MpesaReceiptNumber", "Value": receipt},
            {"Name": "Balance"},
            {"Name": "TransactionDate", "Value": int(datetime.now(tz=NAIROBI).strftime("%Y%m%d%H%M%S"))},
            {"Name": "PhoneNumber", "Value": int(phone)},
        ]}  # fmt: skip
        urls = state.registered.get(str(body.get("BusinessShortCode")))
        if urls and state.c2b_after_stk:
            payload = c2b_payment_payload(
                shortcode=str(body["BusinessShortCode"]),
                amount=int(body["Amount"]),
                account=str(body.get("AccountReference", "")),
                msisdn=phone,
            )
            confirmation = (
                urls["confirmation"],
                {**payload, "TransID": receipt, "TransactionType": "Pay Bill Online"},
            )
    stk = (str(body["CallBackURL"]), {"Body": {"stkCallback": callback}})
    calls = [("stk_callback", *stk)]
    if confirmation:
        calls.insert(0 if state.c2b_first else 1, ("confirmation", *confirmation))
    for kind, url, payload in calls:
        _post(state, kind, url, payload)
