import factory
from django.contrib.auth.models import User


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"accountant{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.co.ke")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")
