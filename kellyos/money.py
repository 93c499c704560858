"""Kenyan shillings as Decimal with two places, end to end. Floats are refused, never rounded."""

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
# numeric(14,2) holds at most 12 digits before the point.
MAX_AMOUNT = Decimal("999999999999.99")
AMOUNT_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?", re.ASCII)


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
    if isinstance(value, str):
        # Decimal() also takes '1_000', '1e3' and non-ASCII digits; an amount on the wire is plainer.
        value = value.strip()
        if not AMOUNT_TEXT.fullmatch(value):
            raise InvalidAmountError(f"Not an amount: {value!r}")
    try:
        amount = Decimal(value)
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
