class CustomerError(Exception):
    """A customer operation was refused; the message says why."""


class InvalidPhoneError(CustomerError, ValueError):
    pass


class CustomerNotFoundError(CustomerError):
    pass


class CustomerValidationError(CustomerError):
    """Bad customer details, with one message per field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors
