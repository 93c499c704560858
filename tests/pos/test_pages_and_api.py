from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from pos.models import Sale, SaleStatus
from tests.factories import UserFactory
from tests.mpesa import payloads
from tests.pos.factories import ProductFactory, SaleFactory

pytestmark = pytest.mark.django_db

CONFIRM = "/api/webhooks/c2b/test-webhook-token/confirmation"


def cashier():
    user = UserFactory()
    user.groups.add(Group.objects.get(name="Cashier"))
    return user


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def pay(reference, amount):
    payload = payloads.c2b(trans_id=payloads.trans_id(), amount=amount, account=reference, first_name="AMINA")
    Client().post(CONFIRM, data=payloads.body(payload), content_type="application/json")


def test_a_cashier_rings_up_a_sale_and_sees_it_paid():
    client = logged_in(cashier())
    flour = ProductFactory(price=Decimal("230.00"))
    response = client.post(
        reverse("pos-sale-new"),
        {
            "product_0": flour.pk,
            "product_qty_0": "2",
            "item_0": "Carrier bag",
            "item_price_0": "10",
            "item_qty_0": "1",
        },
    )
    sale = Sale.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("pos-sale", args=[sale.reference])
    page = client.get(response["Location"]).content.decode()
    assert f"account <strong>{sale.reference}</strong>" in page and "470.00" in page and "Pending" in page

    pay(sale.reference, "200")
    status = client.get(reverse("pos-sale-status", args=[sale.reference])).json()
    assert (status["status"], status["balance_due"]) == ("PENDING", "270.00")
    pay(sale.reference, "270")
    status = client.get(reverse("pos-sale-status", args=[sale.reference])).json()
    assert status["status"] == "PAID" and [p["payer"] for p in status["payments"]] == ["AMINA", "AMINA"]

    receipt = client.get(reverse("pos-sale-receipt", args=[sale.reference])).content.decode()
    assert "80mm" in receipt and "PAID" in receipt
    home = client.get(reverse("pos-home")).content.decode()
    assert sale.reference in home and "Paid KSh 470.00" in home


def test_an_empty_sale_is_refused_on_the_page():
    client = logged_in(cashier())
    response = client.post(reverse("pos-sale-new"), {})
    assert "A sale needs at least one item" in response.content.decode()
    assert not Sale.objects.exists()


def test_the_cashier_cancels_a_pending_sale():
    user = cashier()
    sale = SaleFactory(cashier=user)
    client = logged_in(user)
    client.post(reverse("pos-sale-cancel", args=[sale.reference]))
    sale.refresh_from_db()
    assert sale.status == SaleStatus.CANCELLED


def test_a_cashier_sees_only_the_till_not_the_admin_nor_others_sales():
    user = cashier()
    client = logged_in(user)
    admin_page = client.get("/admin/")
    assert admin_page.status_code == 302 and "/admin/login/" in admin_page["Location"]
    someone_elses = SaleFactory(cashier=cashier())
    assert client.get(reverse("pos-sale", args=[someone_elses.reference])).status_code == 404
    assert client.get(reverse("pos-sale-status", args=[someone_elses.reference])).status_code == 404


def test_the_till_needs_a_login_and_the_cashier_role():
    assert Client().get(reverse("pos-home"))["Location"].startswith("/accounts/login/")
    assert logged_in(UserFactory()).get(reverse("pos-home")).status_code == 403


def test_forms_need_csrf():
    user = cashier()
    sale = SaleFactory(cashier=user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(reverse("pos-sale-cancel", args=[sale.reference])).status_code == 403
    assert client.post(reverse("pos-sale-new"), {"item_0": "x", "item_price_0": "1"}).status_code == 403


def test_the_pos_api_creates_and_finds_sales():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=cashier()).key}")
    flour = ProductFactory(sku="MF2", price=Decimal("230.00"))
    created = client.post(
        "/api/pos",
        {"items": [{"sku": "MF2", "quantity": 2}, {"description": "Bread", "quantity": 1, "unit_price": 65}]},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "PENDING" and body["total"] == "525.00" and len(body["posId"]) <= 12
    assert [i["description"] for i in body["items"]] == [flour.name, "Bread"]
    found = client.get("/api/pos", {"posId": body["posId"].lower()}).json()["results"]
    assert [s["posId"] for s in found] == [body["posId"]]
    assert [s["posId"] for s in client.get("/api/pos", {"status": "pending"}).json()["results"]] == [
        body["posId"]
    ]
    assert client.get("/api/pos", {"posId": "POS-999999"}).status_code == 404
    assert client.get("/api/pos", {"status": "lost"}).status_code == 400
    bad = client.post("/api/pos", {"items": [{"sku": "NOPE", "quantity": 1}]}, format="json")
    assert bad.status_code == 400 and "NOPE" in bad.content.decode()
    assert client.post("/api/pos", {"items": []}, format="json").status_code == 400
    assert Sale.objects.count() == 1


def test_the_pos_api_refuses_users_without_the_role():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=UserFactory()).key}")
    assert client.get("/api/pos").status_code == 403
    assert (
        client.post(
            "/api/pos", {"items": [{"description": "x", "quantity": 1, "unit_price": 5}]}, format="json"
        ).status_code
        == 403
    )
    assert not Sale.objects.exists()


def test_a_cashier_sees_only_their_own_sales_through_the_api():
    me, other = cashier(), cashier()
    mine, theirs = SaleFactory(cashier=me), SaleFactory(cashier=other)
    client = APIClient()
    client.force_authenticate(me)
    assert [s["posId"] for s in client.get("/api/pos").json()["results"]] == [mine.reference]
    assert client.get("/api/pos", {"posId": theirs.reference}).status_code == 404
