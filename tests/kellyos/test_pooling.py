"""Behind PgBouncer in transaction mode: the pooling settings, and live updates listening on a direct
connection (EVENTS_DATABASE_URL). The whole suite through a real PgBouncer is
deploy/pgbouncer/check.sh."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import override_settings

from kellyos.events import event_listener_connect, event_publish
from kellyos.models import Event

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env):
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_POOLING", "EVENTS_DATABASE_URL", "DATABASE_PREPARED_STATEMENTS"}
    }
    environment.update(env, DJANGO_SETTINGS_MODULE="kellyos.settings.base", SECRET_KEY="x" * 50)
    code = (
        "import django; from django.conf import settings; django.setup(); db = settings.DATABASES['default'];"
        "print(db.get('DISABLE_SERVER_SIDE_CURSORS', False),"
        " db['OPTIONS']['server_side_binding'], db['OPTIONS']['prepare_threshold'],"
        " settings.EVENTS_DATABASE and settings.EVENTS_DATABASE['PORT'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def direct_url(**query: str) -> dict:
    """The server the tests' own connection reaches (directly, even when the suite runs through
    PgBouncer), as EVENTS_DATABASE_URL would be parsed, without a database name. Built as the parsed
    dict, not a URL: the embedded server's host is a socket directory."""
    server = settings.EVENTS_DATABASE or connection.settings_dict
    return {
        "HOST": server["HOST"],
        "PORT": server["PORT"],
        "USER": server["USER"],
        "PASSWORD": server.get("PASSWORD", ""),
        "NAME": "",
        "OPTIONS": dict(query),
    }


POOLED = {
    "DATABASE_POOLING": "transaction",
    "DATABASE_URL": "postgres://kellyos@127.0.0.1:6432/kellyos",
    "EVENTS_DATABASE_URL": "postgres://kellyos@10.0.0.5:5432/kellyos",
}


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        # Through PgBouncer: no server-side cursors, and no preparing even if the URL asks for it.
        ({**POOLED, "DATABASE_URL": POOLED["DATABASE_URL"] + "?prepare_threshold=5"}, "True True None 5432"),
        # A PgBouncer that follows prepared statements (1.21+) may have them.
        ({**POOLED, "DATABASE_PREPARED_STATEMENTS": "true"}, "True True 5 5432"),
        # Direct connections prepare what they run often.
        ({"DATABASE_URL": "postgres://kellyos@127.0.0.1:5432/kellyos"}, "False True 5 None"),
    ],
    ids=["pooled", "pooled-with-prepared-statements", "direct"],
)
def test_connection_settings_follow_the_pooling(environment, expected):
    result = load_settings(**environment)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == expected.split()


def test_transaction_pooling_without_a_direct_connection_for_listen_refuses_to_start():
    result = load_settings(
        DATABASE_POOLING="transaction", DATABASE_URL="postgres://kellyos@127.0.0.1:6432/kellyos"
    )
    assert result.returncode != 0
    assert "needs EVENTS_DATABASE_URL" in result.stderr


def test_an_unknown_pooling_mode_is_refused():
    result = load_settings(
        DATABASE_POOLING="statement", DATABASE_URL="postgres://kellyos@127.0.0.1:6432/kellyos"
    )
    assert result.returncode != 0
    assert "DATABASE_POOLING must be none or transaction" in result.stderr


@pytest.mark.django_db(transaction=True)
def test_the_listener_connects_to_events_database_url_and_hears_what_commits():
    with (
        override_settings(EVENTS_DATABASE=direct_url(application_name="kellyos-events-direct")),
        event_listener_connect() as listener,
    ):
        assert listener.info.parameter_status("application_name") == "kellyos-events-direct"
        # No database in the URL: the one the application's connection is in, where NOTIFY is sent.
        assert listener.info.dbname == connection.settings_dict["NAME"]
        with transaction.atomic():
            event_publish(kind="payment", payload={"amount": Decimal("10.00")})
        heard = [int(n.payload) for n in listener.notifies(timeout=2, stop_after=1)]
        assert heard == [Event.objects.get().pk]


@pytest.mark.django_db
def test_a_database_named_in_events_database_url_is_the_one_listened_on():
    url = direct_url()
    url["NAME"] = "postgres"
    with override_settings(EVENTS_DATABASE=url), event_listener_connect() as listener:
        assert listener.info.dbname == "postgres"


@pytest.mark.django_db
@pytest.mark.skipif(bool(settings.EVENTS_DATABASE), reason="EVENTS_DATABASE_URL is set for this run")
def test_without_events_database_url_the_listener_uses_the_application_database():
    with event_listener_connect() as listener:
        assert (listener.info.host, listener.info.port) == (
            connection.get_connection_params()["host"],
            int(connection.get_connection_params().get("port") or 5432),
        )
        assert listener.info.dbname == connection.settings_dict["NAME"]
