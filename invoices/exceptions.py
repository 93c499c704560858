class ReceivablesError(Exception):
    """A receivables operation was refused; the message says why in an accountant's words."""


class InvoiceValidationError(ReceivablesError):
    """Bad invoice input, with one message per field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


class InvoiceAlreadyVoidError(ReceivablesError):
    pass


class UnknownPaymentReferenceError(ReceivablesError):
    """The reference the payer typed names no invoice and no customer."""


class InvalidPaymentError(ReceivablesError):
    pass
