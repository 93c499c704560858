"""Small database helpers shared by the apps."""

from django.db import IntegrityError


def violated_constraint(error: IntegrityError) -> str | None:
    """The name of the PostgreSQL constraint an IntegrityError broke, if it names one."""
    return getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
