from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from customers.exceptions import CustomerValidationError
from customers.models import Customer
from customers.phones import phone_normalize, phone_sha256
from kellyos.audit import audit_record


def customer_create(*, name: str, phone: str = "", email: str = "", by: Any = None) -> Customer:
    """A new customer with the next code (CUST-0001, CUST-0002, ...) from the database sequence."""
    fields = _validated(name=name, phone=phone, email=email)
    with transaction.atomic():
        customer = Customer.objects.create(**fields)
        customer.refresh_from_db(fields=["code"])
        audit_record(
            action="customer.create", subject=f"customer {customer.code}", summary=f"Created {customer}."
        )
    return customer


def customer_update(
    *, customer: Customer, name: str, phone: str, email: str, is_active: bool, by: Any = None
) -> Customer:
    """Change contact details or close a customer; the code never changes."""
    fields = _validated(name=name, phone=phone, email=email)
    for field, value in {**fields, "is_active": is_active}.items():
        setattr(customer, field, value)
    with transaction.atomic():
        customer.save(update_fields=["name", "phone", "phone_sha256", "email", "is_active"])
        audit_record(action="customer.update", subject=f"customer {customer.code}", by=by,
                     summary=f"Details now: {customer.name}, {customer.phone or 'no phone'}, "
                     f"{customer.email or 'no email'}, {'active' if is_active else 'closed'}.")  # fmt: skip
    return customer


def _validated(*, name: str, phone: str, email: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    name = " ".join(name.split())
    if not name:
        errors["name"] = "A customer needs a name."
    normalised_phone = ""
    if phone.strip():
        try:
            normalised_phone = phone_normalize(phone)
        except ValueError as exc:
            errors["phone"] = str(exc)
    email = email.strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            errors["email"] = f"{email!r} is not an email address."
    if errors:
        raise CustomerValidationError(errors)
    return {
        "name": name,
        "phone": normalised_phone,
        "phone_sha256": phone_sha256(normalised_phone) if normalised_phone else "",
        "email": email,
    }
