"""Tests in a real browser: Playwright driving Debian's Chromium (never a downloaded browser)."""

import os
import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

# Each browser test serves the app from a live server (so its data is committed) and needs Chromium.
BROWSER_TEST_MARKS = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM),
        reason="No Chromium: on Debian/Ubuntu `apt-get install chromium` (.ci/run does this); the test never "
        "downloads a browser.",
    ),
]
