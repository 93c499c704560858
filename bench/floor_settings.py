"""Settings for bench/c2b_load.py's server: production settings, plus the framework-floor endpoint."""

from kellyos.settings.base import *  # noqa: F403

ROOT_URLCONF = "floor_urls"
