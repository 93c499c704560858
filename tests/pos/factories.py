from decimal import Decimal

import factory

from pos.models import Product, Sale
from pos.services import SaleLineInput, sale_create
from tests.factories import UserFactory


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    name = factory.Sequence(lambda n: f"Maize flour 2kg ({n})")
    sku = factory.Sequence(lambda n: f"MF2-{n:04d}")
    price = Decimal("230.00")


class SaleFactory(factory.Factory):
    """A pending sale of one free-text item for `total`, rung up through the service."""

    class Meta:
        model = Sale

    total = Decimal("1000.00")
    cashier = factory.SubFactory(UserFactory)

    @classmethod
    def _create(cls, model_class, **kwargs):
        line = SaleLineInput(quantity=1, description="Groceries", unit_price=kwargs["total"])
        return sale_create(lines=[line], cashier=kwargs["cashier"])
