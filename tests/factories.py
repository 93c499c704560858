import factory
from django.contrib.auth.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User

    username = factory.Sequence(lambda n: f"accountant{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.co.ke")
    password = factory.django.Password("correct-horse-battery")
