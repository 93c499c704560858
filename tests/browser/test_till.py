"""A cashier in a real browser."""

import os
from decimal import Decimal

from django.contrib.auth.models import Group

from mpesa.fake_daraja import SANDBOX_PASSKEY, FakeDaraja
from pos.models import Sale, SaleStatus
from tests.browser import BROWSER_TEST_MARKS
from tests.factories import UserFactory
from tests.pos.factories import ProductFactory

pytestmark = BROWSER_TEST_MARKS


def test_a_cashier_rings_up_a_sale_and_sees_it_paid_without_a_reload(
    browser_page, live_server, settings, tmp_path
):
    fake = FakeDaraja(callback_delay=0.5).start()
    settings.MPESA_API_BASE = fake.url
    settings.MPESA_CONSUMER_KEY, settings.MPESA_CONSUMER_SECRET = "fake-key", "fake-secret"
    settings.MPESA_PASSKEY = SANDBOX_PASSKEY
    settings.MPESA_CALLBACK_BASE_URL = live_server.url
    settings.EVENTS_STREAM_SECONDS = 2  # streams end soon after the browser goes; it reconnects meanwhile
    cashier = UserFactory(username="wanjiru")
    cashier.groups.add(Group.objects.get(name="Cashier"))
    ProductFactory(name="Maize flour 2kg", price=Decimal("230.00"))
    page = browser_page
    try:
        page.goto(f"{live_server.url}/pos/")
        page.fill("input[name=username]", "wanjiru")
        page.fill("input[name=password]", "correct-horse-battery")
        page.click("button[type=submit]")
        page.click("text=New sale")
        page.select_option("select[name=product_0]", index=1)  # the one product in the catalogue
        page.fill("input[name=product_qty_0]", "2")
        page.click("text=Create sale")
        page.wait_for_selector("#status.PENDING")
        sale = Sale.objects.get()
        assert page.locator("#balance").inner_text() == "460.00"
        page.evaluate("window.notReloaded = true")
        page.fill("#phone", "0712345670")  # the fake Daraja pays phones ending 0-4
        page.click("#send-prompt")
        page.wait_for_selector("#status.PAID", timeout=20_000)
        assert page.evaluate("window.notReloaded") is True
        assert page.locator("#status").inner_text() == "Paid"
        assert page.locator("#cancel-form").count() == 0
        page.screenshot(path=os.environ.get("TILL_SCREENSHOT", str(tmp_path / "paid.png")))
    finally:
        fake.stop()
    sale.refresh_from_db()
    assert sale.status == SaleStatus.PAID
