class LedgerError(Exception):
    """A ledger operation was refused; the message says why in an accountant's words."""


class InvalidJournalEntryError(LedgerError):
    pass


class EntryAlreadyReversedError(LedgerError):
    pass


class TransactionRequiredError(LedgerError):
    pass


class UnknownAccountError(LedgerError):
    pass


class PeriodClosedError(LedgerError):
    """The date falls in a period the accountant has closed."""
