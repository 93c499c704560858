import factory

from customers.models import Customer
from customers.services import customer_create


class CustomerFactory(factory.Factory):
    """Customers are created through the service, which gives them their code."""

    class Meta:
        model = Customer

    name = factory.Faker("name")
    phone = factory.Sequence(lambda n: f"07{n % 100_000_000:08d}")
    email = factory.Sequence(lambda n: f"customer{n}@example.co.ke")

    @classmethod
    def _create(cls, model_class, **kwargs):
        return customer_create(**kwargs)
