"""Property-based fuzzing of every Safaricom callback: whatever the bytes or the JSON shape, the answer
is a clear 4xx or a correct booking, never a 500, and never a partial write. After each example
either the payment is booked whole (one receipt, its ledger entry, balanced books) or nothing is
written but the raw webhook log row."""

import json
import os
from decimal import Decimal

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase

from invoices.models import Payment
from ledger.models import JournalEntry
from ledger.selectors import ledger_verify
from mpesa.models import MpesaReceipt, StkPush, WebhookLog, WebhookStatus
from tests.customers.factories import CustomerFactory
from tests.ledger.factories import chart_of_accounts_ensure
from tests.pos.factories import SaleFactory

TOKEN = "test-webhook-token"  # kellyos.settings.test
# print_blob: a failure prints the @reproduce_failure line that replays it (no example database here).
# FUZZ_EXAMPLES=1000 for a deeper run than the suite's.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "30")),
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "0", "-1", "1e30", "NaN", "10.005", " 100 ", "\x00", "\u0661\u0662"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
# A body Safaricom never sent: any bytes, any JSON document, or JSON with the constants it never uses.
anything = st.one_of(
    st.binary(max_size=600),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.sampled_from([b'{"TransID": "TKX", "TransAmount": NaN}', b"[" * 3000 + b"]" * 3000, b"{" * 3000]),
)


def field(valid):
    """Mostly the right kind of value, sometimes anything at all."""
    return st.one_of(valid, valid, json_values)


def c2b_bodies(account):
    amounts = st.one_of(
        st.decimals(min_value=Decimal("-10"), max_value=Decimal("300000"), places=2).map(str),
        st.integers(-5, 300_000),
        st.sampled_from(["1e3", "0.001", "1,000", "ksh 10"]),
    )
    shaped = st.fixed_dictionaries(
        {
            "TransactionType": field(st.just("Pay Bill")),
            "TransID": field(st.from_regex(r"\ATK[A-Z0-9]{8}\Z")),
            "TransTime": field(st.sampled_from(["20261127101010", "20990101000000", "nonsense"])),
            "TransAmount": field(amounts),
            "BusinessShortCode": field(st.sampled_from(["600000", 600000, "600001"])),
            "BillRefNumber": field(st.sampled_from([account, account.lower(), "NOPE-1", ""])),
            "MSISDN": field(st.just("2547 ***** 126")),
            "FirstName": field(st.text(max_size=20)),
        },
        optional={"OrgAccountBalance": json_values, "Extra": json_values},
    ).map(lambda payload: json.dumps(payload).encode())
    return st.one_of(shaped, shaped, anything)


ITEM_NAMES = ["Amount", "MpesaReceiptNumber", "TransactionDate", "PhoneNumber"]
RESULT_PATHS = ["status/%s/result", "status/%s/timeout", "refund/%s/result", "refund/%s/timeout"]


