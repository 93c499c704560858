"""The OpenAPI schema is the API's contract: schemathesis generates requests for every operation in it
and checks the answers. No 500s, every status and body as documented, and authentication enforced
(schemathesis's `ignored_auth` check repeats each successful request without the token)."""

import json

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory
from tests.invoices.factories import InvoiceFactory, pay
from tests.pos.factories import SaleFactory

pytestmark = pytest.mark.django_db

WEBHOOK_TOKEN = "test-webhook-token"  # kellyos.settings.test


@pytest.fixture
def api_auth(settings):
    """A superuser's token, with something in the books for the lists and reports to show."""
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "localhost"]  # schemathesis's WSGI client
    admin = UserFactory(is_staff=True, is_superuser=True)
    invoice = InvoiceFactory()
    pay(invoice.number, "400.00")
    SaleFactory(cashier=admin)
    return {"Authorization": f"Token {Token.objects.create(user=admin).key}"}


@pytest.fixture
def in_test_transaction():
    """Like Django's test client, keep the request cycle from closing the connection the test's
    transaction lives on."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def _served_schema() -> dict:
    """What /api/schema/ serves (it needs a staff login, so it is built here rather than fetched at
    collection time). `schemathesis.pytest.from_fixture` would fetch it per test, but it breaks on
    pytest 9.2 (it sets the node's private `_nodeid`)."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


# Checked: no server errors; statuses, content types, headers and bodies as documented; and each
# successful request is refused without its token (`ignored_auth`). Not checked: whether the API is
# as strict or as lenient as the schema's types. Business rules (an unknown customer code, a sale line
# with neither product nor price) refuse more than a schema can say, and DRF reads a JSON number as
# text for a text field (a customer may be named 0).
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            "negative_data_rejection": {"enabled": False},
        }
    }
)
schema = schemathesis.openapi.from_dict(_served_schema(), config=CONFIG)
schema.app = get_wsgi_application()  # what `openapi.from_wsgi` sets: requests go to the app in-process


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_every_operation_answers_as_its_schema_says(case, api_auth, in_test_transaction):
    if "token" in (case.path_parameters or {}):
        # With a wrong token a webhook is only ever a 404; with ours, its body is what gets fuzzed.
        case.path_parameters["token"] = WEBHOOK_TOKEN
    # The webhooks check the caller's address, which schemathesis's WSGI client does not set.
    case.call_and_validate(headers=api_auth, environ_overrides={"REMOTE_ADDR": "127.0.0.1"})


def test_the_schema_and_docs_are_for_staff_only(client):
    assert client.get("/api/schema/").status_code in (401, 403)
    assert client.get("/api/docs/").status_code in (401, 403)
    client.force_login(UserFactory())
    assert client.get("/api/schema/").status_code == 403
    client.force_login(UserFactory(is_staff=True))
    schema_response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema_response.status_code == 200
    assert {"/api/customers", "/api/invoices", "/api/pos", "/api/reports"} <= set(
        schema_response.json()["paths"]
    )
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    # The start-up script comes from a URL, not inline, and Swagger UI's files from our own static files.
    assert b"<script>" not in docs.content and b"cdn" not in docs.content.lower()
    assert client.get("/api/docs/?script=").status_code == 200


def test_the_api_refuses_requests_without_credentials(client):
    for path in ("/api/customers", "/api/invoices", "/api/pos", "/api/reports?type=balance"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert response["WWW-Authenticate"].startswith("Token")
        bad_token = client.get(path, HTTP_AUTHORIZATION="Token not-a-real-token")
        assert bad_token.status_code == 401, path
