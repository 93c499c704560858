class MpesaError(Exception):
    """An M-Pesa operation was refused; the message says why."""


class ReceiptAssignmentError(MpesaError):
    pass


class CallbackUrlError(MpesaError):
    """A callback URL Safaricom would refuse (banned word, not HTTPS in production, not public)."""