class WebhookFuzzing(TestCase):
    def setUp(self):
        chart_of_accounts_ensure()

    def post(self, kind: str, body: bytes):
        response = Client().post(f"/api/webhooks/{kind}", data=body, content_type="application/json")
        assert response.status_code < 500, response.content
        if response.status_code == 411:  # an empty body comes without a length: refused, nothing logged
            assert not body and not WebhookLog.objects.exists()
            return None
        return response

    def assert_nothing_but_the_log(self):
        assert WebhookLog.objects.count() == 1
        assert not MpesaReceipt.objects.exists() and not Payment.objects.exists()
        assert not JournalEntry.objects.exists()

    def assert_booked_whole(self):
        receipt = MpesaReceipt.objects.get()
        assert JournalEntry.objects.exists()
        # Whole: what went to a customer or a till sale plus what is in suspense is the receipt.
        if receipt.sale_payment_id is not None:
            placed = receipt.sale_payment.amount
        elif receipt.payment_id is not None:
            placed = Payment.objects.get(source_id=receipt.trans_id).amount
        else:
            placed = Decimal("0.00")
        assert placed + receipt.unallocated_amount == receipt.amount
        assert ledger_verify()["is_valid"], ledger_verify()["errors"]

    @FUZZ
    @given(data=st.data())
    def test_c2b_confirmation(self, data):
        customer = CustomerFactory()
        response = self.post(f"c2b/{TOKEN}/confirmation", data.draw(c2b_bodies(customer.code)))
        if response is None:
            return
        log = WebhookLog.objects.get()
        if response.status_code == 200:
            assert response.json() == {"ResultCode": 0, "ResultDesc": "Success"}
            assert log.status == WebhookStatus.PROCESSED, log.detail  # FAILED would mean a crash
            self.assert_booked_whole()
        else:
            assert response.status_code == 400 and log.status == WebhookStatus.REJECTED
            self.assert_nothing_but_the_log()

    @FUZZ
    @given(data=st.data())
    def test_c2b_validation_only_answers(self, data):
        customer = CustomerFactory()
        response = self.post(f"c2b/{TOKEN}/validation", data.draw(c2b_bodies(customer.code)))
        if response is None:
            return
        assert response.status_code == 200
        assert response.json()["ResultCode"] in {"0", "C2B00012", "C2B00013", "C2B00015", "C2B00016"}
        self.assert_nothing_but_the_log()

    @FUZZ
    @given(data=st.data())
    def test_stk_callback(self, data):
        sale = SaleFactory(total=Decimal("500.00"))
        push = StkPush.objects.create(
            checkout_request_id="ws_CO_FUZZ", sale=sale, account_reference=sale.reference,
            phone="254708374149", amount=sale.total,
        )  # fmt: skip
        items = st.lists(
            st.one_of(
                st.fixed_dictionaries(
                    {
                        "Name": st.sampled_from(
                            ["Amount", "MpesaReceiptNumber", "TransactionDate", "PhoneNumber"]
                        ),
                        "Value": field(st.sampled_from([500, "500.00", "TKSTK00001", 20261127101010])),
                    }
                ),
                json_values,
            ),
            max_size=5,
        )
        callback = st.fixed_dictionaries(
            {
                "MerchantRequestID": field(st.just("29115-1")),
                "CheckoutRequestID": field(st.sampled_from([push.checkout_request_id, "ws_CO_OTHER"])),
                "ResultCode": field(st.sampled_from([0, "0", 1032, 1, 2001])),
                "ResultDesc": field(st.just("The service request is processed successfully.")),
                "CallbackMetadata": field(st.fixed_dictionaries({"Item": items})),
            }
        )
        body = data.draw(
            st.one_of(
                callback.map(lambda c: json.dumps({"Body": {"stkCallback": c}}).encode()),
                callback.map(lambda c: json.dumps({"Body": {"stkCallback": c}}).encode()),
                anything,
            )
        )
        response = self.post(f"stk/{TOKEN}/callback", body)
        if response is None:
            return
        log = WebhookLog.objects.get()
        assert response.status_code in (200, 400)
        if MpesaReceipt.objects.exists():
            assert log.status == WebhookStatus.PROCESSED
            self.assert_booked_whole()
        else:
            # Refused, settled unpaid, or kept for the retry because the prompt is unknown (it may
            # overtake the saving of its prompt): nothing half-booked, and no crash.
            assert log.status != WebhookStatus.FAILED or "No prompt" in log.detail, log.detail
            self.assert_nothing_but_the_log()

    @FUZZ
    @given(
        kind=st.sampled_from(
            ["status/%s/result", "status/%s/timeout", "refund/%s/result", "refund/%s/timeout"]
        ),
        body=st.one_of(
            anything,
            st.fixed_dictionaries(
                {
                    "Result": st.fixed_dictionaries(
                        {
                            "ResultType": field(st.just(0)),
                            "ResultCode": field(st.sampled_from([0, "0", "R000001", 2001])),
                            "OriginatorConversationID": field(st.text(max_size=20)),
                            "ConversationID": field(st.text(max_size=20)),
                            "TransactionID": field(st.just("TKRES00001")),
                            "ResultParameters": field(
                                st.fixed_dictionaries(
                                    {
                                        "ResultParameter": st.one_of(
                                            json_values, st.lists(json_values, max_size=3)
                                        )
                                    }
                                )
                            ),
                        }
                    )
                }
            ).map(lambda payload: json.dumps(payload).encode()),
        ),
    )
    def test_initiator_results_for_requests_we_never_made(self, kind, body):
        response = self.post(kind % TOKEN, body)
        if response is None:
            return
        assert response.status_code in (200, 400)
        assert WebhookLog.objects.get().status != WebhookStatus.RECEIVED
        self.assert_nothing_but_the_log()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["c2b/%s/confirmation", "c2b/%s/validation", "stk/%s/callback", *RESULT_PATHS]
)
@pytest.mark.parametrize(
    "body",
    [
        b"[" * 3000 + b"]" * 3000,  # deeper than Python's JSON reader goes
        b'{"Result": {"OriginatorConversationID": "\\u0000", "ResultParameters": "text"}}',
        b'{"Result": {"ConversationID": "AG_1", "ResultParameters": {"ResultParameter": 5}}}',
        b'{"Body": {"stkCallback": {"CheckoutRequestID": "ws_CO_\\u0000", "ResultCode": 0}}}',
    ],
)
def test_awkward_bodies_never_crash_a_webhook(path, body):
    response = Client().post(f"/api/webhooks/{path % TOKEN}", data=body, content_type="application/json")
    assert response.status_code in (200, 400)
    assert WebhookLog.objects.get().status != WebhookStatus.RECEIVED
    assert not MpesaReceipt.objects.exists() and not JournalEntry.objects.exists()
