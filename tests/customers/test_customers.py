import pytest
from django.db import connection

from customers.exceptions import CustomerValidationError, InvalidPhoneError
from customers.phones import phone_normalize
from customers.selectors import customer_code_normalize, customer_get_by_code
from customers.services import customer_create, customer_update
from tests.customers.factories import CustomerFactory


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("0712345678", "254712345678"),
        ("0712 345 678", "254712345678"),
        ("+254712345678", "254712345678"),
        ("254712345678", "254712345678"),
        ("0110000222", "254110000222"),
        ("+254 (0)11-000-0222".replace("(0)", ""), "254110000222"),
    ],
)
def test_kenyan_mobile_numbers_are_stored_one_way(typed, stored):
    assert phone_normalize(typed) == stored


@pytest.mark.parametrize("typed", ["", "12345", "0812345678", "+255712345678", "07123456789", "07l2345678"])
def test_anything_else_is_a_clear_error(typed):
    with pytest.raises(InvalidPhoneError, match="not a Kenyan mobile number"):
        phone_normalize(typed)


@pytest.mark.parametrize(
    ("typed", "code"), [("cust-0042", "CUST-0042"), ("CUST 42", "CUST-0042"), ("cust42", "CUST-0042")]
)
def test_customer_codes_are_read_however_they_are_typed(typed, code):
    assert customer_code_normalize(typed) == code


@pytest.mark.django_db
def test_a_new_customer_gets_the_next_code_and_tidy_details():
    customer = customer_create(
        name="  Achieng   Academy ", phone="0110 000 222", email=" office@achieng.ac.ke "
    )
    assert customer.code.startswith("CUST-")
    assert (customer.name, customer.phone, customer.email) == (
        "Achieng Academy",
        "254110000222",
        "office@achieng.ac.ke",
    )
    assert customer_get_by_code(customer.code.lower()) == customer


@pytest.mark.django_db
def test_codes_past_9999_keep_every_digit():
    with connection.cursor() as cursor:
        # Sequences are not rolled back with the test; only ever move this one forward.
        cursor.execute(
            "SELECT setval('customers_customer_code_seq', GREATEST(9998, last_value))"
            " FROM customers_customer_code_seq"
        )
    codes = [CustomerFactory().code for _ in range(3)]
    numbers = [int(code.removeprefix("CUST-")) for code in codes]
    assert numbers == sorted(numbers) and numbers[-1] >= 10000
    assert all(code == f"CUST-{n:04d}" for code, n in zip(codes, numbers, strict=True))


@pytest.mark.django_db
def test_bad_details_are_reported_field_by_field():
    with pytest.raises(CustomerValidationError) as error:
        customer_create(name="", phone="999", email="nope")
    assert set(error.value.errors) == {"name", "phone", "email"}


@pytest.mark.django_db
def test_updating_details_keeps_the_code():
    customer = CustomerFactory()
    updated = customer_update(
        customer=customer, name="New Name", phone="+254700000001", email="", is_active=False
    )
    updated.refresh_from_db()
    assert (updated.code, updated.name, updated.phone, updated.is_active) == (
        customer.code,
        "New Name",
        "254700000001",
        False,
    )
