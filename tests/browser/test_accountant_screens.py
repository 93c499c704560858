"""An accountant's screens in a real browser, under the Content-Security-Policy the app sends."""

import json
from decimal import Decimal

import requests
from django.contrib.auth.models import Group

from mpesa.models import MpesaReceipt
from tests.browser import BROWSER_TEST_MARKS
from tests.customers.factories import CustomerFactory
from tests.factories import UserFactory
from tests.mpesa.payloads import c2b

pytestmark = BROWSER_TEST_MARKS


def sign_in(page, live_server, user):
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


def csp_refusals(page) -> list[str]:
    return [text for text in page.console_messages if "Content Security Policy" in text]


def test_payments_reach_the_dashboard_live_and_the_suspense_count_follows(
    browser_page, live_server, settings
):
    settings.EVENTS_STREAM_SECONDS = 2
    accountant = UserFactory(username="akinyi", is_staff=True)
    accountant.groups.add(Group.objects.get(name="Accountant"))
    customer = CustomerFactory()
    page = browser_page
    sign_in(page, live_server, accountant)
    page.goto(f"{live_server.url}/dashboard/")
    page.wait_for_selector("#live:text('on')")
    assert page.locator("#unallocated").inner_text() == "0"
    confirmation = f"{live_server.url}/api/webhooks/c2b/{settings.MPESA_WEBHOOK_TOKEN}/confirmation"

    for trans_id, account in (("RKB1SUSP01", "NOBODY-KNOWS"), ("RKB1PAID01", customer.code)):
        answer = requests.post(
            confirmation, data=json.dumps(c2b(trans_id=trans_id, amount="150", account=account)),
            headers={"Content-Type": "application/json"}, timeout=10,
        )  # fmt: skip
        assert answer.json()["ResultCode"] == 0
        page.wait_for_selector(f"#payments tbody tr:has-text('{trans_id}')", timeout=15_000)
        # The payment to suspense raised the count; the one to a customer left it where it was.
        assert page.locator("#unallocated").inner_text() == "1"

    assert MpesaReceipt.objects.get(trans_id="RKB1PAID01").amount == Decimal("150.00")
    assert page.locator("#collected").inner_text() == "300.00"
    assert csp_refusals(page) == []


def test_the_interactive_api_docs_work_under_the_content_security_policy(browser_page, live_server):
    staff = UserFactory(username="otieno", is_staff=True, is_superuser=True)
    page = browser_page
    sign_in(page, live_server, staff)
    answer = page.goto(f"{live_server.url}/api/docs/")
    assert "content-security-policy" in {name.lower() for name in answer.all_headers()}
    # Swagger UI drew the operations from /api/schema/: its scripts ran and fetched under the policy.
    page.wait_for_selector(".opblock-tag", timeout=15_000)
    page.locator(".opblock").first.click()
    page.wait_for_selector(".opblock-body")
    assert page.locator(".opblock").count() > 5
    assert csp_refusals(page) == []
