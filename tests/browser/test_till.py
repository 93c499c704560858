"""A cashier in a real browser: Playwright driving Debian's Chromium (never a downloaded browser)."""

import os
import shutil
import time
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from mpesa.fake_daraja import SANDBOX_PASSKEY, FakeDaraja
from pos.models import Sale, SaleStatus
from tests.factories import UserFactory
from tests.pos.factories import ProductFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip(
    "playwright.sync_api", reason="pip install playwright (the Python package only)"
)

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="No Chromium: on Debian/Ubuntu `apt-get install chromium` (.ci/run does this); the test never "
        "downloads a browser.",
    ),
]


@pytest.fixture
def browser_page():
    # Playwright runs its own event loop in this thread; the test's own ORM calls are synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        yield page
        browser.close()
    time.sleep(2.5)  # let the server's event streams notice the browser left
    # A request the closing browser cut off mid-response leaves its server thread's connection open;
    # end those (this process's own) so the test database can be dropped.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


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
