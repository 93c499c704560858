from decimal import Decimal

import pytest

from kellyos.money import InvalidAmountError, format_kes, to_kes


@pytest.mark.parametrize(
    ("value", "expected"),
    [("10", "10.00"), (" 250000.00 ", "250000.00"), (5, "5.00"), (Decimal("0.1"), "0.10"), ("-3.5", "-3.50")],
)
def test_amounts_become_kes_with_two_places(value, expected):
    assert to_kes(value) == Decimal(expected)
    assert str(to_kes(value)) == expected


@pytest.mark.parametrize(
    "value",
    [10.0, True, "ten", "", "NaN", "Infinity", "1.001", "1e20", "1e3", "1_000", "\u0661\u0662", "+5", None],
)
def test_floats_and_non_amounts_are_refused(value):
    with pytest.raises(InvalidAmountError):
        to_kes(value)


def test_format_kes():
    assert format_kes(Decimal("1234567.5")) == "KES 1,234,567.50"
