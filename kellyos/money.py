"""Kenyan shillings as Decimal with two places, end to end. Floats are refused, never rounded."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# numeric(14,2) holds at most 12 digits before the point.
MAX_AMOUNT = Decimal("999999999999.99")


class InvalidAmountError(ValueError):
    pass


def to_kes(value: Decimal | int | str) -> Decimal:
    """Turn a Decimal, int or numeric string into KES with exactly two places.

    A float is refused because it cannot hold most cent values exactly; so is anything with more than
    two decimal places, since silently rounding a payment would move money no one asked to move.
    """
    if isinstance(value, float | bool):
        raise InvalidAmountError(
            f"Amounts must be Decimal, int or str, not {type(value).__name__}: {value!r}"
        )
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError) as exc:
        raise InvalidAmountError(f"Not an amount: {value!r}") from exc
    if not amount.is_finite():
        raise InvalidAmountError(f"Not an amount: {value!r}")
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    if rounded != amount:
        raise InvalidAmountError(f"Amounts have at most two decimal places (cents): {value!r}")
    if abs(rounded) > MAX_AMOUNT:
        raise InvalidAmountError(f"Amount too large: {value!r}")
    return rounded


def format_kes(amount: Decimal) -> str:
    """`KES 1,234.50`, the way an accountant reads it."""
    return f"KES {amount:,.2f}"
