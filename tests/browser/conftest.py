"""The browser the browser tests drive."""

import os
import time

import pytest
from django.db import connection

from tests.browser import CHROMIUM


@pytest.fixture(scope="session")
def server_connections_ended(django_db_setup, django_db_blocker):
    yield
    time.sleep(2.5)  # let the server's event streams notice the browsers left
    # A request a closing browser cut off mid-response leaves its server thread's connection open; end
    # those (this process's own), once all browser tests are done, so the test database can be dropped.
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def browser_page(server_connections_ended):
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
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
        # What the page's console said: a Content-Security-Policy refusal shows up here.
        page.console_messages = []  # type: ignore[attr-defined]
        page.on("console", lambda message: page.console_messages.append(message.text))
        yield page
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
