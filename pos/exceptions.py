class SaleError(Exception):
    """A sale operation was refused; the message says why in a cashier's words."""


class SaleValidationError(SaleError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors
